"""What the runtime returns: the model's description and typed predictions.

`ModelInfo` comes from an artifact's embedded metadata (or a run's files);
`Prediction` is one clip, `SegmentPrediction` a part of a recording,
`RecordingPrediction` a whole recording (the duration-weighted mean of its
segments), `FileError` a file that got no prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.runtime.audio import MAX_RATE, MIN_RATE
from emo_toolkit.runtime.checks import labels_error
from emo_toolkit.runtime.errors import ArtifactError
from emo_toolkit.runtime.windows import (
    TRAINING_DURATIONS,
    ClipDurations,
    Window,
    resolve_window,
)

INPUT_LAYOUTS = ("clips", "padded", "concatenated")
"""How a graph takes a batch. clips: `waveform` (B, S), every row a whole clip.
padded: `waveform` (B, S) zero-padded rows + `lengths` (B,) int64 valid samples.
concatenated: `waveform` (N,) the clips end to end + `lengths` (B,) int32 (what Triton's
ragged batching hands a model)."""


def layout_inputs(layout: str, batch: np.ndarray, lengths: np.ndarray
                  ) -> tuple[np.ndarray, ...]:
    """A float32 (B, S) batch and its int64 (B,) valid lengths as the graph's inputs in
    `layout` (the caller has checked that a "clips" graph gets whole rows only)."""
    if layout == "padded":
        return batch, lengths
    if layout == "concatenated":
        return (np.concatenate([row[:k] for row, k in zip(batch, lengths, strict=True)]),
                lengths.astype(np.int32))
    return (batch,)


@dataclass(frozen=True)
class ModelInfo:
    """What a recognizer runs: from the artifact's embedded metadata, or the run's files."""

    labels: tuple[str, ...]
    sample_rate: int          # the rate the model's input is at (a baked-in resampler's input)
    min_samples: int          # shortest input, at sample_rate
    source: str               # the artifact file or run directory
    kind: str                 # "onnx", "torchscript", "pt2", "aoti" or "run"
    precision: str = "fp32"
    untrained: bool = False   # the extractor had random weights: predictions are smoke tests
    metadata: Mapping[str, Any] = field(default_factory=dict)
    layout: str = "clips"     # how the graph takes a batch: one of INPUT_LAYOUTS
    max_samples: int | None = None  # longest input, at sample_rate (None: no limit)
    runtime: str = "torch"    # what runs it: onnxruntime, openvino, torch or executorch
    threads: int | None = None  # the runtime's threads, as it reports them (None: unsaid)
    durations: ClipDurations | None = None  # the training clips' (None: not recorded)

    def window(self, seconds: float | Window | None = None) -> Window:
        """The window of `seconds` for this model (None: the default one recordings and
        streams get unless told), resolved once (toolkit/runtime/windows.py); a Window
        already resolved for this model passes as it is."""
        if isinstance(seconds, Window):
            if seconds.sample_rate != self.sample_rate:
                raise ValueError(f"a window resolved at {seconds.sample_rate} Hz for a model "
                                 f"at {self.sample_rate} Hz")
            return seconds
        return resolve_window(seconds, sample_rate=self.sample_rate,
                              max_samples=self.max_samples, durations=self.durations)

    @property
    def default_window_s(self) -> float:
        """The default window's seconds (capped by the longest input the artifact takes)."""
        return self.window().seconds

    @property
    def takes_lengths(self) -> bool:
        """Clips of different lengths can share a batch (the graph has a lengths input)."""
        return self.layout != "clips"

    @classmethod
    def from_metadata(cls, metadata: Any, source: str | Path, kind: str) -> ModelInfo:
        """Check the fields the runtime relies on; ArtifactError names the first bad one."""
        def bad(what: str) -> ArtifactError:
            return ArtifactError(f"{source}: its emo_toolkit metadata {what}")

        if not isinstance(metadata, dict):
            raise bad("is not a JSON object")
        labels = metadata.get("labels")
        if not (isinstance(labels, list) and len(labels) >= 2 and len(set(labels)) == len(labels)
                and all(isinstance(x, str) and x for x in labels)):
            raise bad("has no list of two or more distinct labels")
        problem = labels_error(labels)
        if problem:
            raise bad(f"has a label that breaks the label rule: {problem}")
        rate, need = metadata.get("sample_rate"), metadata.get("min_samples")
        if type(rate) is not int or not MIN_RATE <= rate <= MAX_RATE:
            raise bad(f"has a sample_rate outside {MIN_RATE}-{MAX_RATE} Hz: {rate!r}")
        if type(need) is not int or not 1 <= need <= rate:
            raise bad(f"has a min_samples that is not 1 to {rate}: {need!r}")
        layout = metadata.get("input_layout", "clips")
        if layout not in INPUT_LAYOUTS:
            raise bad(f"names an input layout this runtime does not know: {layout!r}")
        longest = metadata.get("max_samples")
        if longest is not None and (type(longest) is not int or longest < need):
            raise bad(f"has a max_samples below min_samples or not a whole number: "
                      f"{longest!r}")
        durations = None
        if metadata.get(TRAINING_DURATIONS) is not None:
            try:
                durations = ClipDurations.from_json(metadata[TRAINING_DURATIONS])
            except ValueError as e:
                raise bad(f"{TRAINING_DURATIONS} {e}") from None
        return cls(tuple(labels), rate, need, str(source), kind,
                   str(metadata.get("precision", "fp32")),
                   bool(metadata.get("untrained_extractor", False)), metadata, layout, longest,
                   durations=durations)


@dataclass(frozen=True)
class Prediction:
    """One clip's result: the top label, the probabilities by label and the raw logits;
    `untrained`: the model's extractor has UNTRAINED weights (a smoke test, not a result)."""

    label: str
    probabilities: dict[str, float]
    logits: tuple[float, ...]
    untrained: bool = False

    @classmethod
    def from_logits(cls, logits: np.ndarray, labels: Sequence[str],
                    untrained: bool = False) -> Prediction:
        z = np.asarray(logits, dtype=np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        return cls(labels[int(np.argmax(z))], dict(zip(labels, p.tolist(), strict=True)),
                   tuple(z.tolist()), untrained)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
                "untrained": self.untrained}


@dataclass(frozen=True)
class SegmentPrediction:
    """A part of a recording, [start, end) in seconds, and its prediction."""

    start: float
    end: float
    prediction: Prediction

    def to_json(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3),
                **self.prediction.to_json()}


@dataclass(frozen=True)
class RecordingPrediction:
    """A whole recording: its segments, and the duration-weighted mean of their
    probabilities with the label that mean ranks first."""

    label: str
    probabilities: dict[str, float]
    duration: float
    segments: tuple[SegmentPrediction, ...]
    untrained: bool = False  # as Prediction.untrained

    @classmethod
    def from_segments(cls, segments: Sequence[SegmentPrediction],
                      labels: Sequence[str]) -> RecordingPrediction:
        weights = np.array([s.end - s.start for s in segments], dtype=np.float64)
        probs = np.array([[s.prediction.probabilities[k] for k in labels] for s in segments])
        mean = weights @ probs / weights.sum()
        return cls(labels[int(np.argmax(mean))], dict(zip(labels, mean.tolist(), strict=True)),
                   float(segments[-1].end), tuple(segments),
                   any(s.prediction.untrained for s in segments))

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
                "duration": round(self.duration, 3), "segments": len(self.segments),
                "untrained": self.untrained}


@dataclass(frozen=True)
class FileError:
    """Why one file got no prediction: a stable reason code and a message."""

    reason: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"error": self.reason, "message": self.message}
