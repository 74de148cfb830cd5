"""What a benchmark ran on: CPU, cores, GPU and driver, library versions, matmul peak.

Every report starts with this block, so figures from different machines are
never compared blind.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
from typing import Any

import torch

from emo_toolkit.runtime.cpu import cpu_model, isa_summary
from emo_toolkit.train.rundir import library_versions


def nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        providers = []
    info: dict[str, Any] = {
        "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "os": platform.platform(),
        "cpu_isa": isa_summary(),
        "torch_threads": torch.get_num_threads(), "gpu": None, "cuda": None, "driver": None,
        "onnxruntime_providers": providers,
        "versions": library_versions("onnx", "onnxruntime", "openvino"),
    }
    if torch.cuda.is_available():
        index = torch.device(device).index if device.startswith("cuda") else None
        info.update(gpu=torch.cuda.get_device_name(index or 0), cuda=torch.version.cuda,
                    driver=nvidia_driver())
    return info


def describe(info: dict[str, Any]) -> str:
    """One line for the top of every report."""
    gpu = f"; GPU {info['gpu']} (CUDA {info['cuda']}, driver {info['driver']})" \
        if info.get("gpu") else "; no GPU"
    v = info["versions"]
    isa = f" [{' '.join(info['cpu_isa'])}]" if info.get("cpu_isa") else ""
    return (f"{info['cpu']}{isa}, {info['cores']} cores ({info['torch_threads']} torch threads)"
            f"{gpu}; "
            f"torch {v['torch']}, torchaudio {v['torchaudio']}, onnxruntime "
            f"{v['onnxruntime']}, onnx {v['onnx']}"
            + (f", openvino {v['openvino']}" if "openvino" in v else "")
            + f", Python {v['python']}")


def matmul_peak_gflops(device: str = "cpu", precision: str = "fp32", size: int = 2048,
                       seconds: float = 1.0) -> float:
    """The best GFLOP/s (int8: GOP/s) of a square matmul over about `seconds`: the roofline's
    ceiling at that precision (int8 through torch._int_mm, int8 x int8 -> int32, the
    VNNI/AMX path where the CPU has one)."""
    if precision == "int8":
        a = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
        b = torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
        mm = torch._int_mm
    else:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        mm = torch.mm
    flops = 2.0 * size**3
    best = float("inf")
    mm(a, b)  # warm-up: kernel selection, allocator
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        _sync(device)
        start = time.perf_counter()
        mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
