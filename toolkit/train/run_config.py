"""Every setting of a training run, in one place: one frozen dataclass per concern with
its defaults, its command-line help (field metadata) and its validation.

The command-line options of emo-train and emo-data are generated from these fields
(emo_toolkit.cli.support.dataclass_options), so the CLI and the library share defaults
and checks. The whole RunConfig is saved as config.json in the run directory. This
module does not import torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from emo_toolkit.data.datasets import LAYOUTS
from emo_toolkit.data.splits import PROTOCOLS, make_splits
from emo_toolkit.features.ssl_models import DEFAULT_EXTRACTOR, EXTRACTOR_NAMES, PRECISIONS
from emo_toolkit.runtime.checks import (
    check_bool,
    check_choice,
    check_device,
    check_float,
    check_int,
    check_speaker_regex,
    check_str,
)
from emo_toolkit.runtime.settings import setting

# Settings that change where or how fast work happens, never its results: a rerun
# with other values still resumes the same run.
RUNTIME_ONLY = {("extractor", "cache"), ("extractor", "workers"), ("extractor", "max_batch")}
DEFAULT_CACHE = str(os.environ.get("EMO_TOOLKIT_CACHE",
                                   Path.home() / ".cache" / "emo-toolkit" / "features"))
MAX_KERNEL_SIZE = 63
MAX_WIDTH = 8192


@dataclass(frozen=True)
class DataOptions:
    source: str
    layout: str = setting("auto", "how labels and speakers are found: one folder per label, a "
                          "CSV manifest (path,label[,speaker][,session]), or a public corpus's "
                          "file names; auto detects it.", choices=LAYOUTS)
    speaker_regex: str | None = setting(
        None, "folders layout: read the speaker from file names with this regex, which must "
        "have a (?P<speaker>...) group. Default: the sub-folder under each label folder, if any.")

    def __post_init__(self) -> None:
        check_str("source", self.source)
        check_choice("layout", self.layout, LAYOUTS)
        check_str("speaker_regex", self.speaker_regex, optional=True)
        check_speaker_regex(self.speaker_regex)


@dataclass(frozen=True)
class SplitOptions:
    protocol: str = setting("holdout", "notebook: the original shuffle into 5 parts, part 5 held "
                            "out; holdout: whole speakers (or sessions) held out for test; loso: "
                            "leave-speaker-out cross-validation", choices=PROTOCOLS)
    group_by: str = setting("speaker", "what holdout and loso keep apart",
                            choices=("speaker", "session"))
    folds: int | None = setting(None, "loso: number of folds [default: one per speaker/session]")
    test_fraction: float = setting(0.2, "holdout: hold out whole groups until this share of "
                                   "clips is in test")
    test_speakers: tuple[str, ...] | None = setting(
        None, "holdout: exactly these speakers/sessions in test (A,B)")
    allow_speaker_overlap: bool = setting(
        False, "let one speaker sit in train and test (refused by default)")

    def __post_init__(self) -> None:
        check_choice("protocol", self.protocol, PROTOCOLS)
        check_choice("group_by", self.group_by, ("speaker", "session"))
        if self.folds is not None:
            check_int("folds", self.folds, 2, 10_000)
        check_float("test_fraction", self.test_fraction, 0.0, 1.0, low_open=True,
                    high_open=True)
        names = self.test_speakers
        if names is not None and (not isinstance(names, tuple) or not names or not all(
                isinstance(n, str) and n for n in names)):
            raise ValueError(f"test speakers must be a non-empty list of names, got {names!r}")
        check_bool("allow_speaker_overlap", self.allow_speaker_overlap)

    def make(self, clips: list[Any], seed: int) -> list[Any]:
        """The splits these options describe (emo_toolkit.data.splits.make_splits)."""
        return make_splits(self.protocol, clips, seed=seed, group_by=self.group_by,  # type: ignore[arg-type]
                           folds=self.folds, test_fraction=self.test_fraction,
                           test_groups=self.test_speakers,
                           allow_speaker_overlap=self.allow_speaker_overlap)


@dataclass(frozen=True)
class ExtractorOptions:
    name: str = setting(DEFAULT_EXTRACTOR, "self-supervised model whose layers are the features",
                        option="extractor", choices=EXTRACTOR_NAMES)
    weights: str | None = setting(
        None, "local checkpoint in torchaudio's state-dict format (.pt/.pth, loaded with "
        "weights_only=True, or .safetensors) [default: the pretrained weights from the torch "
        "hub cache, downloaded if missing]", option="extractor_weights")
    untrained: bool = setting(False, "random weights: for smoke runs and tests only; labelled "
                              "UNTRAINED")
    precision: str = setting("fp32", "fp16/bf16: CUDA autocast", choices=PRECISIONS)
    storage: str = setting("fp16", "dtype of cached features", choices=("fp16", "fp32"))
    cache: str = setting(DEFAULT_CACHE, "feature cache folder (or set EMO_TOOLKIT_CACHE)")
    max_batch: int | None = setting(None, "clips per extraction batch [default: 1 on cpu, 16 "
                                    "on cuda]")
    workers: int = setting(1, "DataLoader processes decoding audio while the model runs "
                           "(0: none)")

    def __post_init__(self) -> None:
        check_choice("extractor", self.name, EXTRACTOR_NAMES)
        check_str("extractor weights", self.weights, optional=True)
        check_bool("untrained", self.untrained)
        if self.untrained and self.weights:
            raise ValueError("choose either extractor weights or untrained, not both")
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("storage", self.storage, ("fp16", "fp32"))
        check_str("cache", self.cache)
        if self.max_batch is not None:
            check_int("max_batch", self.max_batch, 1, 4096)
        check_int("workers", self.workers, 0, 64)


@dataclass(frozen=True)
class HeadOptions:
    """The head's hyper-parameters; L, D and the label count are filled in from the run."""

    embed_dim: int = setting(128, "head: Linear D -> this")
    conv_channels: int = setting(128, "head: channels per conv")
    kernel_sizes: tuple[int, ...] = setting((3, 5, 7), "head: the parallel convs' kernel sizes")
    lstm_hidden: int = setting(512, "head: LSTM hidden size")
    lstm_layers: int = setting(2, "head: LSTM layers")
    bidirectional: bool = setting(False, "head: bidirectional LSTM")
    lstm_dropout: float = setting(0.0, "head: between LSTM layers")

    def __post_init__(self) -> None:
        check_head_options(self)


def check_head_options(o: Any) -> None:
    """Positive, bounded sizes; odd kernels; dropout in [0, 1) (HeadOptions and HeadConfig)."""
    check_int("embed_dim", o.embed_dim, 1, MAX_WIDTH)
    check_int("conv_channels", o.conv_channels, 1, MAX_WIDTH)
    check_int("lstm_hidden", o.lstm_hidden, 1, MAX_WIDTH)
    check_int("lstm_layers", o.lstm_layers, 1, 16)
    check_bool("bidirectional", o.bidirectional)
    check_float("lstm_dropout", o.lstm_dropout, 0.0, 1.0, high_open=True)
    sizes = o.kernel_sizes
    if not isinstance(sizes, tuple) or not 1 <= len(sizes) <= 8:
        raise ValueError(f"kernel sizes: 1 to 8 of them, got {sizes!r}")
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 and k % 2
               for k in sizes):
        raise ValueError(f"kernel sizes must be odd and positive, got {sizes}")
    for k in sizes:
        check_int("kernel sizes", k, 1, MAX_KERNEL_SIZE)


@dataclass(frozen=True)
class TrainConfig:
    """Adam 1e-3, batch 16, up to 50 epochs: the notebook's values; the rest is new."""

    epochs: int = setting(50, "at most this many epochs")
    batch_size: int = setting(16, "clips per optimiser step; under torchrun the global batch, "
                              "shared by the processes (so a multiple of their number)")
    lr: float = setting(1e-3, "Adam learning rate")
    patience: int = setting(10, "stop after this many epochs without a better validation UA")
    val_fraction: float = setting(0.15, "share of the training clips held out for validation "
                                  "(whole speakers when known)")
    class_weighted: bool = setting(False, "weight the loss by inverse class frequency")
    grad_clip: float = setting(5.0, "max gradient norm (0: off)")
    seed: int = setting(0, "same seed, same results on cpu")
    device: str = setting("cpu", "cpu or cuda[:N]")

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1, 100_000)
        check_int("batch_size", self.batch_size, 1, 65_536)
        check_float("lr", self.lr, 0.0, 10.0, low_open=True)
        check_int("patience", self.patience, 1, 100_000)
        check_float("val_fraction", self.val_fraction, 0.0, 1.0, low_open=True, high_open=True)
        check_bool("class_weighted", self.class_weighted)
        check_float("grad_clip", self.grad_clip, 0.0, 1e6)
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_device(self.device)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
