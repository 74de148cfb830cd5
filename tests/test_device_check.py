"""docs/figures/device_check.sh --dry-run: the GPU check's every step on the CPU with the tiny
model and a tiny grid, so the script a lent GPU runs cannot rot between loans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from docs.figures.device_check import GOALS, goal_rows

ROOT = Path(__file__).resolve().parent.parent


def test_dry_run_runs_every_step_and_writes_the_summary(tmp_path: Path):
    out = tmp_path / "check"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "BUDGET_S": "900"}
    proc = subprocess.run(["bash", str(ROOT / "docs" / "figures" / "device_check.sh"), "--dry-run"],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "device-check.json").read_text())
    steps = summary["steps"]
    assert list(steps) == ["install", "train", "extraction", "bench-eager", "bench-torchscript",
                           "tests", "bench-ragged"]
    assert all(s["status"] == "ok" for s in steps.values()), steps
    assert summary["training"]["returncode"] == 0
    assert {(r["batch"], r["precision"]) for r in summary["extraction"]} == {(1, "fp32"),
                                                                           (2, "fp32")}
    measured = {(c["backend"], c["batch"]) for c in summary["latency"]}
    assert measured == {(b, n) for b in ("eager", "torchscript") for n in (1, 2)}
    ragged = {r["backend"]: r for r in summary["ragged"]}
    assert ragged["torchscript"]["model_calls"] == 1 and ragged["torchscript"]["graph"] == "padded"
    assert [g["measured"] for g in summary["goals"]] == [False, False]  # 0.5 s cells only
    md = (out / "device-check.md").read_text()
    assert md.startswith("Device check") and "| 3 s clip, batch 1 | not measured |" in md


def test_goals_are_read_against_the_best_backend():
    cell = {"length_s": 3.0, "batch": 32, "median_s": 0.004, "audio_s_per_s": 24_000.0}
    entries = [{"backend": "eager", "precision": "fp32", "cells": [cell]},
               {"backend": "aoti", "precision": "bf16", "cells": [
                   {**cell, "median_s": 0.0045, "audio_s_per_s": 21_333.0},
                   {**cell, "batch": 1, "median_s": 0.001, "audio_s_per_s": 3_000.0}]}]
    one, many = goal_rows(entries)
    assert one["name"] == GOALS[0]["name"] and one["realtime"] == 3_000.0 and not one["met"]
    # batch 32 must be bf16: the faster fp32 cell does not count
    assert (many["backend"], many["precision"], many["met"]) == ("aoti", "bf16", True)
