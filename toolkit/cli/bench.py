"""emo-bench: latency, throughput, memory and accuracy parity of every backend vs eager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from emo_toolkit.bench.config import BenchConfig
from emo_toolkit.cli.support import GuardedCommand, build, common_options, dataclass_options, info
from emo_toolkit.runtime.errors import DeviceError


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@dataclass_options(BenchConfig)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="report folder [default: RUN_DIR/bench/<device>]")
def main(run_dir: Path, out_dir: Path | None, **options: Any) -> None:
    """Benchmark RUN_DIR's recognizer on every backend against eager PyTorch.

    Backends: eager, torch.compile (and with CUDA graphs on --device cuda),
    TorchScript, ONNX Runtime (CPU; CUDA and TensorRT execution providers on
    --device cuda), OpenVINO (CPU; bf16/fp16 computed at run time on CPUs with
    those units), AOTInductor and ExecuTorch (XNNPACK, CPU, one clip per call),
    at fp32, fp16, bf16, int8 (static QDQ) and int8-dynamic where each supports
    it; the rest are listed as skipped with the reason. Each runs in its own
    process over a grid of audio lengths x batch sizes (warm-up, then timed calls
    until --cell-budget), a ragged cell (clips of 1 to 10 s in one call of the
    runtime: padded batches with --ragged, one call per length without), and over
    the eval set for WA/UA, top-1 agreement and max |Δlogit| against eager fp32.

    Ends with a verdict: the fastest configuration that passes its agreement gate
    (as emo-export gates it) at the clip closest to 3 s, batch 1 and the largest
    batch, its speed-up over eager and ONNX Runtime fp32, and the command that
    runs it. Artifacts it exports go to OUT/artifacts and are reused by later runs
    into the same OUT while the run's weights are the same.

    Writes report.json, report.csv, report.md, latency.png, throughput.png (each
    starting with the machine, its CPU features and library versions) and
    choice.json, which `emo-predict OUT/choice.json FILE...` runs.
    """
    from emo_toolkit.bench.harness import run_bench
    from emo_toolkit.bench.report import (
        header,
        latency_table,
        parity_table,
        ragged_table,
        skipped_lines,
        summary_table,
    )
    from emo_toolkit.bench.verdict import verdict_lines
    from emo_toolkit.features.extractor import require_device

    device = options["device"]
    try:
        require_device(device)
    except DeviceError as e:
        click.echo(f"emo-bench: {e}. Use --device cpu, or run on a machine with a CUDA GPU.",
                   err=True)
        raise SystemExit(2) from e
    config = build(BenchConfig, options, run_dir=run_dir,
                   out_dir=out_dir or run_dir / "bench" / device.replace(":", "-"))
    report = run_bench(config, echo=info)
    click.echo("\n".join(header(report)))
    click.echo("\n" + latency_table(report) + "\n\n" + parity_table(report) + "\n\n" +
               summary_table(report))
    ragged_rows = ragged_table(report)
    if ragged_rows:
        click.echo("\nclips of different lengths in one call:\n" + ragged_rows)
    skipped = skipped_lines(report)
    if skipped:
        click.echo("\nnot measured:\n" + "\n".join(skipped))
    click.echo("\nverdict:\n" + "\n".join(verdict_lines(report)))
    click.echo(f"\nreports: {config.out_dir}/report.{{json,csv,md}}, latency.png, throughput.png"
               + (", choice.json" if report["verdict"].get("choice_file") else ""))
