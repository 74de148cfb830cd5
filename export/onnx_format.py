"""Writing the ONNX artifact: the graph, the int8 quantiser and the metadata (its reader and
ONNX Runtime runner: emo_toolkit.runtime.formats.onnx).

The TorchScript-based exporter (`dynamo=False`), opset 17, dynamic batch and
samples axes, weights inside the one .onnx file (no external data; the
supported extractors stay far below protobuf's 2 GB limit, and the writer
refuses a model that would not). The dynamo exporter fails on the head's LSTM
with a dynamic length (its decomposition unrolls time steps; measured with
torch 2.14.1), so it is not used. Metadata: `metadata_props` key "emo_toolkit".
int8: dynamic quantisation of MatMul only, QUInt8 weights (ConvInteger is
missing on many execution providers, onnxruntime#12558; QInt8 is riskier,
onnxruntime#5644). fp16/bf16: the graph exported from its reduced-precision
copy (export/graph.py); ONNX Runtime runs it on its CUDA execution provider
(its CPU provider has no fp16 kernels for most of these operators).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from emo_toolkit.export.artifact import Exports, example_arrays
from emo_toolkit.runtime.errors import ExportError
from emo_toolkit.runtime.formats.base import OUTPUT_NAMES
from emo_toolkit.runtime.formats.onnx import ONNX_META_KEY

ONNX_OPSET = 17
PROTOBUF_LIMIT = 2 * 1024**3


def write_onnx(exports: Exports, path: Path, precision: str = "fp32") -> None:
    """fp32, fp16 or bf16; int8 quantised from an fp32 file written beside `path` first."""
    import torch

    if precision == "int8":
        fp32 = path.with_name(path.name + ".fp32.onnx")
        try:
            write_onnx(exports, fp32)
            quantize_onnx_int8(fp32, path)
        finally:
            fp32.unlink(missing_ok=True)
        return
    graph = exports.graph_for(precision)
    names = list(graph.input_names)
    example = example_arrays(graph)
    first = {0: "batch", 1: "samples"} if example[0].ndim == 2 else {0: "total_samples"}
    axes = {names[0]: first, **{n: {0: "batch"} for n in names[1:]},
            **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is chatty
        torch.onnx.export(
            graph, example, str(path), input_names=names,
            output_names=list(OUTPUT_NAMES), opset_version=ONNX_OPSET, dynamo=False,
            dynamic_axes=axes,
        )
    if path.stat().st_size >= PROTOBUF_LIMIT:
        raise ExportError(f"{path}: the ONNX graph is over protobuf's 2 GB limit")


def quantize_onnx_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice on the root logger
    try:
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)


def set_onnx_metadata(_: Exports, path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(metadata)
    onnx.save(model, str(path))


