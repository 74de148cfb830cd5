"""The ExecuTorch artifact (.pte): an edge program lowered to XNNPACK, and its runner.

The program holds the methods of export/edge_graph.py and one constant method,
`emo_toolkit_metadata`, that returns the metadata JSON (ExecuTorch's own way of
carrying values in a program). The runner drives the recurrence: one `features`
call per clip, then `lstm_steps` over its frames, K at a time. Batches run row
by row: the program takes one clip per call (XNNPACK lowers one dynamic
dimension, the length).

int8: XNNPACK's post-training quantisation of the `features` method's linear
layers (the transformer's, about 60 % of the work): int8 per-channel weights,
activations quantised dynamically per call. Convolutions and the recurrence
stay fp32 (the recurrence's state runs across every frame). Loading needs the
executorch package (the `edge` extra) and torch, whose tensors its Python
runtime takes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.artifact import ExportError, Exports, LoadedArtifact, required
from toolkit.errors import DeviceError

if TYPE_CHECKING:
    import torch

    from export.edge_graph import Features
    from export.graph import ExportGraph

# The longest clip a program takes, in seconds. ExecuTorch plans the memory of every
# intermediate tensor for the largest input, so this sets the program's working memory;
# the runtime cuts longer recordings into segments of at most this length (max_samples).
MAX_SECONDS = 20
FEATURES, LSTM_STEPS = "features", "lstm_steps"  # the methods (export/edge_graph.py)
METADATA_METHOD = "emo_toolkit_metadata"


@contextmanager
def _quiet_import() -> Iterator[None]:
    """torchao, which executorch imports, logs a deprecation notice from torch's pytree."""
    logger = logging.getLogger("torch.utils._pytree")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Loading a method starts XNNPACK's thread pool, whose CPU probe logs lines to the
    process's stderr (file descriptor 2, below Python) on machines it does not recognise."""
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _runtime() -> Any:
    try:
        with _quiet_import():
            from executorch.runtime import Runtime
    except ImportError as e:
        raise ExportError("running .pte programs needs ExecuTorch: pip install "
                          "'emo-toolkit[edge]'") from e
    return Runtime.get()


# --- writing -------------------------------------------------------------------------------

def executorch_metadata(graph: ExportGraph) -> dict[str, Any]:
    """What a program's metadata adds: its longest input, and how to drive its methods."""
    from export.edge_graph import STEPS_PER_CALL

    return {"max_samples": MAX_SECONDS * graph.input_rate,
            "executorch": {
                "batch": 1, "steps_per_call": STEPS_PER_CALL,
                "methods": {FEATURES: "waveform (1, samples) -> lstm_inputs (1, frames, 4H)",
                            LSTM_STEPS: "lstm_inputs (K, 4H), running (K), h, c "
                                        "(layers, H) -> h, c, logits, probs (1, labels)"},
                "runner": "call features once per clip, then lstm_steps over its frames K at "
                          "a time from zero states, the last call padded with running 0; the "
                          "last call's logits and probs are the clip's"}}


def write_executorch(exports: Exports, path: Path, precision: str = "fp32") -> None:
    program = _lowered(exports, precision)
    path.write_bytes(program.buffer)


def embed_executorch(exports: Exports, path: Path, metadata: dict[str, Any]) -> None:
    """Emit the lowered program again with the metadata as its constant method (emission
    is cheap; lowering is not, so the lowered program is kept from `write`)."""
    from executorch.exir.program._program import ExecutorchProgramManager

    lowered = _lowered(exports, metadata.get("precision", "fp32"))
    with_metadata = ExecutorchProgramManager(
        lowered._execution_programs, {METADATA_METHOD: json.dumps(metadata)},
        named_data=lowered._named_data)
    path.write_bytes(with_metadata.buffer)


def _lowered(exports: Exports, precision: str) -> Any:
    key = ("executorch", precision)
    if key not in exports.cache:
        exports.cache[key] = lower(exports.graph, precision)
    return exports.cache[key]


def lower(graph: ExportGraph, precision: str = "fp32") -> Any:
    """The graph's edge methods, exported, [quantised,] lowered to XNNPACK and emitted
    (an ExecutorchProgramManager whose metadata method is still empty)."""
    import torch

    from export.edge_graph import edge_modules
    from export.torch_formats import size_oblivious

    device = next(graph.parameters()).device.type
    if device != "cpu":
        raise ExportError(f"ExecuTorch programs are exported on the CPU, not {device}")
    with _quiet_import():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import (
            XnnpackPartitioner,
        )
        from executorch.exir import to_edge_transform_and_lower
    features, recurrence = edge_modules(graph)
    with torch.no_grad():
        programs = {FEATURES: _export_features(features, graph, precision),
                    LSTM_STEPS: torch.export.export(recurrence, recurrence.example_inputs())}
    with size_oblivious():  # lowering decomposes again: keep the length's whole range
        edge = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()],
                                           constant_methods={METADATA_METHOD: ""})
        return edge.to_executorch()


def _export_features(features: Features, graph: ExportGraph, precision: str
                     ) -> torch.export.ExportedProgram:
    import torch
    from torch.export import Dim

    from export.artifact import example_arrays
    from export.torch_formats import pt2_min_samples, size_oblivious

    example = example_arrays(graph)[0][:1]
    samples = Dim("samples", min=pt2_min_samples(graph), max=MAX_SECONDS * graph.input_rate)
    shapes = {"waveform": {1: samples}}
    with size_oblivious():
        program = torch.export.export(features, (example,), dynamic_shapes=shapes)
    if precision == "fp32":
        return program
    if precision != "int8":
        raise ExportError(f"ExecuTorch programs are fp32 or int8, not {precision}")
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    with _quiet_import():
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
    # Dynamic: activations are quantised per call, so no calibration set is needed. (Static
    # int8 with calibrated activations fails to lower: XNNPACK's partitioner stops on a
    # convolution fed by a quantised tensor, "Weight and Input should both be quantized",
    # with executorch 1.5.1.)
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    prepared = prepare_pt2e(program.module(), XNNPACKQuantizer().set_module_type(
        torch.nn.Linear, config))
    prepared(example)
    with size_oblivious():
        return torch.export.export(convert_pt2e(prepared), (example,), dynamic_shapes=shapes)


# --- reading and running -------------------------------------------------------------------

def read_executorch_metadata(path: Path) -> dict[str, Any]:
    return required(_metadata(_runtime().load_program(str(path))), path, METADATA_METHOD)


def _metadata(program: Any) -> dict[str, Any] | None:
    if METADATA_METHOD not in program.method_names:
        return None
    raw = program.load_method(METADATA_METHOD).execute([])[0]
    return json.loads(raw) if raw else None


def load_executorch(path: Path, device: str = "cpu") -> LoadedArtifact:
    if device != "cpu":
        raise DeviceError(f"{path}: ExecuTorch programs run on the CPU (XNNPACK), not {device}")
    program = _runtime().load_program(str(path))
    return LoadedArtifact(EdgeRunner(program), _metadata(program))


class EdgeRunner:
    """A Runner over a loaded program: (B, S) float32 -> logits (B, C), one row per call."""

    def __init__(self, program: Any):
        missing = {FEATURES, LSTM_STEPS} - set(program.method_names)
        if missing:
            raise ExportError(f"not an emo-toolkit program: no method {', '.join(missing)}")
        with _quiet_stderr():
            self.features = program.load_method(FEATURES)
            self.steps = program.load_method(LSTM_STEPS)
        meta = self.steps.metadata
        self.k = meta.input_tensor_meta(0).sizes()[0]
        self.state_shape = tuple(meta.input_tensor_meta(2).sizes())

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        return np.concatenate([self._clip(row) for row in waveform])

    def _clip(self, samples: np.ndarray) -> np.ndarray:
        import torch

        inputs = self.features.execute([torch.from_numpy(np.ascontiguousarray(samples[None]))])[0]
        frames = inputs.shape[1]
        calls = -(-frames // self.k)
        padded = torch.zeros(calls * self.k, inputs.shape[2])
        padded[:frames] = inputs[0]
        running = torch.zeros(calls * self.k)
        running[:frames] = 1.0
        h = torch.zeros(self.state_shape)
        c = torch.zeros(self.state_shape)
        for i in range(calls):
            window = slice(i * self.k, (i + 1) * self.k)
            h, c, logits, _ = self.steps.execute([padded[window], running[window], h, c])
        return logits.numpy()
