"""Reading and running ONNX artifacts with ONNX Runtime (numpy and onnxruntime only: the
runtime's torch-free path). Metadata: the model's `metadata_props` key "emo_toolkit"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.runtime.errors import DeviceError, ExportError
from emo_toolkit.runtime.formats.base import (
    OUTPUT_NAMES,
    LoadedArtifact,
    ProviderMissing,
    RunOptions,
)
from emo_toolkit.runtime.rules import METADATA

ONNX_META_KEY = str(METADATA["key"])


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


def load_onnx(path: Path, device: str = "cpu", run: RunOptions | None = None,
              providers: list[Any] | None = None) -> LoadedArtifact:
    """An ONNX Runtime session (torch-free) and its embedded metadata; with `providers`,
    ProviderMissing when the first of them did not load (ORT would fall back silently).
    `run.threads`: the session's intra-op threads. The runner takes the graph's inputs in
    order."""
    import onnxruntime as ort

    providers = providers or providers_for(device)
    options = ort.SessionOptions()
    if run is not None and run.threads is not None:
        options.intra_op_num_threads = run.threads
        options.inter_op_num_threads = 1
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

    return LoadedArtifact(run, json.loads(raw) if raw else None,
                          threads=session.get_session_options().intra_op_num_threads or None)
