"""emo-bench on CPU with a tiny trained run: every CPU backend, report fields, skip reasons,
parity numbers recomputed independently, the missing-CUDA error and a crashing backend."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

import emo_toolkit
from emo_toolkit.bench import backends as bk
from emo_toolkit.bench.config import BenchConfig
from emo_toolkit.bench.flops import pipeline_flops, total_flops
from emo_toolkit.bench.harness import BenchError, plan, run_bench
from emo_toolkit.cli.bench import main as bench_cli
from emo_toolkit.export.graph import ExportGraph, eager_outputs
from emo_toolkit.features.extractor import open_extractor
from emo_toolkit.runtime.audio import load_audio
from emo_toolkit.train.head import EmotionHead, HeadConfig
from emo_toolkit.train.inference import EmotionRecognizer, load_run
from tests.conftest import CPU_KINDS
from tests.faults import in_child

CPU_BACKENDS = {("eager", "fp32"), ("compile", "fp32"), ("torchscript", "fp32"),
                ("ort-cpu", "fp32"), ("ort-cpu", "int8"), ("ort-cpu", "int8-dynamic"),
                ("openvino", "fp32"), ("openvino", "int8"), ("aoti", "fp32"),
                ("executorch", "fp32"), ("executorch", "int8")}
# fp16 and bf16 are left out of the shared run: each adds an AOTInductor compile (about a
# minute) and a measured entry per backend. What the bench plans for them on each kind of
# CPU is test_cpu_features_decide_...; OpenVINO's bf16/fp16 run in tests/test_runtime.py.
PRECISIONS = ("fp32", "int8", "int8-dynamic")
GRID = {"lengths_s": (0.5, 1.0), "batch_sizes": (1, 2), "cell_budget_s": 0.05,
        "min_repeats": 3, "ragged_clips": 3}
EVAL_CLIPS = 6


def measured_here() -> set[tuple[str, str]]:
    """What the shared run measures on every x86-64 CPU (its precisions are named)."""
    return CPU_BACKENDS


@pytest.fixture(scope="module")
def bench_report(tiny_run: Path, pt2_exports: Path, edge_exports: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "report"
    config = BenchConfig(tiny_run, out, artifacts=(pt2_exports, edge_exports),
                         eval_limit=EVAL_CLIPS, precisions=PRECISIONS, **GRID)
    return run_bench(config), out


def test_every_cpu_backend_is_measured_or_skipped_with_a_reason(bench_report):
    report, _ = bench_report
    ok = {(e["backend"], e["precision"]) for e in report["entries"] if e["status"] == "ok"}
    assert ok == measured_here(), [e for e in report["entries"] if e["status"] != "ok"]
    reasons = {(e["backend"], e["precision"]): e["reason"] for e in report["entries"]
               if e["status"] == "skipped"}
    assert reasons[("ort-cuda", "any")] == "runs on cuda only; this run is --device cpu"
    assert reasons[("ort-tensorrt", "any")].startswith("runs on cuda only")
    assert "int8 is exported for executorch, openvino, ort-cpu only" in \
        reasons[("eager", "int8")]
    assert "int8-dynamic is exported for ort-cpu only" in reasons[("openvino", "int8-dynamic")]
    assert not any(precision in ("bf16", "fp16") for _, precision in reasons)  # not asked
    every = {(e["backend"], e["precision"]) for e in report["entries"]}
    for name in bk.BACKEND_NAMES:  # nothing silently dropped
        assert any(b == name for b, _ in every)


def test_report_fields_and_derived_figures(bench_report, tiny_run: Path):
    report, _ = bench_report
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and "gpu" in machine
    assert {"torch", "torchaudio", "onnxruntime", "onnx", "python"} <= set(machine["versions"])
    assert report["matmul_peak_gflops"]["fp32"] > 1
    assert {"fp32", "int8"} == set(report["matmul_peak_gflops"])  # int8: GOP/s
    assert report["model"]["untrained_extractor"] and "UNTRAINED" in \
        report["model"]["extractor_weights"]
    recognizer = load_run(tiny_run).recognizer
    assert report["flops_per_audio_second"] == total_flops(recognizer, 16_000)
    eager = next(e for e in report["entries"] if (e["backend"], e["precision"]) == bk.REFERENCE)
    for entry in (e for e in report["entries"] if e["status"] == "ok"):
        assert entry["setup_s"] > 0 and entry["eval_clips"] == EVAL_CLIPS
        cells = {(c["length_s"], c["batch"]): c for c in entry["cells"]}
        assert set(cells) == {(0.5, 1), (0.5, 2), (1.0, 1), (1.0, 2)}
        for (length, batch), c in cells.items():
            assert c["samples"] == round(length * 16_000) and c["repeats"] >= 3
            assert 0 < c["min_s"] <= c["median_s"] <= c["p90_s"] <= c["p99_s"]
            assert c["audio_s_per_s"] == pytest.approx(length * batch / c["median_s"])
            assert c["rtf"] == pytest.approx(1 / c["audio_s_per_s"])
            flops = total_flops(recognizer, c["samples"], batch)
            peaks = report["matmul_peak_gflops"]  # each precision against its own peak
            peak = peaks["int8" if entry["precision"].startswith("int8") else
                         entry["precision"]]
            assert c["pct_of_peak"] == pytest.approx(100 * flops / c["median_s"] / 1e9 / peak)
            ref = next(r for r in eager["cells"] if (r["length_s"], r["batch"]) == (length,
                                                                                   batch))
            assert c["latency_vs_eager"] == pytest.approx(c["median_s"] / ref["median_s"])
            assert c["peak_rss_mb"] > 10 and "peak_cuda_mb" not in c
        # whole-clip graphs run clips of 1, 5.5 and 10 s one call each
        ragged = entry["ragged_cell"]
        assert ragged["samples"] == [16_000, 88_000, 160_000] and ragged["model_calls"] == 3
        assert ragged["graph"] == "clips" and ragged["audio_s"] == pytest.approx(16.5)
        assert ragged["audio_s_per_s"] == pytest.approx(16.5 / ragged["median_s"])


def test_parity_matches_an_independent_computation(bench_report, tiny_run: Path):
    """Eager through the toolkit, ONNX Runtime called directly, metrics counted by hand."""
    import onnxruntime as ort

    report, _ = bench_report
    graph = ExportGraph(load_run(tiny_run).recognizer)
    labels = graph.labels
    files = [Path(f) for f in report["eval_set"]["files"]]
    run = json.loads(next(tiny_run.glob("splits/*/test_predictions.json")).read_text())
    truth_of = {Path(p["file"]).name: labels.index(p["true"]) for p in run}
    truth = np.array([truth_of[f.name] for f in files])
    waves = [torch.from_numpy(load_audio(f).samples)[None] for f in files]
    eager = np.concatenate([eager_outputs(graph, w)[0].numpy() for w in waves])
    for entry in (e for e in report["entries"] if e["backend"] == "ort-cpu" and
                  e["status"] == "ok"):
        session = ort.InferenceSession(entry["artifact"], providers=["CPUExecutionProvider"])
        got = np.concatenate([session.run(["logits"], {"waveform": w.numpy()})[0]
                              for w in waves])
        p = entry["parity"]
        assert p["clips"] == len(files) == EVAL_CLIPS
        assert p["top1_agreement"] == pytest.approx(float((got.argmax(1) ==
                                                           eager.argmax(1)).mean()))
        assert p["max_abs_logit_diff"] == pytest.approx(float(np.abs(got - eager).max()),
                                                        rel=1e-3, abs=1e-6)
        predicted = got.argmax(1)
        assert p["wa"] == pytest.approx(float((predicted == truth).mean()))
        recalls = [float((predicted[truth == k] == k).mean()) for k in np.unique(truth)]
        assert p["ua"] == pytest.approx(float(np.mean(recalls)))
    for entry in report["entries"]:
        if entry["status"] == "ok" and entry["precision"] == "fp32":
            assert entry["parity"]["max_abs_logit_diff"] < 1e-4
            assert entry["parity"]["top1_agreement"] == 1.0 and entry["parity"]["finite"]


def test_reports_written(bench_report):
    report, out = bench_report
    md = (out / "report.md").read_text()
    assert md.startswith("emo-bench") and "machine: " in md and "UNTRAINED" in md
    assert "| ort-cpu | int8 |" in md and "Not measured:" in md
    rows = list(csv.DictReader((out / "report.csv").open()))
    ok_rows = [r for r in rows if r["status"] == "ok"]
    assert len(ok_rows) == 4 * len(measured_here())
    assert len(rows) - len(ok_rows) == sum(e["status"] != "ok" for e in report["entries"])
    assert all(float(r["median_s"]) > 0 and r["top1_agreement"] for r in ok_rows)
    assert json.loads((out / "report.json").read_text())["entries"] == report["entries"]
    for png in ("latency.png", "throughput.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(BenchError, match="exists; pass --force"):
        run_bench(BenchConfig(Path(report["model"]["run_dir"]), out, backends=("eager",)))


def test_the_verdict_chooses_the_fastest_configuration_that_passes_its_gate(
        bench_report, tmp_path: Path):
    """Every measured entry is gated as emo-export gates artifacts; the choice is the fastest
    passing one emo-predict runs, at the decision cell, with its ratios; choice.json runs
    it through emo-predict and Recognizer.from_choice."""
    from emo_toolkit.bench.verdict import NOT_DEPLOYABLE
    from emo_toolkit.export.exporter import MIN_AGREEMENT
    from tests.conftest import write_wav

    report, out = bench_report
    ok = [e for e in report["entries"] if e["status"] == "ok"]
    for e in ok:
        need = MIN_AGREEMENT.get(e["precision"], 1.0)
        assert e["gate"] == {"min_agreement": need,
                             "top1_agreement": e["parity"]["top1_agreement"],
                             "passed": e["parity"]["top1_agreement"] >= need}
    verdict = report["verdict"]
    for kind, batch in (("latency", 1), ("throughput", 2)):
        timed = {(e["backend"], e["precision"]): c["median_s"] for e in ok for c in e["cells"]
                 if (c["length_s"], c["batch"]) == (1.0, batch) and e["gate"]["passed"]
                 and e["backend"] not in NOT_DEPLOYABLE}
        win = verdict[kind]
        assert (win["backend"], win["precision"]) == min(timed, key=timed.get)
        assert (win["length_s"], win["batch"]) == (1.0, batch)
        assert win["speedup_vs_ort_fp32"] == pytest.approx(timed[("ort-cpu", "fp32")]
                                                           / win["median_s"])
        assert win["speedup_vs_eager_fp32"] == pytest.approx(timed[("eager", "fp32")]
                                                             / win["median_s"])
    md = (out / "report.md").read_text()
    assert "Verdict (" in md and f"- use it: `{verdict['command']}`" in md
    assert "median ms (1 s clip, batch 1)" in md and "audio-s/s (1 s clips, batch 2)" in md
    choice = json.loads((out / "choice.json").read_text())
    assert choice["kind"] == "emo-bench choice" and choice["measured"]["backend"] == \
        verdict["latency"]["backend"]
    assert set(choice["measured"]["machine"]["cpu_isa"]) == set(report["machine"]["cpu_isa"])
    clip = write_wav(tmp_path / "clip.wav", np.sin(np.arange(24_000) / 7).astype(np.float32) / 3)
    artifact = next(e.get("artifact") or "" for e in ok if (e["backend"], e["precision"]) ==
                    (verdict["latency"]["backend"], verdict["latency"]["precision"]))
    in_child(_run_the_choice, out, verdict["command"], clip, artifact, choice["runtime"])


def _run_the_choice(out: Path, command: str, clip: Path, artifact: str, runtime: str | None
                    ) -> None:
    """emo-predict on choice.json prints what the verdict's command prints; from_choice
    opens the chosen artifact (in a child process: the choice may be OpenVINO's)."""
    from emo_toolkit.cli.predict import main as predict_cli
    from emo_toolkit.runtime.recognizer import Recognizer

    via_choice = CliRunner().invoke(predict_cli, ["-q", str(out / "choice.json"), str(clip)])
    explicit = CliRunner().invoke(predict_cli, ["-q", *command.split()[1:-1], str(clip)])
    assert via_choice.exit_code == explicit.exit_code == 0, via_choice.output
    assert via_choice.stdout == explicit.stdout
    if Path(artifact).is_file():
        opened = Recognizer.from_choice(out / "choice.json")
        assert opened.info.source == artifact
        assert opened.info.runtime == (runtime or opened.info.runtime)


def test_the_verdict_passes_over_failed_gates_and_what_emo_predict_cannot_run(tmp_path: Path,
                                                                             monkeypatch):
    """On a made-up report: the fastest entry fails its gate, the next is torch.compile; the
    choice is the third. With nothing passing, there is no choice and no choice.json."""
    from emo_toolkit.bench.report import write_reports
    from emo_toolkit.bench.verdict import choice_for, verdict

    def entry(backend: str, precision: str, ms: float, agreement: float) -> dict:
        cells = [{"length_s": 3.0, "batch": b, "median_s": ms / 1e3 * b} for b in (1, 8)]
        return {"backend": backend, "precision": precision, "status": "ok", "cells": cells,
                "artifact": str(tmp_path / f"{backend}-{precision}.onnx"),
                "parity": {"top1_agreement": agreement, "finite": True}}

    report = {"config": {"lengths_s": [1.0, 3.0, 10.0], "batch_sizes": [1, 8]},
              "device": "cpu", "model": {"run_dir": str(tmp_path / "run")},
              "machine": {"cpu": "x", "cpu_isa": ["avx2"], "cores": 2},
              "entries": [entry("eager", "fp32", 500, 1.0), entry("ort-cpu", "fp32", 280, 1.0),
                          entry("ort-cpu", "int8", 100, 0.97),     # below 98 %
                          entry("compile", "fp32", 150, 1.0),      # no emo-predict path
                          entry("openvino", "bf16", 160, 0.995)]}
    report["verdict"] = verdict(report)
    win = report["verdict"]["latency"]
    assert (win["backend"], win["precision"], win["length_s"]) == ("openvino", "bf16", 3.0)
    assert win["speedup_vs_ort_fp32"] == pytest.approx(280 / 160)
    assert win["speedup_vs_eager_fp32"] == pytest.approx(500 / 160)
    assert report["verdict"]["failed_gate"] == ["ort-cpu int8"]
    choice = choice_for(report, tmp_path)
    assert (choice.runtime, choice.precision, choice.model) == ("openvino", "bf16",
                                                                "openvino-bf16.onnx")
    for e in report["entries"]:
        e["parity"]["top1_agreement"] = 0.5
    report["verdict"] = verdict(report)
    assert report["verdict"]["latency"] is None and choice_for(report, tmp_path) is None
    (tmp_path / "choice.json").write_text("{}")  # an older run's choice is not left behind
    from emo_toolkit.bench import report as report_module

    for name in ("to_markdown", "to_csv"):  # only the choice file is under test here
        monkeypatch.setattr(report_module, name, lambda r: "")
    for name in ("plot_latency", "plot_throughput"):
        monkeypatch.setattr(report_module, name, lambda r, p: p)
    write_reports(report, tmp_path, None)
    assert not (tmp_path / "choice.json").exists()


def test_artifacts_go_under_out_and_are_reused_after_the_run_moves(tiny_run: Path,
                                                                  tmp_path: Path):
    """Nothing is written into the run; a second benchmark of the moved run into the same
    --out reuses the artifacts (matched by the weights digest); other weights re-export."""
    from tests.faults import copy_run

    run = copy_run(tiny_run, tmp_path / "run")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    args = ["--backends", "ort-cpu", "--precision", "fp32,int8", "--lengths", "0.5",
            "--batch-sizes", "1", "--cell-budget", "0.01", "--eval-limit", "2",
            "--ragged-clips", "0", "--out", str(tmp_path / "out")]
    first = CliRunner().invoke(bench_cli, [str(run), *args])
    assert first.exit_code == 0, first.output
    assert "exporting onnx fp32" in first.output and "exporting onnx int8" in first.output
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    def artifacts() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "artifacts").iterdir()
                if not p.name.startswith(".")}

    made = artifacts()
    assert {"model.onnx", "model.int8.onnx"} <= set(made)

    moved = tmp_path / "elsewhere" / "run"
    moved.parent.mkdir()
    run.rename(moved)
    again = CliRunner().invoke(bench_cli, [str(moved), *args, "--force"])
    assert again.exit_code == 0, again.output
    assert "exporting" not in again.output
    assert artifacts() == made

    head = next(moved.glob("splits/*/head.safetensors"))  # other weights: exported again
    from safetensors.torch import load_file, save_file

    state = load_file(str(head))
    save_file({k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()}, str(head))
    third = CliRunner().invoke(bench_cli, [str(moved), *args, "--force"])
    assert third.exit_code == 0, third.output
    assert "exporting onnx fp32" in third.output


def test_a_backend_that_crashes_is_reported_and_the_rest_still_run(tiny_run: Path,
                                                                   tmp_path: Path):
    """A corrupt ONNX file that claims to be this run's export: its worker fails, eager runs."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "model.onnx").write_bytes(b"not a protobuf")
    from emo_toolkit.train.rundir import RunDir

    sidecar = {"toolkit_version": emo_toolkit.__version__,
               "weights_sha256": RunDir(tiny_run).weights_digest(load_run(tiny_run).split),
               "sample_rate": 16_000, "model_sample_rate": 16_000}
    (artifacts / "model.onnx.json").write_text(json.dumps(sidecar))
    result = CliRunner().invoke(bench_cli, [
        str(tiny_run), "--backends", "eager,ort-cpu", "--precision", "fp32", "--lengths", "0.5",
        "--batch-sizes", "1", "--cell-budget", "0.01", "--eval-limit", "2", "--artifacts",
        str(artifacts), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    status = {(e["backend"], e["precision"]): e for e in report["entries"]}
    assert status[("eager", "fp32")]["status"] == "ok"
    assert status[("ort-cpu", "fp32")]["status"] == "failed"
    assert "InvalidProtobuf" in status[("ort-cpu", "fp32")]["reason"] or \
        "protobuf" in status[("ort-cpu", "fp32")]["reason"].lower()
    assert "ort-cpu fp32: failed:" in result.output


def test_ragged_graphs_run_the_ragged_cell_in_one_call(tiny_run: Path, tmp_path: Path):
    """--ragged: ONNX exported with a lengths input, eager on its padded path; the clips of
    different lengths are one model call, with the same parity as whole-clip graphs."""
    result = CliRunner().invoke(bench_cli, [
        str(tiny_run), "--ragged", "--backends", "eager,ort-cpu", "--precision", "fp32",
        "--lengths", "0.5", "--batch-sizes", "2", "--cell-budget", "0.01", "--eval-limit", "3",
        "--ragged-clips", "3", "--max-padding", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    entries = {e["backend"]: e for e in report["entries"] if e["status"] == "ok"}
    assert set(entries) == {"eager", "ort-cpu"}
    assert Path(entries["ort-cpu"]["artifact"]).name == "model.ragged.onnx"
    for entry in entries.values():
        assert entry["ragged_cell"]["model_calls"] == 1  # --max-padding 1: one call
        assert entry["ragged_cell"]["graph"] == "padded"
        assert entry["ragged_cell"]["max_padding"] == 1.0
        assert entry["parity"]["max_abs_logit_diff"] < 1e-4
    assert "clips of different lengths in one call" in result.output
    assert "| ort-cpu | fp32 | padded | 3 | 16.5 s | 1 |" in (tmp_path / "out" /
                                                            "report.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_missing_fails_at_once_with_status_2(tiny_run: Path, tmp_path: Path):
    result = CliRunner().invoke(bench_cli, [str(tiny_run), "--device", "cuda",
                                            "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "CUDA is not available" in result.output and "--device cpu" in result.output
    assert not (tmp_path / "out").exists()


def test_bad_options_are_usage_errors(tiny_run: Path):
    for args in (["--backends", "eager,tensorflow"], ["--lengths", "1,x"],
                 ["--precision", "fp8"], ["--lengths", "0"]):
        result = CliRunner().invoke(bench_cli, [str(tiny_run), *args])
        assert result.exit_code == 2, (args, result.output)


def test_skip_reasons():
    def native(precision: str) -> bool:
        return precision == "fp32"

    ort = bk.backend("ort-tensorrt")
    reason = bk.skip_reason(ort, "fp16", "cuda", explicit_precision=False,
                            ort_providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
                            native=native)
    assert "TensorrtExecutionProvider is not available" in reason
    eager = bk.backend("eager")
    assert "no native bf16" in bk.skip_reason(eager, "bf16", "cpu", explicit_precision=False,
                                              ort_providers=[], native=native)
    assert bk.skip_reason(eager, "bf16", "cpu", explicit_precision=True, ort_providers=[],
                          native=native) is None
    assert bk.skip_reason(eager, "fp16", "cuda:0", explicit_precision=False, ort_providers=[],
                          native=native) is None


@pytest.mark.parametrize(("kind", "planned"), [
    ("AVX2 only", set()),
    ("AVX-512 VNNI", set()),
    ("AVX512-BF16 without FP16 (AMD Zen 4)", {"bf16"}),
    ("AVX512-FP16 + AMX (Intel Sapphire Rapids)", {"bf16", "fp16"}),
])
def test_cpu_features_decide_which_reduced_precisions_run(tiny_run: Path, tmp_path: Path,
                                                          monkeypatch, kind, planned):
    """What the bench plans on each kind of x86-64 CPU, with the feature detection faked."""
    import emo_toolkit.runtime.cpu

    monkeypatch.setattr(emo_toolkit.runtime.cpu, "cpu_flags", lambda: CPU_KINDS[kind])
    entries = plan(BenchConfig(tiny_run, tmp_path), ["CPUExecutionProvider"])
    status = {(e["backend"], e["precision"]): e for e in entries}
    for precision in ("fp16", "bf16"):
        for name in ("eager", "torchscript", "aoti"):
            entry = status[(name, precision)]
            if precision in planned:
                assert entry["status"] == "planned", entry
            else:
                assert entry["status"] == "skipped", entry
                assert f"no native {precision}" in entry["reason"]
        # OpenVINO computes bf16/fp16 only with the units, even when named
        ov = status[("openvino", precision)]
        assert ov["status"] == ("planned" if precision in planned else "skipped"), ov
        if precision not in planned:
            assert f"this CPU has no {precision} units" in ov["reason"]
    for entry in (status[("ort-cpu", "int8")], status[("ort-cpu", "int8-dynamic")],
                  status[("openvino", "int8")], status[("openvino", "fp32")]):
        assert entry["status"] == "planned", entry  # int8 runs on every x86-64 CPU
    assert "no bf16" in status[("ort-cpu", "bf16")]["reason"]


@pytest.mark.parametrize("name", ["hubert_tiny", "hubert_base"])
def test_flops_match_torch_flop_counter(name: str):
    """Convolutions and linear layers agree exactly with torch's own counter (which does not
    count attention products or the LSTM: those are checked against their formulas)."""
    extractor = open_extractor(name, untrained=True)
    head = EmotionHead(HeadConfig(extractor.num_layers, extractor.dim, 5))
    recognizer = EmotionRecognizer(extractor, head, list("abcde")).eval()
    samples, batch = 12_345, 2
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        recognizer(torch.zeros(batch, samples))
    counted = counter.get_flop_counts()["Global"]
    ours = pipeline_flops(recognizer, samples, batch)
    matmul_conv = sum(v for k, v in ours.items() if k not in ("attention", "lstm",
                                                               "layer_weighting"))
    assert matmul_conv == sum(counted.values())
    frames = extractor.num_frames(samples)
    assert ours["attention"] == batch * extractor.num_layers * 4 * frames**2 * extractor.dim
    c = head.config
    width = c.conv_channels * len(c.kernel_sizes)
    assert ours["lstm"] == batch * 8 * frames * c.lstm_hidden * (
        (width + c.lstm_hidden) + 2 * c.lstm_hidden)
    if name == "hubert_base":  # about 13.8 GFLOP per second of audio
        per_second = total_flops(recognizer, 16_000) - pipeline_flops(recognizer, 16_000)["lstm"]
        assert per_second / 1e9 == pytest.approx(13.8, abs=0.2)


def test_cells_warm_up_then_repeat_until_the_budget():
    from emo_toolkit.bench.worker import summarise, time_cell

    calls = []

    def run(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return np.zeros((x.shape[0], 5), np.float32)

    x = np.zeros((2, 100), np.float32)
    times = time_cell(run, x, "cpu", warmup=3, budget_s=0.0, min_repeats=4, max_repeats=10)
    assert len(times) == 4 and len(calls) == 7
    calls.clear()
    times = time_cell(run, x, "cpu", warmup=0, budget_s=10.0, min_repeats=1, max_repeats=25)
    assert len(times) == len(calls) == 25  # the budget is not spent: max_repeats stops it
    stats = summarise([0.3, 0.1, 0.2, 0.4])
    assert stats["median_s"] == pytest.approx(0.25) and stats["min_s"] == 0.1
    assert stats["p90_s"] == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.4], 90))
