"""Live-audio latency of `emo-predict stream` and `emo_classify --stream` (docs/benchmarks.md):

    python -m docs.figures.streaming MODEL.onnx --out docs/figures/results/streaming-hubert-base-cpu

A recording of speech-like audio (--seconds long) goes through a pipe at real-time speed,
as a 16 kHz 16-bit WAV stream in 20 ms blocks, into each command with a --window second
window every --hop seconds: emo-predict (ONNX Runtime) and emo_classify (the C API on
OpenVINO, built here). Each command gets the header first and the audio only once it has
said it is streaming (its model loaded), as a live source that starts then.

Per window: latency, from the moment its last sample was written to the pipe to the moment
its line was read from the command's output (the last window, which only the end of the
input completes, is left out); p50, p99 and max over the windows, the windows printed,
and the windows skipped. Compute: one window alone through the same runtime (median of
--repeats: ONNX Runtime in this process, and `emo_classify --repeat` on a window-long
file), so the target "p99 <= one window's compute + 50 ms" can be read off; the real-time
factor is compute per window over the hop (below 1: the command keeps up).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import soundfile as sf

from docs.figures.c_api import build
from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.runtime.pcm import s16le_bytes, wav_stream_header
from emo_toolkit.runtime.recognizer import Recognizer

BIN = Path(sys.executable).parent
RATE = 16_000
BLOCK_S = 0.02
LATENCY_MARGIN_S = 0.050  # the target: p99 <= one window's compute + this


def feed_real_time(command: list[str], samples: np.ndarray, hop: float) -> dict[str, Any]:
    """`samples` into `command`'s stdin at real-time speed; per-window latencies."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin and proc.stdout and proc.stderr
    lines: list[tuple[float, bytes]] = []
    errors: list[str] = []
    streaming = threading.Event()

    def read_out() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append((time.monotonic(), line))

    def read_err() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            errors.append(line.decode(errors="replace").rstrip())
            if line.startswith(b"streaming:"):
                streaming.set()

    readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
    for t in readers:
        t.start()
    proc.stdin.write(wav_stream_header(RATE))
    proc.stdin.flush()
    if not streaming.wait(300):
        proc.kill()
        raise click.ClickException(f"{command[0]} did not start streaming: {errors[-3:]}")
    pcm = s16le_bytes(samples)
    step = round(BLOCK_S * RATE)
    written: list[float] = []
    start = time.monotonic()
    for k, offset in enumerate(range(0, len(samples), step)):
        time.sleep(max(0.0, start + (k + 1) * BLOCK_S - time.monotonic()))
        proc.stdin.write(pcm[2 * offset:2 * (offset + step)])
        proc.stdin.flush()
        written.append(time.monotonic())
    proc.stdin.close()
    proc.wait(600)
    for t in readers:
        t.join(10)
    if proc.returncode:
        raise click.ClickException(f"{command[0]} failed: {errors[-3:]}")
    latencies, indices = [], []
    for read_at, line in lines:
        row = json.loads(line)
        indices.append(row["window"])
        if abs(row["start"] / hop - round(row["start"] / hop)) > 1e-6:
            continue  # the last window: the end of the input completes it
        last_block = max(0, int(np.ceil(row["end"] / BLOCK_S - 1e-6)) - 1)
        latencies.append(read_at - written[last_block])
    ms = np.array(latencies) * 1000
    return {"windows": len(lines), "skipped": _skipped(errors),
            "in_order": indices == sorted(indices),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()), "summary": errors[-1] if errors else ""}


def _skipped(stderr: list[str]) -> int:
    last = stderr[-1] if stderr else ""
    return int(last.rsplit(",", 1)[-1].split()[0]) if "skipped" in last else -1


def python_compute_s(model: Path, window: float, repeats: int) -> float:
    """One window through ONNX Runtime in this process (what emo-predict runs): median s."""
    recognizer = Recognizer.open(model)
    clip = speech_like(window, 1)[None]
    recognizer.logits(clip)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        recognizer.logits(clip)
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def c_compute_s(app: Path, model: Path, window: float, repeats: int, work: Path) -> float:
    """One window through the C API (emo_classify --repeat on a window-long file): median s."""
    clip = work / "window.wav"
    sf.write(str(clip), speech_like(window, 1), RATE)
    out = subprocess.run([str(app), "--repeat", str(repeats), "--window", str(window),
                          str(model), str(clip)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])["latency_ms"] / 1000


def markdown(report: dict[str, Any]) -> str:
    lines = [f"emo-predict stream and emo_classify --stream at real time, {report['created']}",
             f"machine: {describe(report['machine'])}",
             f"model: {report['model']} ({report['untrained']}); a {report['window_s']:g} s "
             f"window; {report['seconds']:g} s of audio fed in {BLOCK_S * 1000:.0f} ms blocks",
             "", "| command | hop | windows | skipped | latency p50 | p99 | max | one window's "
             "compute | p99 target | RTF |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["runs"]:
        target = r["compute_ms"] + LATENCY_MARGIN_S * 1000
        verdict = "met" if r["p99_ms"] <= target else "missed"
        goal = f"{target:.0f} ms ({verdict})" if r["rtf"] < 1 else "- (cannot keep up)"
        lines.append(f"| {r['name']} | {r['hop_s']:g} s | {r['windows']} of {r['expected']} | "
                     f"{r['skipped']} | {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | "
                     f"{r['max_ms']:.0f} ms | {r['compute_ms']:.0f} ms | {goal} | "
                     f"{r['rtf']:.2f} |")
    lines += ["", "Latency: from a window's last sample written to the pipe to its line read "
              "(windows printed only). RTF: one window's compute over the hop; above 1 the "
              "command cannot compute every window and skips to the newest (--max-delay 2)."]
    return "\n".join(lines) + "\n"


def expected_windows(samples: int, window: float, hop: float) -> int:
    """The windows a stream of `samples` gets: the grid's, and the last one when samples
    remain after it (toolkit/runtime/stream.py)."""
    w, h = round(window * RATE), round(hop * RATE)
    grid = (samples - w) // h + 1
    return grid + (samples > (grid - 1) * h + w)


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/bench-streaming"), show_default=True)
@click.option("--seconds", type=float, default=60.0, show_default=True,
              help="length of the recording fed at real time")
@click.option("--window", type=float, default=2.0, show_default=True)
@click.option("--hop", type=float, default=0.5, show_default=True)
@click.option("--overload-hop", type=float, default=0.1, show_default=True,
              help="a second run with a hop shorter than a window's compute, to show the "
                   "skipping (0: none)")
@click.option("--repeats", type=int, default=20, show_default=True)
@click.option("--no-c", is_flag=True, help="emo-predict only (no C build)")
def main(model: Path, out: Path, work: Path, seconds: float, window: float, hop: float,
         overload_hop: float, repeats: int, no_c: bool) -> None:
    work.mkdir(parents=True, exist_ok=True)
    samples = np.concatenate([speech_like(3.0, 200 + i) for i in range(int(seconds // 3))])
    commands = [("emo-predict stream (ONNX Runtime)",
                 [str(BIN / "emo-predict"), "stream", str(model)],
                 python_compute_s(model, window, repeats))]
    if not no_c:
        app = build(work / "cpp", "OPENVINO")
        commands.append(("emo_classify --stream (C API, OpenVINO)",
                         [str(app), "--stream", str(model)],
                         c_compute_s(app, model, window, repeats, work)))
    runs = []
    for run_hop in [hop] + ([overload_hop] if overload_hop else []):
        for name, command, compute in commands:
            options = ["--window", str(window), "--hop", str(run_hop)]
            figures = feed_real_time([*command, *options], samples, run_hop)
            runs.append({"name": name, "hop_s": run_hop, **figures,
                         "expected": expected_windows(len(samples), window, run_hop),
                         "compute_ms": compute * 1000, "rtf": compute / run_hop})
            click.echo(f"{name}, hop {run_hop:g} s: {figures}", err=True)
    report = {"created": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info("cpu"),
              "model": model.name, "untrained": "UNTRAINED extractor"
              if Recognizer.open(model).info.untrained else "trained",
              "window_s": window, "seconds": len(samples) / RATE, "runs": runs}
    click.echo(write_figures(out, "streaming", report, markdown(report)))


if __name__ == "__main__":
    main()
