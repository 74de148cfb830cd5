"""The full configuration of a training run, saved as config.json in its run directory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.head import HeadConfig
from toolkit.splits import PROTOCOLS
from toolkit.ssl_models import DEFAULT_EXTRACTOR
from toolkit.train import TrainConfig

# Settings that change where or how fast work happens, never its results: a rerun
# with other values still resumes the same run.
RUNTIME_ONLY = {("extractor", "cache"), ("extractor", "workers"), ("extractor", "max_batch")}


@dataclass(frozen=True)
class DataOptions:
    source: str
    layout: str = "auto"
    speaker_regex: str | None = None


@dataclass(frozen=True)
class SplitOptions:
    protocol: str = "holdout"
    group_by: str = "speaker"
    folds: int | None = None
    test_fraction: float = 0.2
    test_speakers: tuple[str, ...] | None = None
    allow_speaker_overlap: bool = False

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.protocol!r}; choose one of {PROTOCOLS}")
        if self.group_by not in ("speaker", "session"):
            raise ValueError(f"group_by must be speaker or session, got {self.group_by!r}")


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
    def from_json(cls, d: dict[str, Any]) -> RunConfig:
        split = dict(d["split"])
        if split.get("test_speakers") is not None:
            split["test_speakers"] = tuple(split["test_speakers"])
        head = {**d["head"], "kernel_sizes": tuple(d["head"]["kernel_sizes"])}
        return cls(DataOptions(**d["data"]), SplitOptions(**split),
                   ExtractorOptions(**d["extractor"]), HeadOptions(**head),
                   TrainConfig(**d["train"]))

    def differences(self, other: RunConfig) -> list[str]:
        """Settings that differ and would change results ("section.key: old -> new")."""
        mine, theirs = self.to_json(), other.to_json()
        out = []
        for section, values in mine.items():
            for key, value in values.items():
                if (section, key) not in RUNTIME_ONLY and theirs[section].get(key) != value:
                    out.append(f"{section}.{key}: {theirs[section].get(key)!r} -> {value!r}")
        return out


def _lists(obj: Any) -> Any:
    """Tuples become lists, so a config equals itself after a JSON round trip."""
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_lists(v) for v in obj]
    return obj
