"""emo-bench's harness: the same inputs through every backend, compared with eager PyTorch.

Steps: describe the machine and measure its matmul peak; load the run and its
eval set; decide which (backend, precision) pairs can run here and say why the
others cannot; find or export the artifacts they need; run each pair in a
worker process (bench/worker.py) over the eval set and the length x batch
grid; then compute parity, throughput, real-time factor and % of peak, and
write the reports (bench/report.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.bench import backends as bk
from emo_toolkit.bench.config import BenchConfig
from emo_toolkit.bench.flops import pipeline_flops
from emo_toolkit.bench.machine import machine_info, matmul_peak_gflops
from emo_toolkit.bench.verdict import choice_for, command, verdict
from emo_toolkit.runtime import cpu
from emo_toolkit.runtime.choice import CHOICE_FILE
from emo_toolkit.runtime.errors import EmoToolkitError
from emo_toolkit.runtime.io import read_json_file

RAGGED_SECONDS = (1.0, 10.0)  # the ragged cell's clips run evenly from 1 to 10 s
WORK_MARKER = ".emo-bench-work"  # in OUT/work: proves emo-bench made it, and may replace it
ARTIFACTS_MARKER = ".emo-bench-artifacts"  # in OUT/artifacts: what emo-bench exported
OUT_MARKER = ".emo-bench-out"  # in OUT: proves emo-bench wrote the reports there (--force)


class BenchError(EmoToolkitError):
    """A benchmark that cannot start."""


@dataclass(frozen=True)
class EvalClip:
    path: Path
    label: int


Echo = Callable[[str], None]


def _check_reports_replaceable(out_dir: Path, force: bool) -> None:
    """Report files already in `out_dir` are replaced only with --force, and only when
    OUT_MARKER proves that emo-bench wrote them; otherwise nothing is changed."""
    from emo_toolkit.bench.report import REPORT_FILES

    existing = [out_dir / n for n in REPORT_FILES.values()
                if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    if not existing:
        return
    if not force:
        raise BenchError(f"{existing[0]} exists; pass --force to replace it")
    marker = out_dir / OUT_MARKER
    if marker.is_symlink() or not marker.is_file():
        raise BenchError(f"{existing[0]} exists and was not written by emo-bench (no "
                         f"{OUT_MARKER} in {out_dir}); nothing was changed: choose another "
                         "--out")


def run_bench(config: BenchConfig, echo: Echo = lambda s: None) -> dict[str, Any]:
    """Run the benchmark, write the reports into config.out_dir, return the report."""
    from emo_toolkit.bench.report import write_reports
    from emo_toolkit.features.extractor import require_device

    require_device(config.device)
    _check_reports_replaceable(config.out_dir, config.force)
    work = config.out_dir / "work"
    if work.is_symlink() or (work.exists() and not (work / WORK_MARKER).is_file()):
        raise BenchError(f"{work} exists and was not made by emo-bench (no {WORK_MARKER}); "
                         "nothing was changed: choose another --out")
    exported = bench_artifacts(config)
    if exported.is_symlink() or (exported.exists() and
                                 not (exported / ARTIFACTS_MARKER).is_file()):
        raise BenchError(f"{exported} exists and was not made by emo-bench (no "
                         f"{ARTIFACTS_MARKER}); nothing was changed: choose another --out")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / WORK_MARKER).touch()
    exported.mkdir(exist_ok=True)
    (exported / ARTIFACTS_MARKER).touch()
    (config.out_dir / OUT_MARKER).touch()

    from emo_toolkit.export.graph import ExportGraph
    from emo_toolkit.train.inference import load_run

    loaded = load_run(config.run_dir, config.split, "cpu")
    graph = ExportGraph(loaded.recognizer, layout="padded" if config.ragged else "clips")
    labels = graph.labels
    machine = machine_info(config.device)
    echo(f"machine: {machine['cpu']}, {machine['cores']} cores, GPU {machine['gpu'] or 'none'}")

    entries = plan(config, machine["onnxruntime_providers"])
    runnable = [e for e in entries if e["status"] == "planned"]
    peaks = {p: matmul_peak_gflops(config.device, p) for p in
             sorted({"fp32"} | {peak_precision(e["precision"]) for e in runnable})}
    echo("matmul peak: " + ", ".join(f"{p} {v:.0f} {'GOP/s' if p == 'int8' else 'GFLOP/s'}"
                                     for p, v in peaks.items()))

    clips, skipped_files = eval_set(config, loaded, labels)
    clips, unreadable = write_eval_audio(clips, graph.min_samples, work / "eval-audio.npz")
    skipped_files += unreadable
    echo(f"eval set: {len(clips)} clips" + (f", {len(skipped_files)} skipped"
                                              if skipped_files else ""))
    write_grid_inputs(config, graph.input_rate, work / "grid-inputs.npz")
    find_or_export_artifacts(config, graph, loaded, runnable, [c.path for c in clips], echo)

    for entry in entries:
        if entry["status"] == "planned":
            echo(f"running {entry['backend']} {entry['precision']} ...")
            entry.update(run_entry(config, entry, loaded.split, len(labels), work))
            if entry["status"] != "ok":
                echo(f"  {entry['status']}: {entry['reason']}")
    reference = next(e for e in entries if (e["backend"], e["precision"]) == bk.REFERENCE)
    if reference["status"] != "ok":
        raise BenchError(f"eager fp32, the reference, did not run: {reference.get('reason')}")

    truth = np.array([c.label for c in clips])
    eager_logits = np.load(reference["logits"])
    for entry in entries:
        if entry["status"] == "ok":
            entry["parity"] = parity(np.load(entry["logits"]), eager_logits, truth, labels)
            derive_cells(entry, reference, graph, peaks)

    report: dict[str, Any] = {
        "tool": "emo-bench", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine, "device": config.device, "matmul_peak_gflops": peaks,
        "model": {**model_description(loaded, graph), "run_dir": str(config.run_dir)},
        "flops_per_audio_second": sum(pipeline_flops(graph.recognizer,
                                                     graph.model_rate).values()),
        "config": {**{k: (str(v) if isinstance(v, Path) else v)
                      for k, v in asdict(config).items() if k != "artifacts"},
                   "artifacts": [str(p) for p in config.artifacts]},
        "eval_set": {"source": str(config.eval_folder) if config.eval_folder else
                     f"test split of {loaded.split}", "clips": len(clips),
                     "files": [str(c.path) for c in clips],
                     "skipped_files": skipped_files},
        "timing": "host NumPy in, host NumPy out, device synchronised around each call",
        "entries": entries,
    }
    report["verdict"] = verdict(report)
    choice = choice_for(report, config.out_dir)
    if choice is not None:
        choice_file = config.out_dir / CHOICE_FILE
        report["verdict"].update(command=command(choice, choice_file),
                                 choice_file=str(choice_file))
    write_reports(report, config.out_dir, choice)
    for inputs in ("eval-audio.npz", "grid-inputs.npz"):  # large, and made again each run
        (work / inputs).unlink(missing_ok=True)
    return report


def plan(config: BenchConfig, ort_providers: list[str]) -> list[dict[str, Any]]:
    """Every requested (backend, precision) pair, eager fp32 first, each planned or skipped."""
    precisions = config.precisions or bk.PRECISIONS
    names = list(dict.fromkeys((bk.REFERENCE[0], *config.backends)))
    entries = []
    for name in names:
        b = bk.backend(name)
        wrong_device = bk.device_mismatch(b, config.device)
        if wrong_device:  # one line, not one per precision
            entries.append({"backend": name, "precision": "any", "description": b.description,
                            "status": "skipped", "reason": wrong_device})
            continue
        wanted = precisions if name in config.backends else ()
        if name == bk.REFERENCE[0]:  # the reference always runs, and first
            wanted = (bk.REFERENCE[1], *(p for p in wanted if p != bk.REFERENCE[1]))
        for precision in wanted:
            reason = bk.skip_reason(b, precision, config.device,
                                    explicit_precision=config.precisions is not None,
                                    ort_providers=ort_providers, native=cpu.native_precision)
            entries.append({"backend": name, "precision": precision,
                            "description": b.description,
                            "status": "skipped" if reason else "planned", "reason": reason})
    return entries


def eval_set(config: BenchConfig, loaded: Any, labels: list[str]
             ) -> tuple[list[EvalClip], list[dict[str, str]]]:
    """The run's test split (labels from its test predictions), or a labelled folder."""
    from emo_toolkit.train.rundir import RunDir

    index = {label: i for i, label in enumerate(labels)}
    skipped: list[dict[str, str]] = []
    if config.eval_folder is not None:
        from emo_toolkit.data.datasets import load_dataset

        dataset = load_dataset(config.eval_folder)
        pairs = [(c.path, c.label) for c in dataset.clips]
        skipped += [{"file": str(s.path), "reason": s.reason, "message": s.message}
                    for s in dataset.skipped]
    else:
        pairs = RunDir(config.run_dir).test_clips(loaded.split, loaded.config, config.corpus)
    clips = []
    for path, label in pairs:
        if label not in index:
            skipped.append({"file": str(path), "reason": "unknown-label",
                            "message": f"label {label!r} is not one of the run's labels"})
        else:
            clips.append(EvalClip(Path(path), index[label]))
    if config.eval_limit is not None:
        clips = clips[:config.eval_limit]
    if not clips:
        raise BenchError("the eval set is empty: no test clips with the run's labels")
    return clips, skipped


def write_eval_audio(clips: list[EvalClip], min_samples: int, path: Path
                     ) -> tuple[list[EvalClip], list[dict[str, str]]]:
    """All readable eval clips at the model rate, concatenated, with offsets; a bad file is
    listed as skipped and does not stop the benchmark."""
    from emo_toolkit.runtime.audio import load_audio
    from emo_toolkit.runtime.errors import AudioError

    arrays, kept, skipped = [], [], []
    for clip in clips:
        try:
            arrays.append(load_audio(clip.path, min_samples=min_samples).samples)
            kept.append(clip)
        except AudioError as e:
            skipped.append({"file": str(clip.path), "reason": e.reason, "message": e.problem})
    if not kept:
        raise BenchError("no eval clip could be read: " + "; ".join(
            f"{s['file']}: {s['message']}" for s in skipped[:3]))
    offsets = np.cumsum([0] + [len(a) for a in arrays])
    np.savez(path, audio=np.concatenate(arrays).astype(np.float32), offsets=offsets)
    return kept, skipped


def write_grid_inputs(config: BenchConfig, rate: int, path: Path) -> None:
    """Speech-like clips for each length, as many rows as the largest batch: the same
    numbers for every backend."""
    from emo_toolkit.data.demo_corpus import speech_like

    rows = range(max(config.batch_sizes))
    grid = {f"{length:g}s": np.stack([speech_like(length, i, rate, seed=7) for i in rows])
            for length in config.lengths_s}
    if config.ragged_clips:
        clips = [speech_like(float(s), i, rate, seed=8) for i, s in
                 enumerate(np.linspace(RAGGED_SECONDS[0], RAGGED_SECONDS[1],
                                       config.ragged_clips))]
        grid["ragged"] = np.concatenate(clips)
        grid["ragged_offsets"] = np.cumsum([0] + [c.size for c in clips])
    np.savez(path, **grid)


def bench_artifacts(config: BenchConfig) -> Path:
    """Where the bench exports what it did not find: OUT/artifacts, never into the run (its
    reduced-precision artifacts skip the deployment gate), reused by the next benchmark
    into the same --out of the same weights."""
    return config.out_dir / "artifacts"


def peak_precision(precision: str) -> str:
    """The matmul peak a precision's work is measured against (int8-dynamic: int8's)."""
    return "int8" if precision.startswith("int8") else precision


def _matching(path: Path, weights: str, device: str, ragged: bool) -> bool:
    """An existing artifact serves only if this toolkit version exported it from these
    weights (the run's weights digest, wherever the run now is), for this device, with
    (or without) a lengths input as asked."""
    import emo_toolkit
    from emo_toolkit.runtime.formats.base import sidecar_path
    from emo_toolkit.runtime.io import InputFileError, read_json_file

    try:
        meta = read_json_file(sidecar_path(path))
    except InputFileError:  # missing or damaged: the artifact cannot be vouched for
        return False
    return isinstance(meta, dict) and (meta.get("toolkit_version") == emo_toolkit.__version__
            and meta.get("weights_sha256") == weights
            and meta.get("sample_rate") == meta.get("model_sample_rate")
            and (meta.get("input_layout", "clips") == "padded") == ragged
            and bk.device_kind(meta.get("device", "cpu")) == bk.device_kind(device))


def find_or_export_artifacts(config: BenchConfig, graph: Any, loaded: Any,
                             entries: list[dict[str, Any]], eval_files: list[Path],
                             echo: Echo) -> None:
    """Reuse matching artifacts from --artifacts folders, RUN/export and earlier benchmarks;
    export the rest. A failed export skips its backends with the error as reason."""
    from emo_toolkit.export.exporter import artifact_name
    from emo_toolkit.export.formats import Exports
    from emo_toolkit.train.rundir import RunDir

    folders = [*config.artifacts, config.run_dir / "export", bench_artifacts(config)]
    made: dict[tuple[str, str], Path | str] = {}
    run = RunDir(config.run_dir)
    weights = run.weights_digest(loaded.split)
    exports = Exports(graph, config.device)  # one torch.export program for pt2 and aoti
    for entry in entries:
        b = bk.backend(entry["backend"])
        if b.artifact is None:
            continue
        fmt, precision = b.artifact, b.artifact_precision(entry["precision"])
        key = (fmt, precision)
        if key not in made:
            name = artifact_name(fmt, precision, graph.input_rate, graph.layout)
            found = next((f / name for f in folders if (f / name).is_file()
                          and _matching(f / name, weights, config.device, config.ragged)),
                         None)
            if found is None:
                echo(f"exporting {fmt} {precision} into {bench_artifacts(config)}")
                made[key] = _export(config, exports, loaded, fmt, precision, run, eval_files)
            else:
                made[key] = found
        if isinstance(made[key], str):
            entry.update(status="skipped", reason=made[key])
        else:
            entry["artifact"] = str(made[key])


def _export(config: BenchConfig, exports: Any, loaded: Any, fmt: str, precision: str,
            run: Any, eval_files: list[Path]) -> Path | str:
    """The artifact's path, or why it could not be exported. Reduced precisions are exported
    even below their deployment gate: the bench reports their agreement and its verdict
    passes them over. int8 calibrates on the run's training clips."""
    from emo_toolkit.export import exporter

    graph = exports.graph
    if exporter.formats.artifact_format(fmt).calibrates(precision) \
            and exports.calibration is None:
        try:
            exports.calibration = exporter.calibration_set(
                run, loaded, graph, config.corpus, exporter.CALIBRATION_CLIPS)
        except EmoToolkitError as e:
            return f"export failed: {e}"
    head = loaded.recognizer.head.config.to_json()
    metadata = exporter.base_metadata(graph, run, loaded.split, loaded.extractor_json, head)
    target = bench_artifacts(config) / exporter.artifact_name(fmt, precision, graph.input_rate,
                                                              graph.layout)
    try:
        exporter.export_graph(graph, fmt, precision, target, metadata, force=True,
                              device=config.device, eval_files=eval_files, min_agreement=0.0,
                              exports=exports)
    except EmoToolkitError as e:
        return f"export failed: {e}"
    return target


def run_entry(config: BenchConfig, entry: dict[str, Any], split: str, num_labels: int,
              work: Path) -> dict[str, Any]:
    stem = f"{entry['backend']}-{entry['precision']}"
    spec = {"backend": entry["backend"], "precision": entry["precision"],
            "device": config.device, "run_dir": str(config.run_dir), "split": split,
            "num_labels": num_labels,
            "artifact": entry.get("artifact"), "work_dir": str(work),
            "eval_audio": str(work / "eval-audio.npz"),
            "grid_inputs": str(work / "grid-inputs.npz"), "lengths_s": list(config.lengths_s),
            "batch_sizes": list(config.batch_sizes), "warmup": config.warmup,
            "cell_budget_s": config.cell_budget_s, "min_repeats": config.min_repeats,
            "max_repeats": config.max_repeats, "ragged": config.ragged,
            "max_padding": config.max_padding,
            "logits": str(work / f"{stem}.logits.npy"),
            "result": str(work / f"{stem}.result.json")}
    spec_path = work / f"{stem}.spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "emo_toolkit.bench.worker", str(spec_path)],
                          env=env, stdout=subprocess.DEVNULL, stderr=None)
    result_path = Path(spec["result"])
    if not result_path.is_file():
        return {"status": "failed", "reason": f"the worker process died (exit status "
                                              f"{proc.returncode}) before reporting"}
    result = read_json_file(result_path)
    if result["status"] == "ok":
        result["logits"] = spec["logits"]
    return result


def parity(logits: np.ndarray, eager: np.ndarray, truth: np.ndarray, labels: list[str]
           ) -> dict[str, Any]:
    from emo_toolkit.train.metrics import classification_metrics

    predicted = logits.argmax(axis=1)
    metrics = classification_metrics(truth.tolist(), predicted.tolist(), labels)
    finite = bool(np.isfinite(logits).all())
    return {"clips": len(truth), "wa": metrics["wa"], "ua": metrics["ua"],
            "macro_f1": metrics["macro_f1"],
            "top1_agreement": float((predicted == eager.argmax(axis=1)).mean()),
            "max_abs_logit_diff": float(np.abs(logits.astype(np.float64) - eager).max()),
            "finite": finite}


def derive_cells(entry: dict[str, Any], reference: dict[str, Any], graph: Any,
                 peaks: dict[str, float]) -> None:
    """Throughput, real-time factor, speed-up over eager and % of the matmul peak."""
    eager = {(c["length_s"], c["batch"]): c for c in reference["cells"] if "median_s" in c}
    peak = peaks.get(peak_precision(entry["precision"]), peaks["fp32"])
    for cell in entry["cells"]:
        if "median_s" not in cell:
            continue
        audio_s = cell["length_s"] * cell["batch"]
        flops = sum(pipeline_flops(graph.recognizer, cell["samples"], cell["batch"]).values())
        cell.update(audio_s_per_s=audio_s / cell["median_s"], rtf=cell["median_s"] / audio_s,
                    gflops=flops / 1e9, gflop_per_s=flops / cell["median_s"] / 1e9,
                    peak_gflop_per_s=peak, pct_of_peak=100 * flops / cell["median_s"] / 1e9
                    / peak)
        ref = eager.get((cell["length_s"], cell["batch"]))
        cell["latency_vs_eager"] = cell["median_s"] / ref["median_s"] if ref else None
    ragged, ragged_ref = entry.get("ragged_cell"), reference.get("ragged_cell")
    if ragged and "median_s" in ragged:
        audio_s = sum(ragged["samples"]) / graph.input_rate
        ragged.update(audio_s=audio_s, audio_s_per_s=audio_s / ragged["median_s"],
                      latency_vs_eager=ragged["median_s"] / ragged_ref["median_s"]
                      if ragged_ref and "median_s" in ragged_ref else None)


def model_description(loaded: Any, graph: Any) -> dict[str, Any]:
    x = loaded.extractor_json
    from emo_toolkit.features.ssl_models import ExtractorIdentity

    untrained = not ExtractorIdentity.from_json(x).trained
    return {"split": loaded.split, "extractor": x.get("name"),
            "extractor_weights": "UNTRAINED (random init)" if untrained else x.get("source"),
            "untrained_extractor": untrained, "labels": graph.labels,
            "sample_rate": graph.input_rate,
            "parameters": sum(p.numel() for p in graph.parameters())}
