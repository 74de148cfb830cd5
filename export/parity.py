"""Parity of an exported artifact against eager PyTorch, on golden inputs.

Every export is loaded back through its own runtime and compared with the eager
`ExportGraph` on: 0.05 s, 1 s, 3 s and 10 s speech-like clips, a batch of four
equal-length clips, random noise, a clip of the run's own corpus, and (when a
rate is baked in) a clip synthesised at that input rate. Per input it reports
the max absolute and relative logit difference (relative to the largest eager
logit) and the top-1 agreement; fp32 exports must stay within 1e-4 with no
NaN/Inf (the tolerance docs/export.md states).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from export.graph import ExportGraph, eager_outputs
from toolkit.audio import SAMPLE_RATE, load_audio, resample
from toolkit.demo_corpus import speech_like
from toolkit.errors import EmoToolkitError
from toolkit.recognizer import Runner

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
                "max_rel_diff": self.max_rel_diff, "top1_agreement": self.top1_agreement,
                "cases": [asdict(c) for c in self.cases]}

    def summary(self) -> str:
        width = max(len(c.name) for c in self.cases)
        rows = [f"  {c.name:{width}s} {c.shape!s:13s} max|Δ| {c.max_abs_diff:9.2e}  "
                f"rel {c.max_rel_diff:9.2e}  top-1 {c.top1_agreement:6.1%}" for c in self.cases]
        return f"parity of {self.backend} ({self.precision}) against eager PyTorch:\n" + \
            "\n".join(rows)


def golden_inputs(input_rate: int, corpus_clip: Path | None, seed: int = 0) -> dict[str, Tensor]:
    rng = np.random.default_rng(seed)

    def speech(seconds: float, i: int, rate: int = SAMPLE_RATE) -> np.ndarray:
        x = speech_like(seconds, i, rate, seed)
        return x if rate == input_rate else resample(x, rate, input_rate)

    cases = {f"speech {s:g} s": speech(s, i)[None] for i, s in enumerate((0.05, 1.0, 3.0, 10.0))}
    cases["batch of 4 x 1 s"] = np.stack([speech(1.0, 10 + i) for i in range(4)])
    cases["noise 2 s"] = rng.uniform(-0.5, 0.5, (1, 2 * input_rate)).astype(np.float32)
    if corpus_clip is not None:
        audio = load_audio(corpus_clip, input_rate, min_samples=1)
        cases[f"corpus clip {corpus_clip.name}"] = audio.samples[None]
    if input_rate != SAMPLE_RATE:
        cases[f"speech 2 s at {input_rate} Hz"] = speech(2.0, 20, rate=input_rate)[None]
    return {name: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            for name, x in cases.items()}


def compare(graph: ExportGraph, runner: Runner, inputs: dict[str, Tensor], backend: str,
            precision: str) -> ParityReport:
    results = []
    for name, waveform in inputs.items():
        reference = eager_outputs(graph, waveform)[0].numpy()
        got = np.asarray(runner(waveform.numpy()), dtype=np.float64)
        diff = np.abs(got - reference)
        finite = bool(np.isfinite(got).all())
        scale = max(float(np.abs(reference).max()), 1e-12)
        agree = float((got.argmax(axis=1) == reference.argmax(axis=1)).mean())
        results.append(CaseResult(name, tuple(waveform.shape), float(diff.max()),
                                  float(diff.max()) / scale, agree, finite))
    limit = FP32_MAX_ABS if precision == "fp32" else None
    return ParityReport(backend, precision, tuple(results), limit)


def top1_agreement_on_files(graph: ExportGraph, runner: Runner, files: list[Path]) -> float:
    """Share of files where the artifact's top-1 label equals eager's (the int8/fp16 gate)."""
    agree = 0
    for path in files:
        x = torch.from_numpy(load_audio(path, graph.input_rate, graph.min_samples).samples)[None]
        agree += int(eager_outputs(graph, x)[0].argmax() == int(np.argmax(runner(x.numpy()))))
    return agree / len(files)
