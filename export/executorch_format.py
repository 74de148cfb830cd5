"""Writing the ExecuTorch artifact (.pte): an edge program lowered to XNNPACK (its runner:
emo_toolkit.runtime.formats.executorch).

The program holds the methods of export/edge_graph.py and one constant method,
`emo_toolkit_metadata`, that returns the metadata JSON (ExecuTorch's own way of
carrying values in a program). The runner drives the recurrence: one `features`
call per clip, then `lstm_steps` over its frames, K at a time. Batches run row
by row: the program takes one clip per call (XNNPACK lowers one dynamic
dimension, the length).

int8: XNNPACK's post-training quantisation of the `features` method's linear
layers (the transformer's, about 60 % of the work): int8 per-channel weights,
activations quantised dynamically per call. Convolutions and the recurrence
stay fp32 (the recurrence's state runs across every frame).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emo_toolkit.export.artifact import Exports
from emo_toolkit.runtime.errors import ExportError
from emo_toolkit.runtime.formats.executorch import (
    FEATURES,
    LSTM_STEPS,
    METADATA_METHOD,
    quiet_import,
)

EXECUTORCH_INT8_SCHEME = ("dynamic: the transformer's linear layers (XNNPACK); int8 per-channel "
                          "weights, activations quantised per call")

if TYPE_CHECKING:
    import torch

    from emo_toolkit.export.edge_graph import Features
    from emo_toolkit.export.graph import ExportGraph

# The longest clip a program takes, in seconds. ExecuTorch plans the memory of every
# intermediate tensor for the largest input, so this sets the program's working memory;
# the runtime cuts longer recordings into segments of at most this length (max_samples).
MAX_SECONDS = 20


# --- writing -------------------------------------------------------------------------------

def executorch_metadata(graph: ExportGraph) -> dict[str, Any]:
    """What a program's metadata adds: its longest input, and how to drive its methods."""
    from emo_toolkit.export.edge_graph import STEPS_PER_CALL

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

    from emo_toolkit.export.artifact import size_oblivious
    from emo_toolkit.export.edge_graph import edge_modules

    device = next(graph.parameters()).device.type
    if device != "cpu":
        raise ExportError(f"ExecuTorch programs are exported on the CPU, not {device}")
    with quiet_import():
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

    from emo_toolkit.export.artifact import example_arrays, size_oblivious
    from emo_toolkit.export.torch_formats import pt2_min_samples

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

    with quiet_import():
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


