"""The backends emo-bench compares, what each supports, and how each is run.

Every backend runs as the runtime's `Recognizer`: a float32 waveform batch (B, S)
(and its lengths) as NumPy arrays in, float32 logits (B, C) out: host in, host
out, so device copies and synchronisation are inside every timing, the same for
every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emo_toolkit.runtime import cpu
from emo_toolkit.runtime.recognizer import Recognizer, default_max_padding


@dataclass(frozen=True)
class Backend:
    name: str
    description: str
    artifact: str | None                 # exporter format the backend loads; None: the run itself
    precisions: tuple[str, ...]          # what the backend can run at all
    devices: tuple[str, ...]             # "cpu", "cuda"
    provider: str | None = None          # ONNX Runtime execution provider
    runtime: str | None = None           # the Recognizer's runtime, when not the format's own
    # precisions the runtime computes an fp32 artifact in (OpenVINO's bf16/fp16)
    at_run_time: tuple[str, ...] = ()

    def artifact_precision(self, precision: str) -> str:
        """The precision of the artifact that (self, precision) loads."""
        return "fp32" if precision in self.at_run_time else precision

    def open_options(self, precision: str) -> dict[str, Any]:
        """Recognizer.open's runtime and precision for (self, precision)."""
        options: dict[str, Any] = {"runtime": self.runtime} if self.runtime else {}
        if precision in self.at_run_time:
            options["precision"] = precision
        return options


BACKENDS = (
    Backend("eager", "PyTorch eager (the reference)", None, ("fp32", "fp16", "bf16"),
            ("cpu", "cuda")),
    Backend("compile", "torch.compile (Inductor, dynamic shapes)", None, ("fp32", "fp16", "bf16"),
            ("cpu", "cuda")),
    Backend("compile-cudagraphs", "torch.compile, mode reduce-overhead (CUDA graphs)", None,
            ("fp32", "fp16", "bf16"), ("cuda",)),
    Backend("torchscript", "TorchScript artifact (torch.jit.load)", "torchscript",
            ("fp32", "fp16", "bf16"), ("cpu", "cuda")),
    Backend("ort-cpu", "ONNX Runtime, CPU execution provider", "onnx",
            ("fp32", "fp16", "int8", "int8-dynamic"), ("cpu",), "CPUExecutionProvider"),
    Backend("openvino", "OpenVINO, CPU (bf16/fp16: an fp32 .onnx computed so at run time)",
            "onnx", ("fp32", "bf16", "fp16", "int8"), ("cpu",), runtime="openvino",
            at_run_time=("bf16", "fp16")),
    Backend("ort-cuda", "ONNX Runtime, CUDA execution provider", "onnx", ("fp32", "fp16"),
            ("cuda",), "CUDAExecutionProvider"),
    Backend("ort-tensorrt", "ONNX Runtime, TensorRT execution provider", "onnx",
            ("fp32", "fp16"), ("cuda",), "TensorrtExecutionProvider"),
    Backend("aoti", "AOTInductor package (compiled for the device)", "aoti",
            ("fp32", "fp16", "bf16"), ("cpu", "cuda")),
    Backend("executorch", "ExecuTorch program (.pte), XNNPACK delegate", "executorch",
            ("fp32", "int8"), ("cpu",)),
)
BACKEND_NAMES = tuple(b.name for b in BACKENDS)
INT8_BACKENDS = {p: [b.name for b in BACKENDS if p in b.precisions]
                 for p in ("int8", "int8-dynamic")}
PRECISIONS = tuple(dict.fromkeys(p for b in BACKENDS for p in b.precisions))
REFERENCE = ("eager", "fp32")


def backend(name: str) -> Backend:
    for b in BACKENDS:
        if b.name == name:
            return b
    raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKEND_NAMES)}")


def device_kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def device_mismatch(b: Backend, device: str) -> str | None:
    """Why `b` cannot run on `device` at any precision, or None when it can."""
    if device_kind(device) in b.devices:
        return None
    return f"runs on {' or '.join(b.devices)} only; this run is --device {device}"


def skip_reason(b: Backend, precision: str, device: str, *, explicit_precision: bool,
                ort_providers: list[str], native: Callable[[str], bool]) -> str | None:
    """Why (b, precision) cannot run on `device` here, or None when it can.

    `native(precision)` says whether this CPU has native matmuls at that precision;
    without them, CPU fp16/bf16 are emulated and slower than fp32, so they are only
    run when the user asked for that precision by name.
    """
    wrong_device = device_mismatch(b, device)
    if wrong_device:
        return wrong_device
    if precision not in b.precisions:
        if precision.startswith("int8"):
            return f"{precision} is exported for {', '.join(sorted(INT8_BACKENDS[precision]))} only"
        if precision == "bf16" and b.artifact == "onnx":
            return ("ONNX artifacts have no bf16 (opset 17's Conv takes no bfloat16); OpenVINO "
                    "computes an fp32 one in bf16")
        return f"{precision} is not supported by this backend"
    if precision in b.at_run_time and not native(precision):
        return f"{cpu.no_units(precision)}, so {b.name} cannot compute in {precision}"
    if b.provider and b.provider not in ort_providers:
        return (f"{b.provider} is not available in this onnxruntime build "
                f"(available: {', '.join(ort_providers)})")
    if device_kind(device) == "cpu" and precision in ("fp16", "bf16") and not native(precision) \
            and not explicit_precision:
        return (f"this CPU has no native {precision} matmul, so {precision} would be "
                f"emulated and slower than fp32; ask for it with --precision {precision}")
    return None


def ort_providers(b: Backend, precision: str, cache_dir: Path) -> list[Any]:
    if b.provider == "TensorrtExecutionProvider":
        options = {"trt_fp16_enable": precision == "fp16", "trt_engine_cache_enable": True,
                   "trt_engine_cache_path": str(cache_dir)}
        return [("TensorrtExecutionProvider", options), "CUDAExecutionProvider",
                "CPUExecutionProvider"]
    if b.provider == "CUDAExecutionProvider":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_recognizer(b: Backend, precision: str, device: str, *, run_dir: Path | None,
                    split: str | None, artifact: Path | None, work_dir: Path,
                    ragged: bool = False) -> Recognizer:
    """Load or build the backend's model as the runtime's Recognizer (what users and the
    export's parity check run). Eager and compiled models take lengths when `ragged`, as
    the artifacts exported with --ragged do."""
    if b.artifact is None:
        import torch

        from emo_toolkit.export.graph import ExportGraph
        from emo_toolkit.runtime.formats.base import torch_runner
        from emo_toolkit.runtime.predictions import ModelInfo
        from emo_toolkit.train.inference import load_run

        graph = ExportGraph(load_run(run_dir, split, "cpu").recognizer,
                            layout="padded" if ragged else "clips").to(device)
        if b.name == "compile":
            module = torch.compile(graph, dynamic=True)
        elif b.name == "compile-cudagraphs":
            # one compile with symbolic shapes; CUDA graphs are recorded per input shape
            module = torch.compile(graph, mode="reduce-overhead", dynamic=True)
        else:
            module = graph
        info = ModelInfo(tuple(graph.labels), graph.input_rate, graph.min_samples,
                         str(run_dir), b.name, precision, layout=graph.layout)
        return Recognizer(torch_runner(module, device, precision), info,
                          default_max_padding(device))
    if artifact is None:
        raise ValueError(f"{b.name} needs a {b.artifact} artifact")
    options = b.open_options(precision)
    if b.provider:
        options["providers"] = ort_providers(b, precision, work_dir / "trt-cache")
    return Recognizer.open(artifact, device, **options)
