"""The C library's memory against recording length and against the number of distinct clip
lengths (docs/c-api.md), measured:

    python -m docs.figures.c_api_memory --build build/cpp --run RUN

- recordings: peak RSS of one `emo_classify ARTIFACT recording.flac` process for recordings
  of 1, 3 and 6 minutes (speech-like parts with pauses), per artifact of RUN/export that
  exists (model.onnx, model.pte): files are read a block at a time and cut into segments;
- lengths: RSS of one process calling EmoClassify on 400 distinct clip lengths of 1 to
  1.25 s (OpenVINO, whose compiled kernels are cached per input shape), every 50 calls.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import soundfile as sf

from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.demo_corpus import speech_like
from tests.process import run_measured

MINUTES = (1, 3, 6)
LENGTHS_SCRIPT = """
import ctypes, sys, numpy as np
lib = ctypes.CDLL(sys.argv[1])
class Config(ctypes.Structure):  # EmoRecognizerConfig
    _fields_ = [("model", ctypes.c_char_p), ("device", ctypes.c_char_p),
                ("precision", ctypes.c_char_p), ("threads", ctypes.c_int32)]
lib.EmoRecognizerCreate.restype = ctypes.c_void_p
lib.EmoRecognizerCreate.argtypes = [ctypes.POINTER(Config), ctypes.c_void_p]
lib.EmoClassify.restype = ctypes.c_void_p
lib.EmoClassify.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32,
                            ctypes.c_void_p]
lib.EmoResultDestroy.argtypes = [ctypes.c_void_p]
r = lib.EmoRecognizerCreate(ctypes.byref(Config(sys.argv[2].encode())), None)
x = (np.random.default_rng(0).standard_normal(20_000) * 0.1).astype(np.float32)
rss = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
count, every = int(sys.argv[3]), int(sys.argv[4])
lib.EmoResultDestroy(lib.EmoClassify(r, x.ctypes.data, 20_000, 16_000, None))  # the largest
marks = []
for i, n in enumerate(16_000 + np.random.default_rng(1).permutation(4_000)[:count]):
    lib.EmoResultDestroy(lib.EmoClassify(r, x.ctypes.data, int(n), 16_000, None))
    if i % every == 0 or i == count - 1:
        marks.append(rss() // 1024)
print(" ".join(map(str, marks)))
"""
"""A Python program: RSS (MB) of one process classifying COUNT distinct clip lengths of 1 to
1.25 s with the C library, every EVERY calls (argv: library, artifact, COUNT, EVERY)."""


def recording(path: Path, minutes: int) -> Path:
    parts = [np.concatenate([speech_like(2.0 + 0.5 * (i % 4), i), np.zeros(3_200, np.float32)])
             for i in range(minutes * 20 + 2)]
    sf.write(str(path), np.concatenate(parts)[: minutes * 60 * 16_000], 16_000)
    return path


@click.command()
@click.option("--build", "build_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=Path("build/cpp"), show_default=True)
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="a run whose export/ holds model.onnx and/or model.pte")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results/c-api-memory"), show_default=True)
def main(build_dir: Path, run_dir: Path, out: Path) -> None:
    """Measure the C library's memory (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="emo-c-memory-") as tmp:
        files = {m: recording(Path(tmp) / f"{m}min.flac", m) for m in MINUTES}
        for name in ("model.onnx", "model.pte"):
            artifact = run_dir / "export" / name
            if artifact.exists():
                peaks = {}
                for minutes, path in files.items():
                    m = run_measured([build_dir / "emo_classify", artifact, path])
                    if m.proc.returncode:
                        raise click.ClickException(m.proc.stderr[-1500:])
                    peaks[f"{minutes} min"] = m.peak_rss_mb
                rows.append({"artifact": name, "peak_rss_mb": peaks})
    onnx = run_dir / "export" / "model.onnx"
    lengths = subprocess.run([sys.executable, "-c", LENGTHS_SCRIPT,
                              str(build_dir / "libemo_toolkit.so"), str(onnx), "400", "50"],
                             capture_output=True, text=True, check=True).stdout.split()
    report = {"created": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info("cpu"),
              "run": str(run_dir), "recordings": rows,
              "rss_mb_every_50_lengths": [int(v) for v in lengths]}
    lines = [f"C library memory, {report['created']}; machine: {describe(report['machine'])}.",
             "", "| artifact | " + " | ".join(f"{m} min" for m in MINUTES) + " |",
             "|---|" + "---:|" * len(MINUTES)]
    lines += [f"| {r['artifact']} | " + " | ".join(f"{v:.0f} MB" for v in
                                                  r["peak_rss_mb"].values()) + " |"
              for r in rows]
    lines += ["", "RSS over 400 distinct clip lengths (OpenVINO, MB, every 50 calls): "
              + ", ".join(lengths)]
    click.echo(write_figures(out, "c-api-memory", report, "\n".join(lines) + "\n"))


if __name__ == "__main__":
    main()
