"""The end-to-end inference module, waveform -> logits and probabilities, and its loading.

emo-predict, emo-export and emo-bench all use `EmotionRecognizer`: the frozen
SSL extractor on whole clips (no padding, no masks) followed by the head's
unpacked path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from toolkit.audio import load_audio
from toolkit.errors import AudioError, EmoToolkitError
from toolkit.extractor import LayerFeatureExtractor
from toolkit.featurize import open_extractor
from toolkit.head import EmotionHead, HeadConfig
from toolkit.run_config import RunConfig
from toolkit.rundir import RunDir


class RunLoadError(EmoToolkitError):
    """A run directory that cannot serve predictions."""


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

    def forward(self, waveform: Tensor) -> tuple[Tensor, Tensor]:
        """waveform (B, S) float32 at `sample_rate`, equal-length clips -> logits, probs (B, C)."""
        layers, _ = self.extractor(waveform)
        logits = self.head(layers.transpose(0, 1))
        return logits, torch.softmax(logits, dim=-1)


@dataclass(frozen=True)
class LoadedRun:
    recognizer: EmotionRecognizer
    split: str
    config: RunConfig
    extractor_json: dict[str, Any]


def load_run(run_dir: str | Path, split: str | None = None, device: str = "cpu") -> LoadedRun:
    """Rebuild the recognizer a run trained: same extractor and weights, the split's head."""
    run = RunDir(run_dir)
    if not run.exists("config.json"):
        raise RunLoadError(f"{run.root}: not a run directory (no config.json)")
    if not run.exists("status.json") or run.read_json("status.json").get("state") != "complete":
        raise RunLoadError(f"{run.root}: the run is not complete; finish it with emo-train first")
    available = sorted(p.parent.name for p in run.root.glob("splits/*/head.safetensors"))
    if split is None:
        if not run.exists("model.json"):
            raise RunLoadError(f"{run.root}: a cross-validation run has one head per fold; "
                               f"choose one with --split ({', '.join(available)})")
        split = run.read_json("model.json")["split"]
    if split not in available:
        raise RunLoadError(f"{run.root}: no trained head for split {split!r}; "
                           f"available: {', '.join(available)}")
    config = RunConfig.from_json(run.read_json("config.json"))
    saved = run.read_json("extractor.json")
    x = config.extractor
    extractor = open_extractor(x.name, weights=x.weights, untrained=x.untrained, device=device)
    if extractor.identity.weights_sha256 != (saved.get("state_dict_sha256")
                                             or saved["weights_sha256"]):
        raise RunLoadError(f"{run.root}: the extractor weights found now "
                           f"({extractor.identity.source}) are not the ones the run used")
    head = EmotionHead(HeadConfig.from_json(run.read_json(f"splits/{split}/head.json")))
    head.load_state_dict(load_file(str(run.path(f"splits/{split}/head.safetensors"))))
    recognizer = EmotionRecognizer(extractor, head.to(device), run.read_json("labels.json"))
    return LoadedRun(recognizer, split, config, saved)


def predict_files(recognizer: EmotionRecognizer, paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """One result per file: label and probabilities, or the error that stopped it."""
    device = next(recognizer.parameters()).device
    for path in paths:
        try:
            audio = load_audio(path, recognizer.sample_rate, recognizer.min_samples)
        except AudioError as e:
            yield {"file": str(path), "error": e.reason, "message": e.problem}
            continue
        with torch.inference_mode():
            _, probs = recognizer(torch.from_numpy(audio.samples)[None].to(device))
        p = probs[0].cpu().tolist()
        best = max(range(len(p)), key=p.__getitem__)
        yield {"file": str(path), "label": recognizer.labels[best],
               "probabilities": {label: round(v, 6) for label, v in
                                 zip(recognizer.labels, p, strict=True)}}
