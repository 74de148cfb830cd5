"""What every format's writer shares: the metadata's input description, the per-precision
graphs and torch.export programs of one export, and the graph's example inputs (the
reading half of the formats is emo_toolkit.runtime.formats)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emo_toolkit.runtime.errors import EmoToolkitError, ExportError
from emo_toolkit.runtime.formats.base import INPUT_NAME, LENGTHS_NAME
from emo_toolkit.runtime.predictions import INPUT_LAYOUTS, layout_inputs

if TYPE_CHECKING:
    import torch

    from emo_toolkit.export.graph import ExportGraph


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


class Exports:
    """One graph on its way to several formats and precisions: each precision's graph and
    torch.export program are made once (the .pt2 program and the AOTInductor package
    share one)."""

    def __init__(self, graph: ExportGraph, device: str = "cpu",
                 calibration: Calibration | None = None):
        self.graph, self.device, self.calibration = graph, device, calibration
        self._graphs: dict[str, ExportGraph] = {}
        self._programs: dict[str, torch.export.ExportedProgram] = {}
        self.cache: dict[tuple[str, str], Any] = {}  # a format's work kept for its embed step

    def graph_for(self, precision: str) -> ExportGraph:
        """fp32 and int8 (quantised from fp32) use the graph itself; fp16/bf16 a reduced copy
        (on the CPU, as the graph is)."""
        from emo_toolkit.export.graph import REDUCED_DTYPES, reduced_precision

        if precision not in REDUCED_DTYPES:
            return self.graph
        if precision not in self._graphs:
            self._graphs[precision] = reduced_precision(self.graph, precision)
        return self._graphs[precision]

    def program(self, precision: str = "fp32") -> torch.export.ExportedProgram:
        if precision not in self._programs:
            self._programs[precision] = export_program(self.graph_for(precision), self.device)
        return self._programs[precision]


CALIBRATION_CLIPS = 128
"""Training clips an int8 export calibrates its activation ranges on, by default: MinMax
ranges from few clips miss the activations' extremes (docs/benchmarks.md measures 8, 32
and 128 on HuBERT-base)."""


@dataclass(frozen=True)
class Calibration:
    """The clips an int8 export calibrates its activation ranges on, at the graph's input
    rate, with the files they came from (recorded in the artifact's metadata)."""

    files: tuple[Path, ...]
    clips: tuple[np.ndarray, ...]

    @classmethod
    def from_files(cls, files: list[Path], count: int, rate: int, min_samples: int
                   ) -> Calibration:
        """`count` clips spread evenly over `files` (in the split's order, so every class and
        speaker of a sorted list is drawn from); unreadable or too short files are passed
        over for the next ones."""
        from emo_toolkit.runtime.audio import load_audio

        spread = list(dict.fromkeys(k * len(files) // count for k in range(count)))
        order = spread + sorted(set(range(len(files))) - set(spread))
        kept: list[Path] = []
        clips: list[np.ndarray] = []
        for i in order:
            if len(kept) == count:
                break
            try:
                clips.append(load_audio(files[i], rate, min_samples).samples)
            except EmoToolkitError:
                continue
            kept.append(files[i])
        if not kept:
            raise ExportError("int8 calibration found no readable training clip")
        return cls(tuple(kept), tuple(clips))

    def feeds(self, input_names: list[str], layout: str) -> Iterator[dict[str, np.ndarray]]:
        """Each clip alone (a batch of one) as the graph's named inputs."""
        for clip in self.clips:
            inputs = layout_inputs(layout, clip[None], np.array([clip.size], np.int64))
            yield dict(zip(input_names, inputs, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {"clips": len(self.files), "files": [str(f) for f in self.files]}


def example_arrays(graph: ExportGraph) -> tuple[torch.Tensor, ...]:
    """The graph's example inputs on the graph's device, for tracing and exporting. Graphs
    are traced on the CPU (a trace on CUDA would pin its device); pt2 programs are
    exported on the target device."""
    device = next(graph.parameters()).device
    return tuple(t.to(device) for t in graph.example_inputs())


def pt2_graph(graph: ExportGraph) -> ExportGraph:
    """A copy of the graph with its LSTM as a while_loop, so torch.export keeps the length
    symbolic."""
    from emo_toolkit.export.loop_lstm import LoopLSTM

    if graph.recognizer.head.config.bidirectional:
        raise ExportError("pt2 export covers unidirectional heads; this head is bidirectional")
    exportable = copy.deepcopy(graph)
    exportable.recognizer.head.lstm = LoopLSTM(exportable.recognizer.head.lstm)
    return exportable.eval()


def export_program(graph: ExportGraph, device: str = "cpu") -> torch.export.ExportedProgram:
    import torch
    from torch.export import Dim

    exportable = pt2_graph(graph).to(device)
    example = example_arrays(exportable)
    shapes = {name: dict.fromkeys(range(x.ndim), Dim.AUTO)
              for name, x in zip(graph.input_names, example, strict=True)}
    with size_oblivious(), torch.no_grad():
        return torch.export.export(exportable, example, dynamic_shapes=shapes)


def size_oblivious() -> AbstractContextManager[Any]:
    """Size-oblivious guards keep the length symbolic in torch.export; the flag is absent
    from older torch (the device image runs torch 2.11), where export specialises what it
    must."""
    import torch.fx.experimental._config as fx_config

    if hasattr(fx_config, "backed_size_oblivious"):
        return fx_config.patch(backed_size_oblivious=True)
    return nullcontext()
