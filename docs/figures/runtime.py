"""Figures of the deployment runtime (README, docs/benchmarks.md), measured side by side:

    python -m docs.figures.runtime --out docs/figures/results/runtime

1. The runtime install: `pip install 'emo-toolkit[cpu]'` into a fresh venv, its
   size on disk, and a prediction from an ONNX artifact made there, against the full
   install (the [train] extra) the project's .venv holds.
2. 100 demo clips: `emo-predict model.onnx` against `emo-predict RUN`, whole process wall
   time and peak RSS, for the tiny model and HuBERT-base (UNTRAINED weights: speed and
   memory depend on the architecture, not on the weights' values).
3. Long recordings (speech-like audio with pauses, FLAC) through HuBERT-base ONNX in
   segment mode: wall time, real-time factor and peak RSS at 1, 10 and 60 minutes.

Each command runs in a process of its own; peak RSS is that process's (wait4 rusage).
"""

from __future__ import annotations

import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import click
import numpy as np
import soundfile as sf

from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.data.demo_corpus import speech_like
from tests.process import run_measured

ROOT = Path(__file__).resolve().parents[2]  # the repository (this file: docs/figures/)
BIN = Path(sys.executable).parent
TINY_TRAIN = ("--extractor", "hubert_tiny", "--untrained", "--embed-dim", "64",
              "--conv-channels", "64", "--lstm-hidden", "64", "--epochs", "20")
BASE_TRAIN = ("--extractor", "hubert_base", "--untrained", "--epochs", "5")


def measured(*cmd: str | Path) -> dict[str, Any]:
    """Wall time, peak RSS and stdout of one command (tests/process.py)."""
    m = run_measured(cmd, env={"TQDM_DISABLE": "1"})
    if m.proc.returncode:
        raise click.ClickException(f"{' '.join(map(str, cmd))} failed:\n{m.proc.stderr[-2000:]}")
    return {"wall_s": m.wall_s, "peak_rss_mb": m.peak_rss_mb, "stdout": m.proc.stdout}


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()
               ) / 2**20


def site_packages(venv_dir: Path) -> Path:
    return next(venv_dir.glob("lib/python*/site-packages"))


def prepare_run(work: Path, name: str, train_args: tuple[str, ...]) -> tuple[Path, Path]:
    """A complete run on the demo corpus and its ONNX export (reused when present)."""
    corpus, run = work / "corpus", work / f"run-{name}"
    if not (corpus / "demo-corpus.json").exists():
        subprocess.run([BIN / "emo-data", "demo", corpus, "--speakers", "8",
                        "--clips-per-emotion", "5", "-q"], check=True)
    status = run / "status.json"
    if not status.exists() or '"complete"' not in status.read_text():
        subprocess.run([BIN / "emo-train", corpus, "--out", run, "--cache", work / "cache",
                        "--test-fraction", "0.25", "-q", *train_args], check=True)
    onnx = run / "export" / "model.onnx"
    if not onnx.exists():
        subprocess.run([BIN / "emo-export", run, "--format", "onnx", "-q"], check=True)
    return run, onnx


def runtime_install(work: Path, onnx: Path, clip: Path) -> dict[str, Any]:
    target = work / "runtime-venv"
    if not (target / "bin" / "emo-predict").exists():
        venv.create(target, with_pip=True, clear=True)
        start = time.perf_counter()
        subprocess.run([target / "bin" / "python", "-m", "pip", "install", "--quiet",
                        f"{ROOT}[cpu]"], check=True)
        install_s = time.perf_counter() - start
    else:
        install_s = None
    torch_missing = subprocess.run([target / "bin" / "python", "-c", "import torch"],
                                   capture_output=True).returncode != 0
    run = measured(target / "bin" / "emo-predict", onnx, clip, "-q")
    packages = site_packages(target)
    biggest = sorted(((folder_mb(p), p.name) for p in packages.iterdir() if p.is_dir()),
                     reverse=True)[:4]
    return {"runtime_mb": folder_mb(packages), "install_s": install_s,
            "torch_importable": not torch_missing, "prediction": run["stdout"].strip(),
            "largest_packages_mb": {name: round(mb, 1) for mb, name in biggest},
            "full_install_mb": folder_mb(site_packages(Path(sys.prefix)))}


def clips_compare(run: Path, onnx: Path, clips: list[Path]) -> dict[str, Any]:
    import json

    out = {}
    labels = {}
    for name, model in (("artifact (ONNX Runtime)", onnx), ("run (eager PyTorch)", run)):
        r = measured(BIN / "emo-predict", model, *clips, "-q")
        rows = [json.loads(line) for line in r["stdout"].splitlines()]
        labels[name] = [row.get("label") for row in rows]
        out[name] = {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}
    a, b = labels.values()
    out["label_agreement"] = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    return out


def write_recording(path: Path, minutes: int, rate: int = 16_000) -> Path:
    """Speech-like bursts of 1.5-3 s with pauses of 0.2-0.6 s, written a minute at a time."""
    if path.exists() and sf.info(str(path)).duration >= 60 * minutes:
        return path
    with sf.SoundFile(str(path), "w", rate, 1, "PCM_16", format="FLAC") as f:
        for m in range(minutes):
            rng = np.random.default_rng(m)
            parts, n = [], 0
            i = 0
            while n < 60 * rate:
                burst = speech_like(float(rng.uniform(1.5, 3.0)), 1000 * m + i, rate)
                pause = np.zeros(int(rng.uniform(0.2, 0.6) * rate), np.float32)
                parts += [burst, pause]
                n += burst.size + pause.size
                i += 1
            f.write(np.concatenate(parts)[: 60 * rate])
    return path


def long_audio(work: Path, onnx: Path, minutes: list[int]) -> list[dict[str, Any]]:
    import json

    rows = []
    for m in minutes:
        path = write_recording(work / f"speech-{m}min.flac", m)
        r = measured(BIN / "emo-predict", onnx, path, "-q")
        (row,) = [json.loads(line) for line in r["stdout"].splitlines()]
        rows.append({"minutes": m, "wall_s": r["wall_s"], "rtf": r["wall_s"] / (60 * m),
                     "peak_rss_mb": r["peak_rss_mb"], "segments": row["segments"]})
        click.echo(f"  {m} min: {r['wall_s']:.1f} s, peak {r['peak_rss_mb']:.0f} MB", err=True)
    return rows


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Runtime figures, {report['created']}; machine: {describe(report['machine'])}.", ""]
    inst = report.get("install")
    if inst:
        lines += ["| install | size on disk |", "|---|---:|",
                  f"| `pip install 'emo-toolkit[cpu]'` (runtime) | {inst['runtime_mb']:.0f} MB |",
                  f"| with the [train] extra (this project's .venv) | "
                  f"{inst['full_install_mb']:.0f} MB |", "",
                  "Largest runtime packages: " + ", ".join(
                      f"{k} {v:.0f} MB" for k, v in inst["largest_packages_mb"].items()) +
                  f"; torch importable there: {inst['torch_importable']}.", ""]
    for model, figures in report.get("clips", {}).items():
        n = report["clip_count"]
        lines += [f"{n} demo clips, {model} (UNTRAINED weights), whole process:", "",
                  "| emo-predict on | wall time | peak RSS |", "|---|---:|---:|"]
        lines += [f"| {name} | {f['wall_s']:.1f} s | {f['peak_rss_mb']:.0f} MB |"
                  for name, f in figures.items() if isinstance(f, dict)]
        lines += ["", f"Same label on {figures['label_agreement']:.0%} of the clips.", ""]
    if report.get("long"):
        lines += ["Long recordings, HuBERT-base ONNX, segment mode (10 s window), whole process:",
                  "", "| recording | segments | wall time | real-time factor | peak RSS |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['minutes']} min | {r['segments']} | {r['wall_s']:.1f} s | "
                  f"{r['rtf']:.3f} | {r['peak_rss_mb']:.0f} MB |" for r in report["long"]]
        first, last = report["long"][0], report["long"][-1]
        ratio = last["minutes"] // first["minutes"]
        lines += ["", f"{last['minutes']} min against {first['minutes']} min: "
                  f"{last['wall_s'] / first['wall_s']:.1f} times the time for {ratio} times the "
                  f"audio; peak RSS {last['peak_rss_mb'] / first['peak_rss_mb']:.2f} times.", ""]
    return "\n".join(lines)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results/runtime"), show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path),
              default=Path("build/bench-runtime"), show_default=True)
@click.option("--minutes", default="1,10,60", show_default=True,
              help="lengths of the long recordings, comma-separated")
@click.option("--clips", "clip_count", type=click.IntRange(1, 200), default=100,
              show_default=True)
@click.option("--skip-install", is_flag=True, help="leave out the fresh-venv install")
@click.option("--skip-base", is_flag=True, help="leave out HuBERT-base (clips and long audio)")
def main(out: Path, work: Path, minutes: str, clip_count: int, skip_install: bool,
         skip_base: bool) -> None:
    """Measure the runtime's install size, speed and memory (see the module docstring)."""
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"created": time.strftime("%Y-%m-%d %H:%M"),
                              "machine": machine_info("cpu"), "clip_count": clip_count,
                              "clips": {}}
    tiny_run, tiny_onnx = prepare_run(work, "tiny", TINY_TRAIN)
    clips = sorted((work / "corpus").rglob("*.wav"))[:clip_count]
    if not skip_install:
        click.echo("runtime install ...", err=True)
        report["install"] = runtime_install(work, tiny_onnx, clips[0])
    click.echo("100 clips, tiny ...", err=True)
    report["clips"]["hubert_tiny"] = clips_compare(tiny_run, tiny_onnx, clips)
    if not skip_base:
        base_run, base_onnx = prepare_run(work, "base", BASE_TRAIN)
        click.echo("100 clips, HuBERT-base ...", err=True)
        report["clips"]["HuBERT-base"] = clips_compare(base_run, base_onnx, clips)
        click.echo("long recordings ...", err=True)
        report["long"] = long_audio(work, base_onnx, [int(m) for m in minutes.split(",")])
    click.echo(write_figures(out, "runtime", report, markdown(report)))


if __name__ == "__main__":
    main()
