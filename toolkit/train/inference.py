"""The eager PyTorch model, waveform -> logits and probabilities, and its loading from a run.

`EmotionRecognizer` is the frozen SSL extractor followed by the head, on whole
clips (no padding, no masks) or on zero-padded clips with their lengths; the
exporters wrap it, and `recognizer_from_run` runs it as the runtime's Recognizer (the
public API).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from emo_toolkit.features.extractor import LayerFeatureExtractor, open_extractor
from emo_toolkit.features.ssl_models import ExtractorIdentity
from emo_toolkit.runtime.formats.base import torch_runner
from emo_toolkit.runtime.io import InputFileError
from emo_toolkit.runtime.predictions import ModelInfo
from emo_toolkit.runtime.recognizer import Recognizer, default_max_padding
from emo_toolkit.train import rundir as rd
from emo_toolkit.train.head import EmotionHead
from emo_toolkit.train.run_config import RunConfig
from emo_toolkit.train.rundir import RunDir, RunLoadError


class EmotionRecognizer(nn.Module):
    def __init__(self, extractor: LayerFeatureExtractor, head: EmotionHead, labels: list[str]):
        super().__init__()
        if head.config.num_labels != len(labels):
            raise ValueError("the head's outputs and the labels differ in number")
        self.extractor, self.head, self.labels = extractor.eval(), head.eval(), list(labels)

    @property
    def sample_rate(self) -> int:
        return self.extractor.sample_rate

    @property
    def min_samples(self) -> int:
        return self.extractor.min_samples

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """waveform (B, S) float32 at `sample_rate` -> logits, probs (B, C). Without `lengths`
        every row is one whole clip; with `lengths` (B,) rows are zero-padded clips, each
        giving what it gives alone (the extractor's and the head's padded paths)."""
        layers, frames = self.extractor(waveform, lengths)
        logits = self.head(layers.transpose(0, 1), None if lengths is None else frames)
        return logits, torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class LoadedRun:
    recognizer: EmotionRecognizer
    split: str
    config: RunConfig
    extractor_json: dict[str, Any]


def load_run(run_dir: str | Path, split: str | None = None, device: str = "cpu") -> LoadedRun:
    """Rebuild the recognizer a run trained: same extractor and weights, the split's head.

    Every file is checked first (RunDir's readers), so a damaged run is one RunLoadError."""
    run = RunDir(run_dir)
    if not run.exists(rd.CONFIG):
        raise RunLoadError(f"{run.root}: not a run directory (no config.json)")
    try:
        state = run.status()["state"]
    except InputFileError as e:
        raise RunLoadError(str(e)) from e
    if state != "complete":
        raise RunLoadError(f"{run.root}: the run is not complete ({state}); finish it with "
                           "emo-train first")
    config, labels, saved = run.config(), run.labels(), run.extractor_info()
    available = run.split_names()
    if split is None:
        split = run.default_split()
        if split is None:
            raise RunLoadError(f"{run.root}: a cross-validation run has one head per fold; "
                               f"choose one with --split ({', '.join(available)})")
    if split not in available:
        raise RunLoadError(f"{run.root}: no trained head for split {split!r}; "
                           f"available: {', '.join(available) or 'none'}")
    head_config = run.head_config(split)
    head_json = run.path(rd.in_split(split, rd.HEAD_CONFIG))
    if head_config.num_labels != len(labels):
        raise RunLoadError(f"{head_json}: {head_config.num_labels} outputs, but labels.json "
                           f"names {len(labels)} labels")
    recorded = (saved["num_layers"], saved["dim"])
    _same_shape(f"{head_json}: made for", (head_config.num_layers, head_config.feature_dim),
                "extractor.json has", recorded)
    head = EmotionHead(head_config)
    head.load_state_dict(run.head_state(split, head))
    x = config.extractor
    extractor = open_extractor(x.name, weights=x.weights, untrained=x.untrained, device=device)
    if extractor.identity.weights_sha256 != ExtractorIdentity.from_json(saved).weights_sha256:
        raise RunLoadError(f"{run.root}: the extractor weights found now "
                           f"({extractor.identity.source}) are not the ones the run used")
    _same_shape(f"{run.path(rd.EXTRACTOR)}:", recorded, f"{x.name} has",
                (extractor.num_layers, extractor.dim))
    recognizer = EmotionRecognizer(extractor, head.to(device), labels)
    return LoadedRun(recognizer, split, config, saved)


def _same_shape(where: str, shape: tuple[int, int], other: str, other_shape: tuple[int, int]
                ) -> None:
    """RunLoadError when two (layers, dims) shapes a run relies on differ."""
    if shape != other_shape:
        raise RunLoadError(f"{where} {shape[0]} layers x {shape[1]} dims, but {other} "
                           f"{other_shape[0]} x {other_shape[1]}")


def recognizer_from_run(run_dir: str | Path, split: str | None = None,
                        device: str = "cpu") -> Recognizer:
    """The run's eager PyTorch model (its extractor and the split's head) as the runtime's
    Recognizer; it lives here so that the runtime never imports training code."""
    loaded = load_run(run_dir, split, device)
    model = loaded.recognizer
    info = ModelInfo(tuple(model.labels), model.sample_rate, model.min_samples,
                     str(run_dir), "run", "fp32", not model.extractor.identity.trained,
                     {"split": loaded.split}, layout="padded",
                     durations=RunDir(run_dir).training_durations(loaded.split))
    return Recognizer(torch_runner(model, device), info, default_max_padding(device))
