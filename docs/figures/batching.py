"""Graphs that take lengths and reduced-precision artifacts, side by side (README,
docs/benchmarks.md):

    python -m docs.figures.batching RUN --out docs/figures/results/batching

For one run (HuBERT-base, UNTRAINED weights, in the published figures) it exports,
or reuses from RUN/export, the whole-clip and --ragged graphs (ONNX, TorchScript) and
the fp16 ONNX artifact, then times them in this one process, interleaved round by
round (the median of --rounds), through the runtime's Recognizer:

1. one 3 s clip: what the lengths input costs a single clip;
2. clips of 1 to 10 s (--clips of them) as the runtime batches them: one call per clip
   through the whole-clip graph; through the lengths graph, padded batches of similar
   lengths (at most 20 % padding) and one padded batch of all;
3. one 3 s clip at fp16 against fp32, with each export's gate figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.runtime.formats.base import sidecar_path
from emo_toolkit.runtime.io import read_json_file
from emo_toolkit.runtime.recognizer import Recognizer, batch_plan

# (format, precision, layout) of every artifact measured
# (TorchScript fp16/bf16 are left out: without native fp16/bf16 matmuls torch emulates
# them on the CPU, and HuBERT-base's gate over the test split took longer than 10 minutes)
ARTIFACTS = {"onnx": ("onnx", "fp32", "clips"), "onnx --ragged": ("onnx", "fp32", "padded"),
             "onnx fp16": ("onnx", "fp16", "clips"),
             "torchscript": ("torchscript", "fp32", "clips"),
             "torchscript --ragged": ("torchscript", "fp32", "padded")}


def artifact(run: Path, fmt: str, precision: str, layout: str) -> Path:
    from emo_toolkit.export.exporter import artifact_name, export_run

    path = run / "export" / artifact_name(fmt, precision, 16_000, layout)
    if not path.is_file():
        click.echo(f"exporting {path.name} ...", err=True)
        export_run(run, fmt, precision=precision, layout=layout)
    return path


def padded_run(recognizer: Recognizer, clips: list[np.ndarray], max_padding: float) -> Any:
    recognizer.max_padding = max_padding
    return recognizer.logits_of_clips(clips, len(clips))


def seconds(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(run: Path, clip_count: int, rounds: int) -> dict[str, Any]:
    recognizers = {name: Recognizer.open(artifact(run, *spec))
                   for name, spec in ARTIFACTS.items()}
    rate = next(iter(recognizers.values())).sample_rate
    one = speech_like(3.0, 0, rate, seed=9)
    clips = [speech_like(float(s), i, rate, seed=9)
             for i, s in enumerate(np.linspace(1.0, 10.0, clip_count))]
    cases: dict[str, Callable[[], Any]] = {
        f"3 s clip, {name}": (lambda r=r: r.logits(one[None]))
        for name, r in recognizers.items()}
    lengths = [c.size for c in clips]
    calls = {}
    for name, padding in (("onnx", 0.0), ("onnx --ragged", 0.2), ("onnx --ragged", 1.0)):
        case = f"{clip_count} clips 1-10 s, {name}" + (f", max padding {padding:g}"
                                                       if "ragged" in name else "")
        calls[case] = len(batch_plan(lengths, clip_count, padding))
        r = recognizers[name]
        cases[case] = (lambda r=r, padding=padding: padded_run(r, clips, padding))
    for call in cases.values():  # warm-up: first calls at a shape plan memory
        call()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            times[name].append(seconds(call))
    gates = {name: read_json_file(sidecar_path(artifact(run, *spec)))["parity"]
             for name, spec in ARTIFACTS.items()}
    return {"clip_count": clip_count, "rounds": rounds, "model_calls": calls,
            "audio_s": sum(c.size for c in clips) / rate,
            "median_s": {name: statistics.median(t) for name, t in times.items()},
            "parity": {name: {"max_abs_diff": g["max_abs_diff"],
                              "max_prob_diff": g.get("max_prob_diff"),
                              "gate": g["gate"]} for name, g in gates.items()}}


def markdown(report: dict[str, Any]) -> str:
    m, n = report["median_s"], report["clip_count"]
    lines = [f"Batching and precision figures, {report['created']}; machine: "
             f"{describe(report['machine'])}; {report['model']}, median of "
             f"{report['rounds']} interleaved rounds in one process.", "",
             "| case | median | vs fp32 whole-clip ONNX |", "|---|---:|---:|"]
    base = m["3 s clip, onnx"]
    lines += [f"| {name} | {t * 1e3:.0f} ms | {t / base:.2f}x |" for name, t in m.items()
              if name.startswith("3 s")]
    lines += ["", f"{n} clips of 1 to 10 s ({report['audio_s']:.1f} s of audio) in one "
              "call of the runtime:", "",
              "| artifact | model calls | median | audio-s per s |", "|---|---:|---:|---:|"]
    for name, t in m.items():
        if name.startswith(f"{n} clips"):
            lines.append(f"| {name.split(', ', 1)[1]} | {report['model_calls'][name]} | "
                         f"{t:.2f} s | {report['audio_s'] / t:.1f} |")
    lines += ["", "| artifact | max abs Δlogit (golden) | max abs Δp (golden) | gate |",
              "|---|---:|---:|---|"]
    for name, p in report["parity"].items():
        gate = p["gate"]
        rule = ("test-split top-1 agreement "
                f"{gate['test_split_top1_agreement']:.1%}" if "test_split_top1_agreement" in gate
                else "within 1e-4")
        prob = "" if p["max_prob_diff"] is None else f"{p['max_prob_diff']:.1e}"
        lines.append(f"| {name} | {p['max_abs_diff']:.1e} | {prob} | {rule} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results/batching"), show_default=True)
@click.option("--clips", "clip_count", type=click.IntRange(2, 64), default=8, show_default=True)
@click.option("--rounds", type=click.IntRange(1, 100), default=5, show_default=True)
def main(run: Path, out: Path, clip_count: int, rounds: int) -> None:
    """Time lengths graphs and fp16/bf16 artifacts of RUN (see the module docstring)."""
    extractor = read_json_file(run / "config.json")["extractor"]
    model = extractor["name"] + (" (UNTRAINED weights)" if extractor.get("untrained") else "")
    report = {"created": time.strftime("%Y-%m-%d %H:%M"), "machine": machine_info("cpu"),
              "model": model, **measure(run, clip_count, rounds)}
    click.echo(write_figures(out, "batching", report, markdown(report)))


if __name__ == "__main__":
    main()
