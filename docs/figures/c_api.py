"""The C API's footprint per backend (README, docs/c-api.md), measured side by side:

    python -m docs.figures.c_api --run build/bench-runtime/run-base --out docs/figures/results/c-api

For each backend (libtorch TorchScript, libtorch AOTInductor, OpenVINO ONNX, ExecuTorch
fp32 and int8), with libemo_toolkit built for that runtime alone (CMake
-DEMO_WITH_<OTHER>=OFF):

- runtime bytes: the shared libraries the process loaded (LD_DEBUG), less the system's
  and the CUDA/NVIDIA ones (a CPU libtorch has none): what a CPU app must ship;
- cold start: wall time of `emo_classify ARTIFACT clip.wav`, process start to result;
- latency: `emo_classify --repeat 10` on a 3 s clip, the median (and the first call of
  each new length, 3 s, 3.5 s and 4 s, against the median at that length);
- peak RSS of that process (wait4).

The run's artifacts must exist (emo-export --format torchscript / pt2 / onnx /
executorch [--precision int8]).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import soundfile as sf

from cpp.cpp_build import cmake_prefixes
from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.demo_corpus import speech_like
from tests.process import run_measured

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file: docs/figures/)
RUNTIMES = ("TORCH", "OPENVINO", "EXECUTORCH")  # CMake's EMO_WITH_<RUNTIME> options
BACKENDS = (  # (name, artifact file, the one runtime libemo_toolkit is built with)
    ("libtorch TorchScript", "model.torchscript.pt", "TORCH"),
    ("libtorch AOTInductor", "model.aoti.pt2", "TORCH"),
    ("OpenVINO ONNX", "model.onnx", "OPENVINO"),
    ("ExecuTorch XNNPACK", "model.pte", "EXECUTORCH"),
    ("ExecuTorch XNNPACK int8", "model.int8.pte", "EXECUTORCH"),
)
CUDA_MARKERS = ("cuda", "cudnn", "cublas", "cufft", "curand", "cusparse", "cusolver", "nccl",
                "nvrtc", "nvjitlink", "nvtx", "cupti", "/nvidia/", "cufile", "nvshmem")


def build(out: Path, runtime: str) -> Path:
    """libemo_toolkit and emo_classify with `runtime` alone."""
    prefixes = ";".join(cmake_prefixes())
    options = [f"-DEMO_WITH_{r}={'ON' if r == runtime else 'OFF'}" for r in RUNTIMES]
    subprocess.run(["cmake", "-S", ROOT / "cpp", "-B", out, "-DCMAKE_BUILD_TYPE=Release",
                    f"-DCMAKE_PREFIX_PATH={prefixes}", *options], check=True,
                   capture_output=True)
    subprocess.run(["cmake", "--build", out, "-j", "2"], check=True, capture_output=True)
    return out / "emo_classify"


def run(app: Path, *args: str | Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Wall time, peak RSS (MB) and output of one emo_classify process (tests/process.py)."""
    m = run_measured([app, *args], env=env)
    if m.proc.returncode:
        raise click.ClickException(f"{app} {' '.join(map(str, args))}: {m.proc.stderr[-1500:]}")
    return {"wall_s": m.wall_s, "peak_rss_mb": m.peak_rss_mb, "stdout": m.proc.stdout,
            "stderr": m.proc.stderr}


def loaded_libraries(*argv: str | Path, env: dict[str, str] | None = None) -> list[Path]:
    """The shared libraries one process initialised, in order (LD_DEBUG=libs), with `env`
    (default: this environment); ClickException when the process fails."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          env={**(os.environ if env is None else env), "LD_DEBUG": "libs"})
    if proc.returncode:
        raise click.ClickException(f"{' '.join(map(str, argv))}: {proc.stderr[-1500:]}")
    return [Path(line.split("calling init:", 1)[1].strip()) for line in proc.stderr.splitlines()
            if "calling init:" in line]


def runtime_libraries(app: Path, artifact: Path, clip: Path) -> dict[str, int]:
    """Libraries the process initialised, not the system's, not CUDA's."""
    found = {}
    for path in loaded_libraries(app, artifact, clip):
        if str(path).startswith(("/lib", "/usr/lib")) or "libemo_toolkit" in path.name:
            continue
        if any(m in str(path).lower() for m in CUDA_MARKERS):
            continue
        if not path.exists():  # AOTInductor's model code, unpacked and removed again
            continue
        found[str(path)] = path.stat().st_size
    return found


def measure(run_dir: Path, work: Path, runtimes: tuple[str, ...] = RUNTIMES
            ) -> list[dict[str, Any]]:
    clips = {}
    for seconds in (3.0, 3.5, 4.0):
        clips[seconds] = work / f"clip{seconds:g}.wav"
        sf.write(str(clips[seconds]), speech_like(seconds, 1), 16_000, subtype="FLOAT")
    rows = []
    apps: dict[str, Path] = {}  # one build per runtime, shared by its backends
    for name, artifact_name, runtime in (b for b in BACKENDS if b[2] in runtimes):
        artifact = run_dir / "export" / artifact_name
        if not artifact.exists():
            rows.append({"backend": name, "skipped": f"{artifact} is missing"})
            continue
        click.echo(f"{name} ...", err=True)
        if runtime not in apps:
            apps[runtime] = build(work / runtime.lower(), runtime)
        app = apps[runtime]
        libs = runtime_libraries(app, artifact, clips[3.0])
        cold = [run(app, artifact, clips[3.0])["wall_s"] for _ in range(3)]
        timed = run(app, "--repeat", "10", artifact, *clips.values())["stdout"]
        lines = [json.loads(line) for line in timed.splitlines()]
        rows.append({
            "backend": name, "artifact": artifact_name,
            "runtime_mb": sum(libs.values()) / 2**20,
            "libraries": {Path(p).name: size for p, size in sorted(libs.items())},
            "cold_start_s": float(np.median(cold)),
            "latency_3s_ms": lines[0]["latency_ms"],
            "first_call_ms": {f"{s:g} s": line["first_ms"] for s, line in zip(clips, lines,
                                                                              strict=True)},
            "median_ms": {f"{s:g} s": line["latency_ms"] for s, line in zip(clips, lines,
                                                                            strict=True)},
            "peak_rss_mb": run(app, "--repeat", "10", artifact, clips[3.0])["peak_rss_mb"],
            "label": lines[0]["label"],
        })
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [f"C API footprint, {report['created']}; machine: {describe(report['machine'])}; "
             "HuBERT-base (UNTRAINED weights) + head, CPU.", "",
             "| backend | runtime libraries | cold start | 3 s clip (median of 10) | "
             "first call, new length | peak RSS |", "|---|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        if "skipped" in r:
            lines.append(f"| {r['backend']} | skipped: {r['skipped']} | | | | |")
            continue
        firsts = "/".join(f"{v:.0f}" for v in r["first_call_ms"].values())
        medians = "/".join(f"{v:.0f}" for v in r["median_ms"].values())
        lines.append(f"| {r['backend']} | {r['runtime_mb']:.0f} MB | {r['cold_start_s']:.2f} s | "
                     f"{r['latency_3s_ms']:.0f} ms | {firsts} ms (median {medians}) | "
                     f"{r['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("build/bench-runtime/run-base"), show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results/c-api"), show_default=True)
@click.option("--runtime", "runtimes", multiple=True, type=click.Choice(RUNTIMES),
              help="measure only the backends of this runtime (repeatable) [default: all]")
def main(run_dir: Path, out: Path, runtimes: tuple[str, ...]) -> None:
    """Measure the C API per backend (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="emo-c-api-") as tmp:
        rows = measure(run_dir, Path(tmp), runtimes or RUNTIMES)
    report = {"created": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info("cpu"),
              "run": str(run_dir), "rows": rows}
    click.echo(write_figures(out, "c-api", report, markdown(report)))


if __name__ == "__main__":
    main()
