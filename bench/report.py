"""emo-bench's outputs: a terminal/Markdown table, JSON, CSV and two PNG plots.

Every report starts with the machine and library versions (bench/machine.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emo_toolkit.bench.machine import describe
from emo_toolkit.bench.verdict import decision_cells, verdict_lines
from emo_toolkit.runtime.choice import CHOICE_FILE, Choice
from emo_toolkit.runtime.io import atomic_write_json, atomic_write_text

NA = "-"


def write_figures(out_dir: Path, stem: str, data: Any, markdown: str) -> str:
    """A benchmark's results as <stem>.json and <stem>.md in `out_dir` (made if missing),
    written atomically; returns the Markdown, for the terminal."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / f"{stem}.json", data)
    atomic_write_text(out_dir / f"{stem}.md", markdown)
    return markdown
CSV_FIELDS = ("backend", "precision", "status", "reason", "length_s", "batch", "samples",
              "repeats", "median_s", "p90_s", "p99_s", "mean_s", "min_s", "audio_s_per_s",
              "rtf", "latency_vs_eager", "gflops", "gflop_per_s", "peak_gflop_per_s",
              "pct_of_peak", "peak_rss_mb", "peak_cuda_mb", "error", "eval_clips", "wa", "ua",
              "top1_agreement", "max_abs_logit_diff")


def header(report: dict[str, Any]) -> list[str]:
    m = report["model"]
    return [
        f"emo-bench, {report['created']}, --device {report['device']}",
        f"machine: {describe(report['machine'])}",
        f"model: {m['extractor']} ({m['extractor_weights']}) + head, {len(m['labels'])} labels, "
        f"{m['parameters'] / 1e6:.1f} M parameters; pipeline "
        f"{report['flops_per_audio_second'] / 1e9:.2f} GFLOP per audio second (1 s clip)",
        "matmul peak: " + ", ".join(f"{p} {v:.0f} {'GOP/s' if p == 'int8' else 'GFLOP/s'}"
                                    for p, v in report["matmul_peak_gflops"].items()),
        f"eval set: {report['eval_set']['clips']} clips ({report['eval_set']['source']})",
    ]


def _ms(seconds: float | None) -> str:
    return _fmt(_scaled(seconds), ".1f")


def latency_table(report: dict[str, Any]) -> str:
    rows = ["| backend | precision | audio | batch | median ms | p90 ms | p99 ms | runs | "
            "audio-s/s | RTF | vs eager | % of peak | peak RSS MB | peak CUDA MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["entries"]:
        if e["status"] != "ok":
            continue
        for c in e["cells"]:
            if "median_s" not in c:
                rows.append(f"| {e['backend']} | {e['precision']} | {c['length_s']:g} s | "
                            f"{c['batch']} | failed: {c['error']} |||||||||")
                continue
            vs = c.get("latency_vs_eager")
            cuda = c.get("peak_cuda_mb")
            rows.append(
                f"| {e['backend']} | {e['precision']} | {c['length_s']:g} s | {c['batch']} | "
                f"{_ms(c['median_s'])} | {_ms(c['p90_s'])} | {_ms(c['p99_s'])} | "
                f"{c['repeats']} | {c['audio_s_per_s']:.1f} | {c['rtf']:.3f} | "
                f"{NA if vs is None else f'{vs:.2f}'} | {c['pct_of_peak']:.0f} % | "
                f"{c['peak_rss_mb']:.0f} | {NA if cuda is None else f'{cuda:.0f}'} |")
    return "\n".join(rows)


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return NA if value is None else f"{value:{spec}}{unit}"


def _scaled(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1e3


def summary_table(report: dict[str, Any]) -> str:
    """One row per backend: latency at the decision clip, throughput at the largest batch,
    parity and the gate; every column names its clip length and batch."""
    config = report["config"]
    (length, small), (_, big) = decision_cells(config)
    longest = max(config["lengths_s"])
    at = f"{length:g} s clip, batch {small}"
    long_column = [f"median ms ({longest:g} s clip, batch {small})"] if longest != length else []
    columns = ["backend", "precision", f"median ms ({at})", f"vs eager ({at})", *long_column,
               f"audio-s/s ({length:g} s clips, batch {big})",
               f"% of its precision's peak ({at})", "peak RSS (any cell)", "top-1 agreement",
               "max abs Δlogit", "gate"]
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for e in _ok(report):
        cells = {(c["length_s"], c["batch"]): c for c in e["cells"] if "median_s" in c}
        one = cells.get((length, small), {})
        long_ = cells.get((longest, small), {})
        many = cells.get((length, big), {})
        rss = max((c["peak_rss_mb"] for c in cells.values()), default=None)
        rows.append(" | ".join([
            f"| {e['backend']}", e["precision"], _fmt(_scaled(one.get("median_s")), ".1f", " ms"),
            _fmt(one.get("latency_vs_eager"), ".2f"),
            *([_fmt(_scaled(long_.get("median_s")), ".0f", " ms")] if long_column else []),
            _fmt(many.get("audio_s_per_s"), ".1f", " audio-s/s"),
            _fmt(one.get("pct_of_peak"), ".0f", " %"), _fmt(rss, ".0f", " MB"),
            f"{e['parity']['top1_agreement']:.1%}",
            f"{e['parity']['max_abs_logit_diff']:.1e}",
            ("passed" if e["gate"]["passed"] else
             f"FAILED (needs {e['gate']['min_agreement']:.0%})") + " |"]))
    return "\n".join(rows)


def parity_table(report: dict[str, Any]) -> str:
    rows = ["| backend | precision | clips | WA | UA | top-1 agreement with eager | "
            "max abs Δlogit | setup s |", "|---|---|---|---|---|---|---|---|"]
    for e in report["entries"]:
        if e["status"] != "ok":
            continue
        p = e["parity"]
        rows.append(f"| {e['backend']} | {e['precision']} | {p['clips']} | {p['wa']:.3f} | "
                    f"{p['ua']:.3f} | {p['top1_agreement']:.1%} | {p['max_abs_logit_diff']:.2e}"
                    f"{'' if p['finite'] else ' (NaN/Inf!)'} | {e['setup_s']:.1f} |")
    return "\n".join(rows)


def ragged_table(report: dict[str, Any]) -> str | None:
    """The ragged cell: clips of different lengths as the runtime batches them (padded
    batches of similar lengths through a graph that takes lengths, one call per length
    otherwise)."""
    rows = ["| backend | precision | graph | clips | audio | model calls | median ms | "
            "audio-s per s | vs eager |", "|---|---|---|---|---|---|---|---|---|"]
    for e in report["entries"]:
        c = e.get("ragged_cell")
        if e["status"] != "ok" or not c:
            continue
        if "median_s" not in c:
            rows.append(f"| {e['backend']} | {e['precision']} | failed: {c['error']} |||||||")
            continue
        rows.append(f"| {e['backend']} | {e['precision']} | {c['graph']} | {c['clips']} | "
                    f"{c['audio_s']:.1f} s | {c['model_calls']} | {c['median_s'] * 1e3:.1f} | "
                    f"{c['audio_s_per_s']:.1f} | {_fmt(c.get('latency_vs_eager'), '.2f', 'x')} |")
    return "\n".join(rows) if len(rows) > 2 else None


def skipped_lines(report: dict[str, Any]) -> list[str]:
    return [f"- {e['backend']} {e['precision']}: {e['status']}: {e['reason']}"
            for e in report["entries"] if e["status"] != "ok"]


def to_markdown(report: dict[str, Any]) -> str:
    untrained = report["model"]["untrained_extractor"]
    lines = [*(f"{line}  " for line in header(report)), ""]
    if untrained:
        lines += ["The extractor is UNTRAINED (random init): speed and memory are the "
                  "architecture's; accuracy figures are not meaningful.", ""]
    lines += ["Verdict (" + report["verdict"]["rule"] + "):", "", *verdict_lines(report), "",
              "Summary:", "", summary_table(report), "",
              "Latency and throughput (" + report["timing"] + "):", "", latency_table(report),
              "", "Accuracy parity on the eval set:", "", parity_table(report), ""]
    ragged = ragged_table(report)
    if ragged:
        lines += ["Clips of different lengths in one call (Recognizer.logits_of_clips):", "",
                  ragged, ""]
    skipped = skipped_lines(report)
    if skipped:
        lines += ["Not measured:", "", *skipped, ""]
    return "\n".join(lines)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for e in report["entries"]:
        base = {"backend": e["backend"], "precision": e["precision"], "status": e["status"],
                "reason": e.get("reason") or ""}
        if e["status"] != "ok":
            writer.writerow(base)
            continue
        p = e["parity"]
        base.update(eval_clips=p["clips"], wa=p["wa"], ua=p["ua"],
                    top1_agreement=p["top1_agreement"],
                    max_abs_logit_diff=p["max_abs_logit_diff"])
        for cell in e["cells"]:
            writer.writerow({**base, **cell})
    return out.getvalue()


def plot_latency(report: dict[str, Any], path: Path) -> Path:
    """Median latency against audio length at batch 1 (the smallest batch), log scales."""
    batch = min(report["config"]["batch_sizes"])
    return _plot(report, path, lambda c: c["batch"] == batch, "length_s",
                 lambda c: c["median_s"] * 1e3, dict(
                     yscale="log", xlabel="audio length (s)", ylabel="median latency (ms)",
                     title=f"latency, batch {batch}, {report['device']}"))


def plot_throughput(report: dict[str, Any], path: Path) -> Path:
    """Throughput against batch size, at the length closest to 3 s."""
    length = min(report["config"]["lengths_s"], key=lambda s: abs(s - 3.0))
    return _plot(report, path, lambda c: c["length_s"] == length, "batch",
                 lambda c: c["audio_s_per_s"], dict(
                     xlabel="batch size", ylabel="throughput (audio-s per s)",
                     title=f"throughput, {length:g} s clips, {report['device']}"))


def _plot(report: dict[str, Any], path: Path, keep: Callable[[dict[str, Any]], bool], x: str,
          y: Callable[[dict[str, Any]], float], axes: dict[str, str]) -> Path:
    """One line per measured backend: cells that `keep` selects, `x` against `y`."""
    from emo_toolkit.runtime.plots import plt  # pyplot on the Agg backend: no display needed

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for e in _ok(report):
        cells = sorted((c for c in e["cells"] if keep(c) and "median_s" in c), key=lambda c: c[x])
        ax.plot([c[x] for c in cells], [y(c) for c in cells], marker="o",
                label=f"{e['backend']} {e['precision']}")
    ax.set(xscale="log", **axes)
    ticks = report["config"]["lengths_s" if x == "length_s" else "batch_sizes"]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    return _finish(fig, ax, path, report)


def _ok(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in report["entries"] if e["status"] == "ok"]


def _finish(fig: Any, ax: Any, path: Path, report: dict[str, Any]) -> Path:
    from emo_toolkit.runtime.plots import save_figure

    m = report["machine"]
    note = m["gpu"] or f"{m['cpu']}, {m['cores']} cores"
    if report["model"]["untrained_extractor"]:
        note += "; UNTRAINED extractor"
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, note, fontsize=7, alpha=0.7)
    fig.tight_layout()
    return save_figure(fig, path)  # closes the figure


REPORT_FILES = {"json": "report.json", "csv": "report.csv", "markdown": "report.md",
                "latency_plot": "latency.png", "throughput_plot": "throughput.png",
                "choice": CHOICE_FILE}
"""What emo-bench writes into its output folder (the files --force may replace)."""


def write_reports(report: dict[str, Any], out_dir: Path, choice: Choice | None = None
                  ) -> dict[str, Path]:
    """Every report file; choice.json only when a configuration passed (an older one from
    this folder is removed otherwise: it would name a choice this run did not make)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = {kind: out_dir / name for kind, name in REPORT_FILES.items()}
    if choice is None:
        path["choice"].unlink(missing_ok=True)
    else:
        atomic_write_json(path["choice"], choice.to_json())
    return {
        "json": atomic_write_json(path["json"], report),
        "csv": atomic_write_text(path["csv"], to_csv(report)),
        "markdown": atomic_write_text(path["markdown"], to_markdown(report)),
        "latency_plot": plot_latency(report, path["latency_plot"]),
        "throughput_plot": plot_throughput(report, path["throughput_plot"]),
    }
