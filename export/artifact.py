"""What every artifact format shares: I/O names, the loaded-artifact type, errors, the
per-precision graphs of one export, and the torch runner.

torch is imported inside the functions that need it: the ONNX path of the runtime
reads this module without torch installed.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import EmoToolkitError
from toolkit.predictions import INPUT_LAYOUTS
from toolkit.recognizer import Runner

if TYPE_CHECKING:
    import torch

    from export.graph import ExportGraph

INPUT_NAME = "waveform"
LENGTHS_NAME = "lengths"
OUTPUT_NAMES = ("logits", "probs")


def input_specs(layout: str) -> list[dict[str, Any]]:
    """The metadata's description of a graph's inputs, for each of INPUT_LAYOUTS."""
    note = "mono, in [-1, 1], at sample_rate; shorter than min_samples: rejected"
    if layout == "clips":
        return [{"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", "samples"],
                 "note": note}]
    if layout == "padded":
        return [{"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", "samples"],
                 "note": note + "; rows zero-padded after their lengths"},
                {"name": LENGTHS_NAME, "dtype": "int64", "shape": ["batch"],
                 "note": "valid samples of each row"}]
    if layout == "concatenated":
        return [{"name": INPUT_NAME, "dtype": "float32", "shape": ["total_samples"],
                 "note": note + "; the clips end to end"},
                {"name": LENGTHS_NAME, "dtype": "int32", "shape": ["batch"],
                 "note": "samples of each clip, in order"}]
    raise ValueError(f"unknown input layout {layout!r}; one of {', '.join(INPUT_LAYOUTS)}")


@dataclass(frozen=True)
class LoadedArtifact:
    """An artifact ready to run, and the metadata embedded in it (None: none yet)."""

    runner: Runner
    metadata: dict[str, Any] | None


class ExportError(EmoToolkitError):
    """An export that could not be written."""


class ProviderMissing(RuntimeError):
    """ONNX Runtime fell back from the requested execution provider."""


class Exports:
    """One graph on its way to several formats and precisions: each precision's graph and
    torch.export program are made once (the .pt2 program and the AOTInductor package
    share one)."""

    def __init__(self, graph: ExportGraph, device: str = "cpu"):
        self.graph, self.device = graph, device
        self._graphs: dict[str, ExportGraph] = {}
        self._programs: dict[str, torch.export.ExportedProgram] = {}
        self.cache: dict[tuple[str, str], Any] = {}  # a format's work kept for its embed step

    def graph_for(self, precision: str) -> ExportGraph:
        """fp32 and int8 (quantised from fp32) use the graph itself; fp16/bf16 a reduced copy
        (on the CPU, as the graph is)."""
        from export.graph import REDUCED_DTYPES, reduced_precision

        if precision not in REDUCED_DTYPES:
            return self.graph
        if precision not in self._graphs:
            self._graphs[precision] = reduced_precision(self.graph, precision)
        return self._graphs[precision]

    def program(self, precision: str = "fp32") -> torch.export.ExportedProgram:
        from export.torch_formats import export_program

        if precision not in self._programs:
            self._programs[precision] = export_program(self.graph_for(precision), self.device)
        return self._programs[precision]


def torch_runner(module: Any, device: str, precision: str = "fp32") -> Runner:
    """A torch module (eager, compiled, TorchScript, AOTInductor) as a Runner taking the
    graph's inputs as arrays; `precision` fp16/bf16 runs an fp32 module under autocast
    (eager backends), and the logits come back as float32."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def run(*arrays: np.ndarray) -> np.ndarray:
        autocast = torch.autocast(kind, dtype=dtype) if dtype else nullcontext()
        with torch.inference_mode(), autocast:
            logits = module(*(torch.from_numpy(a).to(device) for a in arrays))[0]
        return logits.float().cpu().numpy()

    return run


def example_arrays(graph: ExportGraph) -> tuple[torch.Tensor, ...]:
    """The graph's example inputs on the graph's device, for tracing and exporting. Graphs
    are traced on the CPU (a trace on CUDA would pin its device); pt2 programs are
    exported on the target device."""
    device = next(graph.parameters()).device
    return tuple(t.to(device) for t in graph.example_inputs())


def json_or_none(raw: str | bytes) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


def required(metadata: dict[str, Any] | None, path: Path, name: str) -> dict[str, Any]:
    """The metadata a reader found, or ExportError when the artifact has none."""
    if metadata is None:
        raise ExportError(f"{path}: no {name} metadata")
    return metadata
