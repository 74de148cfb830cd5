"""emo-bench's verdict: which measured configuration to deploy on this machine.

Each measured (backend, precision) is gated as the exporter gates artifacts: top-1
agreement with eager fp32 on the eval set of at least MIN_AGREEMENT for its precision
(100 % for fp32), with finite outputs. Among those that pass and that emo-predict can run,
the fastest at the latency cell (the clip length closest to 3 s, the smallest batch) is
the choice; the fastest at the throughput cell (same length, the largest batch) is named
too. Both come with their ratios to eager fp32 and to ONNX Runtime fp32, and the command
that runs the choice. The choice is also written as choice.json (toolkit/runtime/choice.py).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from emo_toolkit.bench import backends as bk
from emo_toolkit.export.exporter import MIN_AGREEMENT
from emo_toolkit.runtime.choice import CHOICE_FILE, Choice

ORT_FP32 = ("ort-cpu", "fp32")
DECISION_LENGTH_S = 3.0
NOT_DEPLOYABLE = {"compile": "torch.compile has no artifact emo-predict runs",
                  "compile-cudagraphs": "torch.compile has no artifact emo-predict runs",
                  "ort-tensorrt": "emo-predict does not choose ONNX Runtime's TensorRT provider"}


def gate(entry: dict[str, Any]) -> dict[str, Any]:
    """The agreement gate of one measured entry."""
    parity = entry["parity"]
    need = MIN_AGREEMENT.get(entry["precision"], 1.0)
    return {"min_agreement": need, "top1_agreement": parity["top1_agreement"],
            "passed": parity["finite"] and parity["top1_agreement"] >= need}


def decision_cells(config: dict[str, Any]) -> tuple[tuple[float, int], tuple[float, int]]:
    """(length, smallest batch) for latency and (length, largest batch) for throughput."""
    length = min(config["lengths_s"], key=lambda s: abs(s - DECISION_LENGTH_S))
    return (length, min(config["batch_sizes"])), (length, max(config["batch_sizes"]))


def _cell(entry: dict[str, Any], key: tuple[float, int]) -> dict[str, Any] | None:
    return next((c for c in entry["cells"] if (c["length_s"], c["batch"]) == key
                 and "median_s" in c), None)


def _winner(entries: list[dict[str, Any]], key: tuple[float, int]) -> dict[str, Any] | None:
    """The fastest entry at `key` that passes its gate and can be deployed, with ratios."""
    by_name = {(e["backend"], e["precision"]): e for e in entries}
    timed = [(c["median_s"], e, c) for e in entries if e["gate"]["passed"]
             and e["backend"] not in NOT_DEPLOYABLE and (c := _cell(e, key)) is not None]
    if not timed:
        return None
    seconds, entry, _ = min(timed, key=lambda t: t[0])
    ratios = {}
    for name, ref in (("vs_eager_fp32", bk.REFERENCE), ("vs_ort_fp32", ORT_FP32)):
        ref_cell = _cell(by_name[ref], key) if ref in by_name else None
        ratios[name] = ref_cell["median_s"] / seconds if ref_cell else None
    return {"backend": entry["backend"], "precision": entry["precision"],
            "length_s": key[0], "batch": key[1], "median_s": seconds,
            "speedup_vs_eager_fp32": ratios["vs_eager_fp32"],
            "speedup_vs_ort_fp32": ratios["vs_ort_fp32"],
            "top1_agreement": entry["gate"]["top1_agreement"]}


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Gate every measured entry (in place) and name the winners at the decision cells."""
    ok = [e for e in report["entries"] if e["status"] == "ok"]
    for entry in ok:
        entry["gate"] = gate(entry)
    latency, throughput = decision_cells(report["config"])
    return {"rule": "the fastest configuration whose top-1 agreement with eager fp32 on the "
                    "eval set passes its gate (fp32 100 %, " + ", ".join(
                        f"{p} {v:.0%}" for p, v in MIN_AGREEMENT.items()) + ") and that "
                    "emo-predict runs",
            "failed_gate": [f"{e['backend']} {e['precision']}" for e in ok
                            if not e["gate"]["passed"]],
            "latency": _winner(ok, latency), "throughput": _winner(ok, throughput)}


def choice_for(report: dict[str, Any], out_dir: Path) -> Choice | None:
    """The latency winner as a choice file's content (None when nothing passed)."""
    win = report["verdict"]["latency"]
    if win is None:
        return None
    entry = next(e for e in report["entries"]
                 if (e["backend"], e["precision"]) == (win["backend"], win["precision"]))
    b = bk.backend(entry["backend"])
    model = Path(entry["artifact"]) if b.artifact else Path(report["model"]["run_dir"])
    options = b.open_options(entry["precision"])
    machine = report["machine"]
    return Choice.for_model(
        model, out_dir / CHOICE_FILE, runtime=options.get("runtime"),
        precision=options.get("precision"), device=report["device"],
        measured={**win, "machine": {"cpu": machine["cpu"], "cpu_isa": machine["cpu_isa"],
                                     "cores": machine["cores"]}})


def command(choice: Choice, choice_file: Path) -> str:
    """The emo-predict line that runs the choice, options spelled out (`emo-predict
    CHOICE_FILE FILE...` does the same)."""
    args = ["emo-predict", str(choice.model_path(choice_file))]
    for option, value in (("--runtime", choice.runtime), ("--precision", choice.precision),
                          ("--device", None if choice.device == "cpu" else choice.device)):
        if value:
            args += [option, value]
    return shlex.join(args) + " FILE..."


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """The verdict in words, for the terminal and report.md."""
    v = report["verdict"]
    lines = []
    for kind, win in (("latency", v["latency"]), ("throughput", v["throughput"])):
        if win is None:
            lines.append(f"- {kind}: no measured configuration passed its gate")
            continue
        ratios = ", ".join(f"{r:.2f}x {name}" for r, name in (
            (win["speedup_vs_eager_fp32"], "eager fp32"),
            (win["speedup_vs_ort_fp32"], "ONNX Runtime fp32")) if r is not None)
        lines.append(f"- {kind} ({win['length_s']:g} s clips, batch {win['batch']}): "
                     f"{win['backend']} {win['precision']}, {win['median_s'] * 1e3:.1f} ms "
                     f"({ratios}; top-1 agreement {win['top1_agreement']:.1%})")
    if v["failed_gate"]:
        lines.append("- failed their agreement gate (not chosen): " + ", ".join(v["failed_gate"]))
    if v.get("command"):
        lines.append(f"- use it: `{v['command']}` (or `emo-predict {v['choice_file']} FILE...`)")
    return lines
