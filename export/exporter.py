"""Export a trained run's recognizer as one self-describing artifact, checked for parity.

The artifact is written to a temporary file beside its target, loaded back
through its own runtime and compared with eager PyTorch; only an artifact that
passes is renamed into place, with its metadata embedded and in a JSON sidecar.
A failed check leaves nothing at the target path. An existing artifact is
replaced only with `force`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import emo_toolkit
from emo_toolkit.export import formats, triton
from emo_toolkit.export.artifact import CALIBRATION_CLIPS, Calibration, input_specs
from emo_toolkit.export.graph import KEPT_IN_FP32, REDUCED_DTYPES, ExportGraph
from emo_toolkit.export.parity import (
    Logits,
    ParityError,
    ParityReport,
    agreement_on_files,
    compare,
    golden_inputs,
)
from emo_toolkit.export.triton import TritonOptions
from emo_toolkit.features.extractor import require_device
from emo_toolkit.features.ssl_models import ExtractorIdentity
from emo_toolkit.runtime.audio import MAX_RATE, MIN_RATE, SAMPLE_RATE
from emo_toolkit.runtime.checks import check_float, check_int
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.runtime.formats.base import DIGEST_KEY, OUTPUT_NAMES, sidecar_path
from emo_toolkit.runtime.io import (
    atomic_write_json,
    read_json_file,
    remove_dead_temp_files,
    replace_file,
    sha256_file,
    writable_target,
)
from emo_toolkit.runtime.recognizer import ModelInfo, Recognizer
from emo_toolkit.runtime.windows import TRAINING_DURATIONS
from emo_toolkit.train.inference import load_run
from emo_toolkit.train.rundir import RunDir, RunLoadError, module_version

MIN_AGREEMENT = {"int8": 0.98, "int8-dynamic": 0.98, "fp16": 0.99, "bf16": 0.99}
"""Reduced precisions are gated on top-1 agreement with eager fp32 on the run's test split."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sidecar: Path
    report: ParityReport
    export_seconds: float
    size_bytes: int
    gate: dict[str, Any]


LAYOUT_TAGS = {"clips": "", "padded": ".ragged", "concatenated": ".concatenated"}


def artifact_name(fmt: str, precision: str, input_rate: int, layout: str = "clips") -> str:
    """model[.RATEhz][.ragged][.PRECISION]<suffix>; .ragged: the graph takes lengths."""
    rate = "" if input_rate == SAMPLE_RATE else f".{input_rate}hz"
    quant = "" if precision == "fp32" else f".{precision}"
    return f"model{rate}{LAYOUT_TAGS[layout]}{quant}{formats.artifact_format(fmt).suffix}"


def base_metadata(graph: ExportGraph, run: RunDir | None, split: str | None,
                  extractor: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    n = len(graph.labels)
    durations = run.training_durations(split) if run and split else None
    return {  # min_samples is the format's: export_graph adds it
        "labels": graph.labels, "sample_rate": graph.input_rate,
        "model_sample_rate": graph.model_rate,
        "input_layout": graph.layout, "inputs": input_specs(graph.layout),
        "outputs": [{"name": name, "dtype": "float32", "shape": ["batch", n]}
                    for name in OUTPUT_NAMES],
        "extractor": extractor,
        "untrained_extractor": not ExtractorIdentity.from_json(extractor).trained,
        "head": head, "source_run": str(run.root) if run else None, "split": split,
        # what emo-bench matches artifacts by, wherever the run was moved
        "weights_sha256": run.weights_digest(split) if run and split else None,
        # the default window of recordings and streams (emo_toolkit.runtime.windows)
        TRAINING_DURATIONS: durations.to_json() if durations else None,
        "toolkit_version": emo_toolkit.__version__, "torch_version": torch.__version__,
        "onnx_version": module_version("onnx"),
        "onnxruntime_version": module_version("onnxruntime"),
        "export_time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def export_graph(graph: ExportGraph, fmt: str, precision: str, target: Path,
                 metadata: dict[str, Any], *, corpus_clip: Path | None = None,
                 eval_files: list[Path] | None = None, force: bool = False,
                 device: str = "cpu", min_agreement: float | None = None,
                 exports: formats.Exports | None = None) -> ExportResult:
    """Write, load back, compare, then rename into place; raise ParityError on a failed gate.

    Exports of one graph to several formats share `exports` (one torch.export program)."""
    f = formats.artifact_format(fmt)
    if precision not in f.precisions:
        raise formats.ExportError(f"{precision} is not available for {fmt}; available: "
                                  f"{', '.join(f.precisions)}")
    if f.requires:
        require_extra(*f.requires, f"exporting {fmt}")
    sidecar = sidecar_path(target)
    if target.exists() and sidecar.exists() and not force:
        raise formats.ExportError(f"{target} exists; pass --force to replace it")
    # (an artifact without its sidecar is an export that was killed: it is replaced)
    writable_target(target)
    writable_target(sidecar)
    remove_dead_temp_files(target)
    # Temporary names keep the target's suffix: the AOTInductor packager insists on .pt2.
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp{target.suffix}"
    exports = exports or formats.Exports(graph, device)
    try:
        start = time.perf_counter()
        metadata = {**metadata, "min_samples": f.shortest_input(graph),
                    **(f.metadata(graph) if f.metadata else {})}
        if precision in REDUCED_DTYPES:
            metadata["kept_in_fp32"] = list(KEPT_IN_FP32)
        if precision in f.quantized:
            scheme, calibrated = f.quantized[precision]
            metadata["quantization"] = {"scheme": scheme}
            if calibrated:
                if exports.calibration is None:
                    raise formats.ExportError(f"{precision} {fmt} needs calibration clips")
                metadata["quantization"]["calibration"] = exports.calibration.to_json()
        f.write(exports, tmp, precision)
        # checked the way users run it: through the runtime's Recognizer, with the metadata
        # that is about to be embedded
        recognizer = Recognizer(f.load(tmp, device).runner,
                                ModelInfo.from_metadata(metadata, tmp, fmt))
        runner = recognizer.logits
        seconds = time.perf_counter() - start
        goldens = golden_inputs(graph.input_rate, corpus_clip, ragged=graph.takes_lengths,
                                min_samples=metadata["min_samples"])
        report = compare(graph, runner, goldens, fmt, precision)
        default = MIN_AGREEMENT.get(precision, 1.0)
        gate = _gate(graph, runner, report, precision, eval_files,
                     default if min_agreement is None else min_agreement)
        if precision != "fp32" and gate["min_agreement"] != default:
            gate["default_min_agreement"] = default  # the user accepted another figure
        full = {**metadata, "format": fmt, "precision": precision, "device": device,
                "export_seconds": seconds,
                "parity": {**report.to_json(), "gate": gate}}
        f.embed(exports, tmp, full)
        # The sidecar goes first and comes back last, so a kill between the two leaves an
        # artifact without a sidecar, which the same command replaces.
        sidecar.unlink(missing_ok=True)
        digest = sha256_file(tmp)
        replace_file(tmp, target)
        atomic_write_json(sidecar, {**full, DIGEST_KEY: digest})
        return ExportResult(target, sidecar, report, seconds, target.stat().st_size, gate)
    except OSError as e:  # a full disk, say, while a writer fills the temporary file
        raise formats.ExportError(f"{target}: cannot write ({e.strerror or e})") from e
    finally:
        tmp.unlink(missing_ok=True)


def _gate(graph: ExportGraph, runner: Logits, report: ParityReport, precision: str,
          eval_files: list[Path] | None, min_agreement: float) -> dict[str, Any]:
    if precision == "fp32":
        failures = report.failures()
        if failures:
            raise ParityError(f"{report.backend} fp32 export fails parity (max |Δlogit| ≤ "
                              f"{report.max_abs_limit:.0e}, no NaN/Inf): " + "; ".join(failures))
        return {"rule": f"max |Δlogit| <= {report.max_abs_limit:.0e} on every golden input",
                "passed": True}
    if any(not c.finite for c in report.cases):
        raise ParityError(f"{report.backend} {precision}: NaN or Inf in the outputs")
    if not eval_files:
        raise ParityError(f"{precision} needs the run's test split to gate top-1 agreement")
    agreement = agreement_on_files(graph, runner, eval_files)
    rule = f"top-1 agreement with eager >= {min_agreement:.0%} on the run's test split"
    gate = {"rule": rule, "min_agreement": min_agreement, **agreement.to_json(),
            "golden_max_prob_diff": report.max_prob_diff,
            "passed": agreement.top1_agreement >= min_agreement}
    if not gate["passed"]:
        names = ", ".join(Path(f).name for f in agreement.disagreeing[:5])
        if len(agreement.disagreeing) > 5:
            names += f" and {len(agreement.disagreeing) - 5} more"
        raise ParityError(
            f"{report.backend} {precision}: top-1 agreement {agreement.top1_agreement:.1%} on "
            f"{agreement.clips} test clips is below {min_agreement:.0%} (max |Δp| "
            f"{agreement.max_prob_diff:.3f}; disagreeing: {names}"
            f"); to accept it knowingly, pass --min-agreement "
            f"{math.floor(agreement.top1_agreement * 1000) / 1000:g}")
    return gate


def export_run(run_dir: Path, fmt: str, *, precision: str = "fp32", out_dir: Path | None = None,
               input_rate: int | None = None, split: str | None = None, force: bool = False,
               device: str = "cpu", target: Path | None = None,
               layout: str = "clips", corpus: Path | None = None,
               min_agreement: float | None = None,
               calibration_clips: int = CALIBRATION_CLIPS) -> ExportResult:
    """Export the head of `run_dir` (and its extractor) in `fmt`, to `target` or to
    <out_dir or RUN/export>/<artifact name>; `layout`: how the graph takes a batch;
    `corpus`: the run's corpus folder, when it is not where the run recorded it."""
    return export_formats(run_dir, [fmt], precision=precision, out_dir=out_dir,
                          input_rate=input_rate, split=split, force=force, device=device,
                          target=target, layout=layout, corpus=corpus,
                          min_agreement=min_agreement, calibration_clips=calibration_clips)[0]


def export_formats(run_dir: Path, fmts: list[str], *, precision: str = "fp32",
                   out_dir: Path | None = None, input_rate: int | None = None,
                   split: str | None = None, force: bool = False, device: str = "cpu",
                   target: Path | None = None, layout: str = "clips",
                   done: Callable[[ExportResult], None] | None = None,
                   corpus: Path | None = None, min_agreement: float | None = None,
                   calibration_clips: int = CALIBRATION_CLIPS) -> list[ExportResult]:
    """Export in each of `fmts`, loading the run and exporting the torch.export program once;
    `done` hears of each artifact as it is written. `layout` (INPUT_LAYOUTS): "padded" and
    "concatenated" graphs take lengths, so clips of different lengths share a batch.
    `min_agreement`: the reduced-precision gate, when not MIN_AGREEMENT's; an int8 format
    that calibrates takes its activation ranges from `calibration_clips` training clips."""
    require_device(device)
    if min_agreement is not None:
        check_float("min agreement", min_agreement, 0.0, 1.0)
    check_int("calibration clips", calibration_clips, 1, 10_000)
    if input_rate is not None and not MIN_RATE <= input_rate <= MAX_RATE:
        raise formats.ExportError(f"input sample rate {input_rate} Hz is outside the supported "
                                  f"{MIN_RATE}-{MAX_RATE} Hz")
    loaded = load_run(run_dir, split, "cpu")
    run = RunDir(run_dir)
    graph = ExportGraph(loaded.recognizer, input_rate, layout)
    try:
        test = [f for f, _ in run.test_clips(loaded.split, loaded.config, corpus) if f.is_file()]
    except RunLoadError as e:  # fp32 is gated on golden inputs alone; the others need it
        if precision != "fp32":
            raise ParityError(f"{precision} is gated on the run's test split: {e}") from e
        test = []
    head = loaded.recognizer.head.config.to_json()
    metadata = base_metadata(graph, run, loaded.split, loaded.extractor_json, head)
    exports = formats.Exports(graph, device, calibration_set(
        run, loaded, graph, corpus, calibration_clips) if any(
        formats.artifact_format(f).calibrates(precision) for f in fmts)
        else None)
    results = []
    for fmt in fmts:
        path = target or (out_dir or run.root / "export") / artifact_name(
            fmt, precision, graph.input_rate, layout)
        results.append(export_graph(graph, fmt, precision, path, metadata,
                                    corpus_clip=test[0] if test else None, eval_files=test,
                                    force=force, device=device, exports=exports,
                                    min_agreement=min_agreement))
        if done is not None:
            done(results[-1])
    return results


def calibration_set(run: RunDir, loaded: Any, graph: ExportGraph, corpus: Path | None,
                    count: int) -> Calibration:
    """`count` clips of the run's training split, at the graph's input rate."""
    try:
        files = run.train_files(loaded.split, loaded.config, corpus)
    except RunLoadError as e:
        raise ParityError(f"int8 is calibrated on the run's training clips: {e}") from e
    return Calibration.from_files(files, count, graph.input_rate, graph.min_samples)


def export_triton(run_dir: Path, options: TritonOptions, *, precision: str = "fp32",
                  out_dir: Path | None = None, input_rate: int | None = None,
                  split: str | None = None, force: bool = False,
                  corpus: Path | None = None, min_agreement: float | None = None,
                  calibration_clips: int = CALIBRATION_CLIPS) -> ExportResult:
    """A Triton model repository (export/triton.py) at <out_dir or RUN/export/triton>."""
    root = out_dir or Path(run_dir) / "export" / "triton"
    folder = triton.model_dir(root, options)
    result = export_run(run_dir, "onnx", precision=precision, input_rate=input_rate, split=split,
                        corpus=corpus, force=force, device=options.device,
                        target=folder / "1" / "model.onnx", layout=triton.LAYOUT,
                        min_agreement=min_agreement, calibration_clips=calibration_clips)
    # The sidecar holds the same metadata as the model: no need to load the whole ONNX again.
    labels = read_json_file(result.sidecar)["labels"]
    triton.write_repository_files(root, options, labels)
    return result
