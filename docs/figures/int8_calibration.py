"""How many training clips static int8 needs: the QDQ artifact's agreement with eager fp32
on a run's test split, for each calibration count.

    python -m docs.figures.int8_calibration RUN --counts 8,32,128 --out docs/figures/results

Each count exports `--precision int8 --calibration-clips N` (recorded even below the
98 % gate) and reports the gate's figures: top-1 agreement, the largest |Δp| over the
split, the disagreeing clips and the export time (calibration included).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

from emo_toolkit.bench.machine import describe, machine_info
from emo_toolkit.bench.report import write_figures
from emo_toolkit.export import exporter


def measure(run: Path, counts: list[int], work: Path) -> dict[str, Any]:
    rows = []
    for count in counts:
        result = exporter.export_run(run, "onnx", precision="int8", out_dir=work / str(count),
                                     min_agreement=0.0, calibration_clips=count)
        gate = result.gate
        rows.append({"calibration_clips": count, "export_s": result.export_seconds,
                     "test_clips": gate["test_split_clips"],
                     "top1_agreement": gate["test_split_top1_agreement"],
                     "max_prob_diff": gate["test_split_max_prob_diff"],
                     "disagreeing": [Path(f).name for f in gate["disagreeing_clips"]]})
        click.echo(f"{count} clips: {rows[-1]}", err=True)
    return {"run": str(run), "machine": machine_info("cpu"), "rows": rows}


def to_markdown(results: dict[str, Any]) -> str:
    lines = [f"machine: {describe(results['machine'])}", f"run: {results['run']}", "",
             "| calibration clips | export time (s) | top-1 agreement with eager | "
             "max abs Δp | disagreeing clips |", "|---:|---:|---:|---:|---|"]
    for r in results["rows"]:
        lines.append(f"| {r['calibration_clips']} | {r['export_s']:.1f} | "
                     f"{r['top1_agreement']:.0%} of {r['test_clips']} | "
                     f"{r['max_prob_diff']:.3f} | {', '.join(r['disagreeing']) or '-'} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--counts", default="8,32,128", show_default=True,
              help="comma-separated calibration clip counts")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/figures/results"), show_default=True)
def main(run: Path, counts: str, out_dir: Path) -> None:
    """Export RUN's int8 QDQ artifact at each calibration count and record its agreement."""
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(run, [int(c) for c in counts.split(",")], Path(tmp))
    click.echo(write_figures(out_dir, "int8-calibration-hubert-base-cpu", results,
                             to_markdown(results)))


if __name__ == "__main__":
    main()
