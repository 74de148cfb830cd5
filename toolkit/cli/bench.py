"""emo-bench: latency, throughput, memory and accuracy parity of every backend vs eager."""

from __future__ import annotations

from pathlib import Path

import click

from emo_toolkit.bench.backends import BACKEND_NAMES, PRECISIONS
from emo_toolkit.cli.support import DEVICE, FiniteFloat, GuardedCommand, common_options, info
from emo_toolkit.runtime.errors import DeviceError


def _list(kind: type, choices: tuple[str, ...] | None = None):
    def convert(ctx: click.Context, param: click.Parameter, value: str | None):
        if value is None:
            return None
        items = [v.strip() for v in value.split(",") if v.strip()]
        if choices is not None:
            bad = [v for v in items if v not in choices]
            if bad:
                raise click.BadParameter(f"{', '.join(bad)} not in {', '.join(choices)}")
            return tuple(items)
        try:
            return tuple(kind(v) for v in items)
        except ValueError as e:
            raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from e
    return convert


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--device", type=DEVICE, default="cpu", show_default=True,
              help="cpu, or cuda[:N]; cuda on a machine without CUDA exits with status 2")
@click.option("--backends", default=",".join(BACKEND_NAMES), show_default=True,
              callback=_list(str, BACKEND_NAMES),
              help="comma-separated; eager fp32 always runs, as the reference")
@click.option("--precision", "precisions", default=None, callback=_list(str, PRECISIONS),
              help="comma-separated from " + ",".join(PRECISIONS) + " [default: all; on a CPU "
                   "without native fp16/bf16 matmuls those are skipped unless named here]")
@click.option("--lengths", default="1,3,10,30", show_default=True, callback=_list(float),
              help="audio lengths in seconds")
@click.option("--batch-sizes", default="1,8", show_default=True, callback=_list(int))
@click.option("--warmup", type=click.IntRange(0, 1000), default=1, show_default=True,
              help="untimed calls before each cell")
@click.option("--cell-budget", type=FiniteFloat(), default=3.0, show_default=True,
              help="seconds of timed calls per cell (at least --min-repeats calls)")
@click.option("--min-repeats", type=click.IntRange(1, 100_000), default=2, show_default=True)
@click.option("--max-repeats", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--eval-folder", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="labelled clips for accuracy parity [default: the run's test "
                                 "split]")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="the run's corpus folder, when it is no longer where the run "
              "recorded it (its test split is the eval set) [default: the run's]")
@click.option("--eval-limit", type=click.IntRange(1), default=None,
              help="use only the first N eval clips")
@click.option("--split", default=None, help="which split's head (cross-validation runs)")
@click.option("--artifacts", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder with artifacts exported from RUN_DIR, searched before RUN_DIR/export "
                   "(repeatable); missing ones are exported into RUN_DIR/export/bench-<device>")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="report folder [default: RUN_DIR/bench/<device>]")
@click.option("--ragged", is_flag=True,
              help="benchmark graphs that take lengths (artifacts exported with --ragged; eager "
                   "and compiled models run their padded path)")
@click.option("--ragged-clips", type=click.IntRange(0, 1024), default=8, show_default=True,
              help="the ragged cell: this many clips, evenly from 1 to 10 s, in one call as the "
                   "runtime batches them (0: no ragged cell)")
@click.option("--max-padding", type=FiniteFloat(0.0, 1.0), default=None,
              help="the ragged cell through a lengths graph: the largest share of a padded batch "
                   "that may be padding (1.0: all clips in one call) [default: the runtime's, "
                   "0 on CPU, 0.25 on CUDA]")
@click.option("--force", is_flag=True, help="replace an existing report")
def main(run_dir: Path, device: str, backends: tuple[str, ...],
         precisions: tuple[str, ...] | None, lengths: tuple[float, ...],
         batch_sizes: tuple[int, ...], warmup: int, cell_budget: float, min_repeats: int,
         max_repeats: int, eval_folder: Path | None, eval_limit: int | None, split: str | None,
         artifacts: tuple[Path, ...], out_dir: Path | None, ragged: bool, ragged_clips: int,
         max_padding: float | None, force: bool, corpus: Path | None) -> None:
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
    from emo_toolkit.bench.harness import BenchConfig, run_bench
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

    try:
        require_device(device)
    except DeviceError as e:
        click.echo(f"emo-bench: {e}. Use --device cpu, or run on a machine with a CUDA GPU.",
                   err=True)
        raise SystemExit(2) from e
    try:
        config = BenchConfig(
            run_dir, out_dir or run_dir / "bench" / device.replace(":", "-"), device,
            backends, precisions, lengths, batch_sizes, warmup, cell_budget, min_repeats,
            max_repeats, split, eval_folder, eval_limit, artifacts, force, ragged, ragged_clips,
            max_padding, corpus)
    except ValueError as e:
        raise click.UsageError(str(e)) from e
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
