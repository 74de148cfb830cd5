"""The ONNX artifact: writer, int8 quantiser, metadata, and its ONNX Runtime runner.

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

Loading needs numpy and onnxruntime only: this is the runtime's torch-free path.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from export.artifact import (
    OUTPUT_NAMES,
    ExportError,
    Exports,
    LoadedArtifact,
    ProviderMissing,
    example_arrays,
)
from toolkit.errors import DeviceError

ONNX_OPSET = 17
ONNX_META_KEY = "emo_toolkit"
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


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == ONNX_META_KEY:
            return json.loads(entry.value)
    raise ExportError(f"{path}: no {ONNX_META_KEY} metadata")


def providers_for(device: str) -> list[Any]:
    """Execution providers chosen from the device: onnxruntime-gpu without CUDA would
    otherwise fall back loudly."""
    import onnxruntime as ort

    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise DeviceError(f"device {device}: this onnxruntime has no CUDA execution "
                          f"provider ({', '.join(ort.get_available_providers())})")
    index = int(device.partition(":")[2] or 0)
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def load_onnx(path: Path, device: str = "cpu", providers: list[Any] | None = None
              ) -> LoadedArtifact:
    """An ONNX Runtime session (torch-free) and its embedded metadata; with `providers`,
    ProviderMissing when the first of them did not load (ORT would fall back silently).
    The runner takes the graph's inputs in order."""
    import onnxruntime as ort

    providers = providers or providers_for(device)
    options = ort.SessionOptions()
    # ORT caches a memory plan per input shape; segments of a long recording come in many
    # lengths, and the cache made peak memory grow with the recording (1 -> 10 minutes of
    # HuBERT-base: 751 -> 907 MB with it, 751 -> 774 MB without, at the same speed).
    options.enable_mem_pattern = False
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if session.get_providers()[0] != wanted:
        raise ProviderMissing(f"{wanted} did not load; ONNX Runtime chose "
                              f"{', '.join(session.get_providers())}")
    raw = session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
    input_names = [i.name for i in session.get_inputs()]
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    # ORT's own exceptions derive from Exception only: as RuntimeError, a failed run is an
    # InferenceError for the Recognizer, as a failed torch run is
    ort_errors = tuple(getattr(state, n) for n in ("Fail", "InvalidArgument", "RuntimeException",
                                                   "EPFail") if hasattr(state, n))

    def run(*arrays: np.ndarray) -> np.ndarray:
        try:
            return session.run([OUTPUT_NAMES[0]], dict(zip(input_names, arrays, strict=False)))[0]
        except ort_errors as e:
            raise RuntimeError(f"ONNX Runtime: {e}") from e

    return LoadedArtifact(run, json.loads(raw) if raw else None)
