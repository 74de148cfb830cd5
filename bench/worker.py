"""One backend at one precision, in a process of its own.

    python -m emo_toolkit.bench.worker SPEC.json

A fresh process per backend gives each its own peak memory, keeps one
runtime's thread pools and allocator caches from slowing the next, and turns a
backend that crashes into a reported failure instead of a lost benchmark. It
writes the eval-set logits to spec["logits"] and its measurements to
spec["result"] (JSON); the parent computes parity and the derived figures.
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.bench.backends import backend, device_kind, make_recognizer
from emo_toolkit.runtime.formats.base import ProviderMissing, Runner
from emo_toolkit.runtime.io import atomic_write_json
from emo_toolkit.runtime.recognizer import Recognizer, batch_plan

CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM) so the next reading covers one cell."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CudaMemory:
    """Peak device memory of one cell: PyTorch's allocator for torch backends; for ONNX
    Runtime (its own allocator) the growth of the device's used memory, which its arena
    keeps at its peak."""

    def __init__(self, device: str, torch_backend: bool):
        import torch

        self.torch, self.device, self.torch_backend = torch, device, torch_backend
        self.baseline = self._used()

    def _used(self) -> int:
        free, total = self.torch.cuda.mem_get_info(self.device)
        return total - free

    def reset(self) -> None:
        self.torch.cuda.reset_peak_memory_stats(self.device)

    def peak_mb(self) -> tuple[float, str]:
        if self.torch_backend:
            return self.torch.cuda.max_memory_allocated(self.device) / 2**20, \
                "torch.cuda.max_memory_allocated"
        return (self._used() - self.baseline) / 2**20, "device memory used, growth since load"


def _sync(device: str) -> None:
    if device_kind(device) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def time_cell(run: Runner, x: np.ndarray, device: str, warmup: int, budget_s: float,
              min_repeats: int, max_repeats: int) -> list[float]:
    """Warm-up calls, then timed calls until the budget is spent (at least min_repeats)."""
    for _ in range(warmup):
        run(x)
    times: list[float] = []
    spent = 0.0
    while len(times) < max_repeats and (len(times) < min_repeats or spent < budget_s):
        _sync(device)
        start = time.perf_counter()
        run(x)
        _sync(device)
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return times


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def summarise(times: list[float]) -> dict[str, Any]:
    return {"repeats": len(times), "median_s": statistics.median(times),
            "p90_s": percentile(times, 90), "p99_s": percentile(times, 99),
            "mean_s": statistics.fmean(times), "min_s": min(times)}


def ragged_cell(recognizer: Recognizer, clips: list[np.ndarray], device: str, warmup: int,
                budget_s: float, min_repeats: int, max_repeats: int) -> dict[str, Any]:
    """Clips of different lengths as the runtime runs them (runtime.recognizer.batch_plan):
    padded batches of similar lengths through a graph that takes lengths, one call per
    distinct length otherwise."""
    times = time_cell(lambda _: recognizer.logits_of_clips(clips, len(clips)), clips[0],
                      device, warmup, budget_s, min_repeats, max_repeats)
    padding = recognizer.max_padding if recognizer.info.takes_lengths else 0.0
    calls = len(batch_plan([c.size for c in clips], len(clips), padding))
    return {"clips": len(clips), "samples": [int(c.size) for c in clips],
            "model_calls": calls, "max_padding": padding, "graph": recognizer.info.layout,
            **summarise(times)}


def run_eval(run: Runner, audio: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Logits of every eval clip, one clip per call (clips differ in length)."""
    rows = [run(audio[offsets[i]:offsets[i + 1]][None])[0] for i in range(len(offsets) - 1)]
    return np.stack(rows).astype(np.float32)


def check_outputs(run: Runner, x: np.ndarray, num_labels: int) -> None:
    """Before anything is timed: the runner must give finite logits of the shape the
    artifact's metadata promises (a wrong graph would otherwise be timed happily)."""
    out = np.asarray(run(x))
    if out.shape != (x.shape[0], num_labels):
        raise ValueError(f"the backend returns outputs of shape {out.shape}; the run's metadata "
                         f"promises ({x.shape[0]}, {num_labels})")
    if not np.isfinite(out).all():
        raise ValueError("the backend returns NaN or infinite logits")


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    b = backend(spec["backend"])
    precision, device = spec["precision"], spec["device"]
    tag = f"[{b.name} {precision}]"
    start = time.perf_counter()
    try:
        recognizer = make_recognizer(
            b, precision, device, run_dir=Path(spec["run_dir"]), split=spec["split"],
            artifact=Path(spec["artifact"]) if spec["artifact"] else None,
            work_dir=Path(spec["work_dir"]), ragged=spec["ragged"])
        if spec["max_padding"] is not None:
            recognizer.max_padding = spec["max_padding"]
    except ProviderMissing as e:
        return {"status": "skipped", "reason": str(e)}
    run = recognizer.logits
    setup_s = time.perf_counter() - start
    cuda = None
    if device_kind(device) == "cuda":
        cuda = CudaMemory(device, b.artifact in (None, "torchscript", "aoti"))

    grid = np.load(spec["grid_inputs"])
    first = grid[f"{spec['lengths_s'][0]:g}s"]
    check_outputs(run, np.ascontiguousarray(first[:1]), spec["num_labels"])
    eval_data = np.load(spec["eval_audio"])
    start = time.perf_counter()
    logits = run_eval(run, eval_data["audio"], eval_data["offsets"])
    np.save(spec["logits"], logits)
    eval_s = time.perf_counter() - start
    print(f"{tag} eval set: {len(logits)} clips in {eval_s:.1f} s", file=sys.stderr, flush=True)

    rss_per_cell = reset_peak_rss()
    cells = []
    for length in spec["lengths_s"]:
        for batch in spec["batch_sizes"]:
            x = np.ascontiguousarray(grid[f"{length:g}s"][:batch])
            cell: dict[str, Any] = {"length_s": length, "batch": batch, "samples": x.shape[1]}
            if rss_per_cell:
                reset_peak_rss()
            if cuda:
                cuda.reset()
            try:
                times = time_cell(run, x, device, spec["warmup"], spec["cell_budget_s"],
                                  spec["min_repeats"], spec["max_repeats"])
            except Exception as e:  # an out-of-memory cell must not lose the others
                cell["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                print(f"{tag} {length:g} s x {batch}: {cell['error']}", file=sys.stderr)
                cells.append(cell)
                continue
            cell.update(summarise(times), peak_rss_mb=peak_rss_mb())
            if cuda:
                cell["peak_cuda_mb"], cell["cuda_memory_method"] = cuda.peak_mb()
            cells.append(cell)
            print(f"{tag} {length:g} s x {batch}: median {cell['median_s'] * 1e3:.1f} ms "
                  f"({cell['repeats']} runs)", file=sys.stderr, flush=True)
    result: dict[str, Any] = {}
    if "ragged" in grid:
        offsets = grid["ragged_offsets"]
        clips = [grid["ragged"][offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
        try:
            result["ragged_cell"] = ragged_cell(recognizer, clips, device, spec["warmup"],
                                                spec["cell_budget_s"], spec["min_repeats"],
                                                spec["max_repeats"])
            print(f"{tag} {len(clips)} clips of different lengths: median "
                  f"{result['ragged_cell']['median_s'] * 1e3:.1f} ms", file=sys.stderr,
                  flush=True)
        except Exception as e:  # as for a grid cell: reported, the rest kept
            result["ragged_cell"] = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
    return {**result, "status": "ok", "setup_s": setup_s, "eval_s": eval_s,
            "eval_clips": len(logits),
            "rss_method": "per cell (VmHWM reset)" if rss_per_cell else "process peak",
            "cells": cells}


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    try:
        result = run_worker(spec)
    except Exception as e:
        result = {"status": "failed", "reason": f"{type(e).__name__}: {e}".strip()[:2000],
                  "traceback": traceback.format_exc()[-4000:]}
    atomic_write_json(spec["result"], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
