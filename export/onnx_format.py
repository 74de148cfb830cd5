"""Writing the ONNX artifact: the graph, the int8 quantiser and the metadata (its reader and
ONNX Runtime runner: emo_toolkit.runtime.formats.onnx).

The TorchScript-based exporter (`dynamo=False`), opset 17, dynamic batch and
samples axes, weights inside the one .onnx file (no external data; the
supported extractors stay far below protobuf's 2 GB limit, and the writer
refuses a model that would not). The dynamo exporter fails on the head's LSTM
with a dynamic length (its decomposition unrolls time steps; measured with
torch 2.14.1), so it is not used. Metadata: `metadata_props` key "emo_toolkit".
int8: static quantisation in the QDQ form (QuantizeLinear/DequantizeLinear pairs
around every Conv, MatMul and Gemm; int8 per-channel weights, uint8 activations
whose ranges are calibrated on training clips). The QDQ form runs on ONNX
Runtime's CPU provider (as int8 kernels: VNNI/AMX where the CPU has them), on
OpenVINO and on TensorRT; dynamic MatMul-only quantisation with uint8 weights
took ONNX Runtime's slow u8u8 kernels and left the convolutions in fp32
(onnxruntime#12558 is why ConvInteger was avoided; QDQ needs no ConvInteger).
fp16/bf16: the graph exported from its reduced-precision
copy (export/graph.py); ONNX Runtime runs it on its CUDA execution provider
(its CPU provider has no fp16 kernels for most of these operators).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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

    if precision in INT8_SCHEMES:
        fp32 = path.with_name(path.name + ".fp32.onnx")
        try:
            write_onnx(exports, fp32)
            if precision == "int8-dynamic":
                quantize_onnx_int8_dynamic(fp32, path)
            elif exports.calibration is None:
                raise ExportError("an int8 ONNX export needs calibration clips")
            else:
                quantize_onnx_int8(fp32, path, exports.calibration.feeds(
                    list(exports.graph.input_names), exports.graph.layout))
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


INT8_OPS = ("Conv", "MatMul", "Gemm")
INT8_SCHEMES = {
    "int8": ("static QDQ: Conv, MatMul and Gemm; int8 per-channel weights, uint8 activations "
             "(MinMax ranges over the calibration clips)", True),
    "int8-dynamic": ("dynamic: MatMul; int8 per-channel weights, activations quantised per "
                     "call (convolutions stay fp32)", False),
}
"""precision -> (what is quantised and how, for the metadata; calibrated on training clips)"""


def quantize_onnx_int8_dynamic(source: Path, target: Path) -> None:
    """`source` (fp32) to `target` with dynamically quantised MatMuls: slower than the QDQ
    form on CPUs with int8 dot products, closer to fp32, and needs no calibration clips."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"],
                         per_channel=True, weight_type=QuantType.QInt8)


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice on the root logger
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_onnx_int8(source: Path, target: Path, feeds: Iterable[dict[str, Any]]) -> None:
    """`source` (fp32) to `target` in the QDQ form, activation ranges from `feeds`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.feeds, None)

    with _quiet_root_logger():
        quantize_static(
            str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(INT8_OPS), per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            # the calibration graph outputs each tensor's min and max (ReduceMin/ReduceMax),
            # so the clips' ranges take little memory however many clips there are
            calibrate_method=CalibrationMethod.MinMax)


def set_onnx_metadata(_: Exports, path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(metadata)
    onnx.save(model, str(path))


