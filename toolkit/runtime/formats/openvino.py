"""Running ONNX artifacts with OpenVINO (numpy and openvino only: torch-free), the second
runtime for `.onnx` beside ONNX Runtime. Metadata: OpenVINO keeps the ONNX model's
`metadata_props` in its runtime info, under "framework".

OpenVINO's CPU plugin computes in bf16 by default wherever the CPU has bf16 units
(AVX512-BF16 or AMX): an fp32 artifact would silently lose precision. So the inference
precision is always set (f32 unless bf16 or fp16 is asked for) and read back from the
compiled model. A CPU without units for the precision asked for is refused before compiling,
where its features are known (toolkit/runtime/cpu.py), and whenever OpenVINO reads back
another precision (it computes fp16 in bf16 on CPUs with bf16 units only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.runtime import cpu
from emo_toolkit.runtime.errors import ArtifactError, DeviceError
from emo_toolkit.runtime.formats.base import (
    OUTPUT_NAMES,
    LoadedArtifact,
    RunOptions,
    json_or_none,
)
from emo_toolkit.runtime.formats.onnx import ONNX_META_KEY
from emo_toolkit.runtime.rules import OPENVINO

INFERENCE_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
"""What OpenVINO can compute an fp32 artifact in: our names to its element type names
(messages use ours only)."""

REDUCED = ("bf16", "fp16")
OUR_NAME = {ov: ours for ours, ov in INFERENCE_PRECISIONS.items()}

# Compiled kernels are cached per input shape; segments of a recording come in many
# lengths, so an unbounded cache grows with the recording (the C library bounds it too).
SHAPE_CACHE = int(OPENVINO["shape_cache"])


def load_openvino(path: Path, device: str = "cpu", run: RunOptions | None = None
                  ) -> LoadedArtifact:
    """An OpenVINO compiled model on the CPU computing at `run.precision` (default: the
    artifact's own), with `run.threads` inference threads (default: OpenVINO's)."""
    import openvino as ov

    run = run or RunOptions()
    if device != "cpu":
        raise DeviceError(f"{path}: the OpenVINO runtime runs on the CPU here, not {device}; "
                          "use ONNX Runtime for cuda")
    core = ov.Core()
    model = core.read_model(str(path))
    metadata = json_or_none(model.get_rt_info(["framework", ONNX_META_KEY]).astype(str)
                            if model.has_rt_info(["framework", ONNX_META_KEY]) else "")
    exported = str((metadata or {}).get("precision", "fp32"))
    asked = run.precision or exported
    if asked != exported and exported != "fp32":
        raise ArtifactError(f"{path}: this artifact is {exported}, and OpenVINO computes it so "
                            f"(bf16 and fp16 apply to fp32 artifacts), not in {asked}")
    if asked != exported and asked not in REDUCED:
        raise ArtifactError(f"{path}: OpenVINO computes an fp32 artifact in fp32, bf16 or "
                            f"fp16, not {asked} (int8 is an export: emo-export --precision int8)")
    # what is not quantised in an int8 artifact (and all of an fp32 one) computes in f32
    computed = asked if asked in REDUCED else "fp32"
    if cpu.flags_known() and not cpu.native_precision(computed):
        raise DeviceError(f"{path}: OpenVINO cannot compute in {computed} here: "
                          f"{cpu.no_units(computed)}")
    wanted = INFERENCE_PRECISIONS[computed]
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": wanted,
                              "CPU_RUNTIME_CACHE_CAPACITY": SHAPE_CACHE}
    if run.threads is not None:
        config["INFERENCE_NUM_THREADS"] = run.threads
    compiled = core.compile_model(model, "CPU", config)
    got = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if got != wanted:
        why = cpu.no_units(computed) if computed in REDUCED else "no fp32 kernels"
        raise DeviceError(f"{path}: OpenVINO computes in {OUR_NAME.get(got, got)} on this CPU, "
                          f"not the {computed} asked for: {why}")
    request = compiled.create_infer_request()
    logits = compiled.output(OUTPUT_NAMES[0])

    def runner(*arrays: np.ndarray) -> np.ndarray:
        return np.array(request.infer(list(arrays))[logits], dtype=np.float32, copy=True)

    return LoadedArtifact(runner, metadata, asked,
                          int(compiled.get_property("INFERENCE_NUM_THREADS")))
