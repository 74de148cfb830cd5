"""The Python half of docs/figures/device_check.sh: feature-extraction throughput, and the summary
of every step read against the GPU goals.

    python -m docs.figures.device_check extraction --device cuda --model hubert_base \
        --out F.json
    python -m docs.figures.device_check summary OUT_DIR

GOALS is the one home of the GPU targets the README states.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from emo_toolkit.runtime.io import atomic_write_json

CLIP_S = 3.0
GOALS = (
    {"name": "3 s clip, batch 1", "length_s": CLIP_S, "batch": 1, "precision": None,
     "min_realtime": 5_000},
    {"name": "3 s clips, batch 32, bf16", "length_s": CLIP_S, "batch": 32, "precision": "bf16",
     "min_realtime": 20_000},
)
EXTRACTION_GOAL_CLIPS_S = 2_000  # 3 s clips; the seed notebook did 4.1 clips/s on its GPU


def extraction_throughput(model: str, device: str, batches: tuple[int, ...], seconds: float,
                          repeats: int) -> list[dict[str, Any]]:
    """Clips per second through the frozen extractor (every layer's features, converted to
    fp16 as the cache stores them, left on the device: file reading and cache writes are
    emo-train's, timed in its step), equal-length clips, fp32 and fp16 autocast, after one
    warm-up batch."""
    import torch

    from emo_toolkit.data.demo_corpus import speech_like
    from emo_toolkit.features.extractor import autocast_context, open_extractor

    extractor = open_extractor(model, untrained=True, device=device)
    dev = torch.device(device)
    rows = []
    for precision in ("fp32", "fp16") if dev.type == "cuda" else ("fp32",):
        for batch in batches:
            x = torch.from_numpy(speech_like(seconds, 0, extractor.sample_rate, seed=3))
            x = x.repeat(batch, 1).to(dev)

            def step(x=x, precision=precision) -> None:
                with torch.inference_mode(), autocast_context(dev, precision):
                    layers, _ = extractor(x)
                    layers.to(torch.float16)  # what the cache keeps
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)

            step()
            start = time.perf_counter()
            for _ in range(repeats):
                step()
            wall = time.perf_counter() - start
            rows.append({"model": model, "precision": precision, "batch": batch,
                         "clip_s": seconds, "clips_per_s": batch * repeats / wall})
            click.echo(f"extraction {model} {precision} batch {batch}: "
                       f"{rows[-1]['clips_per_s']:.1f} clips/s", err=True)
    return rows


def read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def goal_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each latency goal against the best backend that measured its cell."""
    rows = []
    for goal in GOALS:
        best = None
        for entry in entries:
            if goal["precision"] and entry["precision"] != goal["precision"]:
                continue
            for cell in entry["cells"]:
                if (cell["length_s"], cell["batch"]) == (goal["length_s"], goal["batch"]) \
                        and "audio_s_per_s" in cell and (best is None or cell["audio_s_per_s"]
                                                         > best[2]["audio_s_per_s"]):
                    best = (entry["backend"], entry["precision"], cell)
        row = {**goal, "measured": best is not None}
        if best:
            row.update(backend=best[0], precision=best[1], median_ms=best[2]["median_s"] * 1e3,
                       realtime=best[2]["audio_s_per_s"],
                       met=best[2]["audio_s_per_s"] >= goal["min_realtime"])
        rows.append(row)
    return rows


def summarise(out: Path) -> dict[str, Any]:
    """Every step's outputs: emo-bench groups (bench-*/report.json; eager fp32, the reference
    each group runs, is kept once), extraction, training."""
    reports = {p.parent.name: read(p) for p in sorted(out.glob("bench-*/report.json"))}
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for report in reports.values():
        for e in report["entries"]:
            if e["status"] == "ok":
                entries.setdefault((e["backend"], e["precision"]), e)
    extraction = read(out / "extraction.json") or []
    best = max((r["clips_per_s"] for r in extraction if r["clip_s"] == CLIP_S), default=None)
    first = next(iter(reports.values()), None)
    return {"created": time.strftime("%Y-%m-%d %H:%M"), "steps": read(out / "steps.json") or {},
            "machine": first["machine"] if first else None,
            "bench_reports": sorted(reports),
            "goals": goal_rows(list(entries.values())),
            "latency": [{"backend": e["backend"], "precision": e["precision"],
                         **{k: c.get(k) for k in ("length_s", "batch", "median_s",
                                                   "audio_s_per_s", "peak_cuda_mb")}}
                        for e in entries.values() for c in e["cells"] if "median_s" in c],
            "ragged": [{"backend": e["backend"], "precision": e["precision"],
                        **e["ragged_cell"]} for e in entries.values()
                       if "median_s" in e.get("ragged_cell", {})],
            "extraction": extraction,
            "extraction_goal": {"min_clips_per_s": EXTRACTION_GOAL_CLIPS_S,
                                "best_clips_per_s": best,
                                "met": best is not None and best >= EXTRACTION_GOAL_CLIPS_S},
            "training": read(out / "training.json")}


def markdown(summary: dict[str, Any]) -> str:
    machine = summary["machine"] or {}
    lines = [f"Device check, {summary['created']}: GPU {machine.get('gpu') or 'none'}, "
             f"CUDA {machine.get('cuda') or '-'}, torch "
             f"{machine.get('versions', {}).get('torch', '-')}; HuBERT-base UNTRAINED "
             "weights (speed, not accuracy).", "", "| step | status | seconds |",
             "|---|---|---:|"]
    lines += [f"| {name} | {s['status']} | {s['seconds']:.0f} |"
              for name, s in summary["steps"].items()]
    lines += ["", "| goal | backend | median | times real time | target | met |",
              "|---|---|---:|---:|---:|---|"]
    for g in summary["goals"]:
        if g["measured"]:
            lines.append(f"| {g['name']} | {g['backend']} {g['precision']} | "
                         f"{g['median_ms']:.2f} ms | {g['realtime']:,.0f} | "
                         f"{g['min_realtime']:,} | {'yes' if g['met'] else 'no'} |")
        else:
            lines.append(f"| {g['name']} | not measured | | | {g['min_realtime']:,} | |")
    lines += ["", "| backend | precision | audio | batch | median ms | times real time |",
              "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {c['backend']} | {c['precision']} | {c['length_s']:g} s | {c['batch']} | "
              f"{c['median_s'] * 1e3:.2f} | {c['audio_s_per_s']:,.0f} |"
              for c in summary["latency"]]
    lines += ["", "| ragged cell | graph | clips | model calls | median ms | audio-s per s |",
              "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['backend']} {r['precision']} | {r['graph']} | {r['clips']} | "
              f"{r['model_calls']} | {r['median_s'] * 1e3:.1f} | {r['audio_s_per_s']:,.0f} |"
              for r in summary["ragged"]]
    lines += ["", "| extraction | precision | batch | clips/s |", "|---|---|---:|---:|"]
    lines += [f"| {r['model']} {r['clip_s']:g} s | {r['precision']} | {r['batch']} | "
              f"{r['clips_per_s']:,.1f} |" for r in summary["extraction"]]
    goal = summary["extraction_goal"]
    lines += ["", f"Extraction goal: {goal['min_clips_per_s']:,} clips/s of {CLIP_S:g} s; best "
              f"{goal['best_clips_per_s'] or 0:,.1f} ({'met' if goal['met'] else 'not met'})."]
    training = summary["training"]
    if training:
        lines += ["", f"One training epoch on the demo corpus (extraction included): "
                      f"{training['wall_s']:.1f} s, exit status {training['returncode']}."]
    return "\n".join(lines) + "\n"


@click.group()
def main() -> None:
    """Parts of docs/figures/device_check.sh."""


@main.command()
@click.option("--model", default="hubert_base", show_default=True)
@click.option("--device", default="cuda", show_default=True)
@click.option("--batches", default="1,16,64", show_default=True)
@click.option("--seconds", type=float, default=CLIP_S, show_default=True)
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def extraction(model: str, device: str, batches: str, seconds: float, repeats: int,
               out: Path) -> None:
    """Extraction throughput at each batch size."""
    rows = extraction_throughput(model, device, tuple(int(b) for b in batches.split(",")),
                                 seconds, repeats)
    atomic_write_json(out, rows)


@main.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
def summary(out: Path) -> None:
    """device-check.json and device-check.md from the steps' outputs under OUT."""
    from emo_toolkit.bench.report import write_figures

    result = summarise(out)
    click.echo(write_figures(out, "device-check", result, markdown(result)))


if __name__ == "__main__":
    main()
