"""The full configuration of a training run, saved as config.json in its run directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from toolkit.checks import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_speaker_regex,
    check_str,
)
from toolkit.datasets import LAYOUTS
from toolkit.head import HeadConfig, check_head_options
from toolkit.splits import PROTOCOLS
from toolkit.ssl_models import DEFAULT_EXTRACTOR, EXTRACTOR_NAMES, PRECISIONS
from toolkit.train import TrainConfig

# Settings that change where or how fast work happens, never its results: a rerun
# with other values still resumes the same run.
RUNTIME_ONLY = {("extractor", "cache"), ("extractor", "workers"), ("extractor", "max_batch")}


@dataclass(frozen=True)
class DataOptions:
    source: str
    layout: str = "auto"
    speaker_regex: str | None = None

    def __post_init__(self) -> None:
        check_str("source", self.source)
        check_choice("layout", self.layout, LAYOUTS)
        check_str("speaker_regex", self.speaker_regex, optional=True)
        check_speaker_regex(self.speaker_regex)


@dataclass(frozen=True)
class SplitOptions:
    protocol: str = "holdout"
    group_by: str = "speaker"
    folds: int | None = None
    test_fraction: float = 0.2
    test_speakers: tuple[str, ...] | None = None
    allow_speaker_overlap: bool = False

    def __post_init__(self) -> None:
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_choice("group_by", self.group_by, ("speaker", "session"))
        if self.folds is not None:
            check_int("folds", self.folds, 2, 10_000)
        check_float("test_fraction", self.test_fraction, 0.0, 1.0, low_open=True,
                    high_open=True)
        if self.test_speakers is not None:
            if not isinstance(self.test_speakers, tuple) or not self.test_speakers:
                raise ValueError("test_speakers must be a non-empty list of names")
            for name in self.test_speakers:
                check_str("test speaker", name)
        check_bool("allow_speaker_overlap", self.allow_speaker_overlap)


@dataclass(frozen=True)
class ExtractorOptions:
    name: str = DEFAULT_EXTRACTOR
    weights: str | None = None
    untrained: bool = False
    precision: str = "fp32"
    storage: str = "fp16"
    cache: str = ""
    max_batch: int | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        check_choice("extractor", self.name, EXTRACTOR_NAMES)
        check_str("extractor weights", self.weights, optional=True)
        check_bool("untrained", self.untrained)
        if self.untrained and self.weights:
            raise ValueError("choose either extractor weights or untrained, not both")
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("storage", self.storage, ("fp16", "fp32"))
        if not isinstance(self.cache, str):
            raise ValueError(f"cache must be a folder name, got {self.cache!r}")
        if self.max_batch is not None:
            check_int("max_batch", self.max_batch, 1, 4096)
        check_int("workers", self.workers, 0, 64)


@dataclass(frozen=True)
class HeadOptions:
    """The head's hyper-parameters; L, D and the label count are filled in from the run."""

    embed_dim: int = 128
    conv_channels: int = 128
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    lstm_hidden: int = 512
    lstm_layers: int = 2
    bidirectional: bool = False
    lstm_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_head_options(self.embed_dim, self.conv_channels, self.kernel_sizes,
                           self.lstm_hidden, self.lstm_layers, self.bidirectional,
                           self.lstm_dropout)

    def config(self, num_layers: int, feature_dim: int, num_labels: int) -> HeadConfig:
        return HeadConfig(num_layers, feature_dim, num_labels, **asdict(self))


@dataclass(frozen=True)
class RunConfig:
    data: DataOptions
    split: SplitOptions = field(default_factory=SplitOptions)
    extractor: ExtractorOptions = field(default_factory=ExtractorOptions)
    head: HeadOptions = field(default_factory=HeadOptions)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self) -> dict[str, Any]:
        return _lists(asdict(self))

    @classmethod
    def from_json(cls, d: Any) -> RunConfig:
        """From to_json's output; anything else is a ValueError saying what is wrong."""
        if not isinstance(d, dict) or set(d) != {f.name for f in fields(cls)}:
            raise ValueError("expected an object with data, split, extractor, head and train")
        sections = {}
        for f in fields(cls):
            values = d[f.name]
            if not isinstance(values, dict):
                raise ValueError(f"{f.name}: expected an object")
            section = _SECTIONS[f.name]
            expected = {g.name for g in fields(section)}
            if set(values) != expected:
                missing, extra = sorted(expected - set(values)), sorted(set(values) - expected)
                raise ValueError(f"{f.name}: missing keys {missing}, unknown keys {extra}")
            values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
            try:
                sections[f.name] = section(**values)
            except ValueError as e:
                raise ValueError(f"{f.name}: {e}") from e
        return cls(**sections)

    def differences(self, other: RunConfig) -> list[str]:
        """Settings that differ and would change results ("section.key: old -> new")."""
        mine, theirs = self.to_json(), other.to_json()
        out = []
        for section, values in mine.items():
            for key, value in values.items():
                if (section, key) not in RUNTIME_ONLY and theirs[section].get(key) != value:
                    out.append(f"{section}.{key}: {theirs[section].get(key)!r} -> {value!r}")
        return out


_SECTIONS: dict[str, type] = {"data": DataOptions, "split": SplitOptions,
                              "extractor": ExtractorOptions, "head": HeadOptions,
                              "train": TrainConfig}


def _lists(obj: Any) -> Any:
    """Tuples become lists, so a config equals itself after a JSON round trip."""
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_lists(v) for v in obj]
    return obj
