"""Parity of an exported artifact against eager PyTorch, on golden inputs.

Every export is loaded back through its own runtime and compared with the eager
`ExportGraph` on: 0.05 s, 1 s, 3 s and 10 s speech-like clips, a batch of four
equal-length clips, random noise, a clip of the run's own corpus, (when a rate
is baked in) a clip synthesised at that input rate, and (for graphs that take
lengths) ragged batches, each row against its clip alone. Per input it reports
the max absolute and relative logit difference (relative to the largest eager
logit), the max probability difference and the top-1 agreement; fp32 exports
must stay within 1e-4 with no NaN/Inf (the tolerance docs/export.md states).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.export.graph import ExportGraph, eager_outputs
from emo_toolkit.runtime.audio import SAMPLE_RATE, load_audio, resample
from emo_toolkit.runtime.errors import EmoToolkitError
from emo_toolkit.runtime.recognizer import pad_clips

Logits = Callable[[np.ndarray, Sequence[int] | None], np.ndarray]
"""(batch, lengths or None) -> logits: the runtime's Recognizer.logits."""

FP32_MAX_ABS = 1e-4


class ParityError(EmoToolkitError):
    """The artifact does not reproduce eager PyTorch within the contract."""


@dataclass(frozen=True)
class CaseResult:
    name: str
    shape: tuple[int, int]
    max_abs_diff: float
    max_rel_diff: float
    top1_agreement: float
    finite: bool
    max_prob_diff: float


@dataclass(frozen=True)
class ParityReport:
    backend: str
    precision: str
    cases: tuple[CaseResult, ...]
    max_abs_limit: float | None

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.cases)

    @property
    def max_rel_diff(self) -> float:
        return max(c.max_rel_diff for c in self.cases)

    @property
    def max_prob_diff(self) -> float:
        return max(c.max_prob_diff for c in self.cases)

    @property
    def top1_agreement(self) -> float:
        return min(c.top1_agreement for c in self.cases)

    def failures(self) -> list[str]:
        out = [f"{c.name}: NaN or Inf in the outputs" for c in self.cases if not c.finite]
        if self.max_abs_limit is not None:
            out += [f"{c.name}: max |Δlogit| {c.max_abs_diff:.2e} > {self.max_abs_limit:.0e}"
                    for c in self.cases if c.max_abs_diff > self.max_abs_limit]
        return out

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision,
                "max_abs_limit": self.max_abs_limit, "max_abs_diff": self.max_abs_diff,
                "max_rel_diff": self.max_rel_diff, "max_prob_diff": self.max_prob_diff,
                "top1_agreement": self.top1_agreement,
                "cases": [asdict(c) for c in self.cases]}

    def summary(self) -> str:
        width = max(len(c.name) for c in self.cases)
        rows = [f"  {c.name:{width}s} {c.shape!s:13s} max|Δ| {c.max_abs_diff:9.2e}  "
                f"rel {c.max_rel_diff:9.2e}  |Δp| {c.max_prob_diff:9.2e}  "
                f"top-1 {c.top1_agreement:6.1%}" for c in self.cases]
        return f"parity of {self.backend} ({self.precision}) against eager PyTorch:\n" + \
            "\n".join(rows)


@dataclass(frozen=True)
class Golden:
    """One golden input: clips (1-D, at the graph's input rate) run as one batch. Clips of
    different lengths make a ragged batch, zero-padded with their lengths."""

    name: str
    clips: tuple[np.ndarray, ...]

    @property
    def ragged(self) -> bool:
        return len({c.size for c in self.clips}) > 1

    def padded(self) -> tuple[np.ndarray, list[int]]:
        return pad_clips(self.clips)


def golden_inputs(input_rate: int, corpus_clip: Path | None, seed: int = 0,
                  ragged: bool = False, min_samples: int = 400) -> list[Golden]:
    """The golden inputs; with `ragged` (graphs that take lengths) also padded batches of
    clips of different lengths, down to `min_samples`."""
    rng = np.random.default_rng(seed)

    def speech(seconds: float, i: int, rate: int = SAMPLE_RATE) -> np.ndarray:
        x = speech_like(seconds, i, rate, seed)
        return x if rate == input_rate else resample(x, rate, input_rate)

    cases = {f"speech {s:g} s": [speech(s, i)] for i, s in enumerate((0.05, 1.0, 3.0, 10.0))}
    cases["batch of 4 x 1 s"] = [speech(1.0, 10 + i) for i in range(4)]
    cases["noise 2 s"] = [rng.uniform(-0.5, 0.5, 2 * input_rate).astype(np.float32)]
    if corpus_clip is not None:
        cases[f"corpus clip {corpus_clip.name}"] = [load_audio(corpus_clip, input_rate,
                                                               min_samples=1).samples]
    if input_rate != SAMPLE_RATE:
        cases[f"speech 2 s at {input_rate} Hz"] = [speech(2.0, 20, rate=input_rate)]
    if ragged:
        cases["ragged 3 s, 1 s, 0.3 s, shortest"] = [
            speech(3.0, 30), speech(1.0, 31), speech(0.3, 32), speech(3.0, 33)[:min_samples]]
        cases["ragged 10 s, 2.5 s noise"] = [
            speech(10.0, 34), rng.uniform(-0.5, 0.5, 5 * input_rate // 2).astype(np.float32)]
    return [Golden(name, tuple(np.ascontiguousarray(c, dtype=np.float32) for c in clips))
            for name, clips in cases.items()]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def compare(graph: ExportGraph, logits: Logits, inputs: list[Golden], backend: str,
            precision: str) -> ParityReport:
    """Each golden input through `logits` against eager fp32 `graph`; a ragged batch's rows
    against each clip alone."""
    results = []
    for golden in inputs:
        batch, lengths = golden.padded()
        if golden.ragged:
            reference = np.concatenate([eager_outputs(graph, torch.from_numpy(c)[None])[0].numpy()
                                        for c in golden.clips])
            got = np.asarray(logits(batch, lengths), dtype=np.float64)
        else:
            reference = eager_outputs(graph, torch.from_numpy(batch))[0].numpy()
            got = np.asarray(logits(batch, None), dtype=np.float64)
        diff = np.abs(got - reference)
        finite = bool(np.isfinite(got).all())
        scale = max(float(np.abs(reference).max()), 1e-12)
        agree = float((got.argmax(axis=1) == reference.argmax(axis=1)).mean())
        prob_diff = float(np.abs(_softmax(got) - _softmax(reference.astype(np.float64))).max()) \
            if finite else float("inf")
        results.append(CaseResult(golden.name, tuple(batch.shape), float(diff.max()),
                                  float(diff.max()) / scale, agree, finite, prob_diff))
    limit = FP32_MAX_ABS if precision == "fp32" else None
    return ParityReport(backend, precision, tuple(results), limit)


DISAGREEING_LISTED = 100  # clips named in the metadata; a worse export names only its count


@dataclass(frozen=True)
class Agreement:
    """How a reduced-precision artifact's top-1 labels compare with eager fp32 on files."""

    clips: int
    top1_agreement: float
    max_prob_diff: float
    disagreeing: tuple[str, ...]   # the files whose top-1 label differs, in order

    def to_json(self) -> dict[str, Any]:
        """For the metadata: the first DISAGREEING_LISTED clips by path, and their count."""
        return {"test_split_clips": self.clips,
                "test_split_top1_agreement": self.top1_agreement,
                "test_split_max_prob_diff": self.max_prob_diff,
                "disagreeing_count": len(self.disagreeing),
                "disagreeing_clips": list(self.disagreeing[:DISAGREEING_LISTED])}


def agreement_on_files(graph: ExportGraph, logits: Logits, files: list[Path]) -> Agreement:
    """Top-1 agreement with eager fp32 over `files`, one clip per call (the int8/fp16/bf16
    gate), with the largest probability difference and the clips that disagree."""
    disagreeing, worst = [], 0.0
    for path in files:
        x = torch.from_numpy(load_audio(path, graph.input_rate, graph.min_samples).samples)[None]
        reference = eager_outputs(graph, x)[0].numpy().astype(np.float64)
        got = np.asarray(logits(x.numpy(), None), dtype=np.float64)
        finite = bool(np.isfinite(got).all())  # non-finite: as far off as probabilities go
        worst = max(worst, float(np.abs(_softmax(got) - _softmax(reference)).max())
                    if finite else 1.0)
        if not finite or int(got.argmax()) != int(reference.argmax()):
            disagreeing.append(str(path))
    return Agreement(len(files), 1 - len(disagreeing) / len(files), worst, tuple(disagreeing))
