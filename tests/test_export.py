"""emo-export on a small trained run: round trips, metadata, baked rate, int8 gate, failures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.export import exporter, formats
from emo_toolkit.export.artifact import pt2_graph
from emo_toolkit.export.graph import ExportGraph, check_input, eager_outputs
from emo_toolkit.export.parity import ParityError
from emo_toolkit.runtime.audio import load_audio
from emo_toolkit.runtime.errors import ExportError
from emo_toolkit.runtime.formats.base import LoadedArtifact, sidecar_path
from emo_toolkit.runtime.formats.onnx import load_onnx, read_onnx_metadata
from emo_toolkit.runtime.formats.torch import (
    read_aoti_metadata,
    read_pt2_metadata,
    read_torchscript_metadata,
)
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.train.inference import load_run
from tests.conftest import write_wav
from tests.faults import sidecar_metadata


@pytest.fixture
def run_dir(tiny_run: Path) -> Path:
    return tiny_run


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(("fmt", "reader"), [
    ("onnx", read_onnx_metadata),
    ("torchscript", read_torchscript_metadata),
])
def test_round_trip_with_metadata(run_dir: Path, tmp_path: Path, fmt, reader):
    result = exporter.export_run(run_dir, fmt, out_dir=tmp_path)
    assert result.path.name == ("model.onnx" if fmt == "onnx" else "model.torchscript.pt")
    embedded = reader(result.path)
    assert embedded == sidecar_metadata(result.path)
    assert embedded["labels"] == ["angry", "disgust", "fear", "happy", "sad"]
    assert (embedded["sample_rate"], embedded["min_samples"]) == (16_000, 400)
    assert embedded["extractor"]["weights_sha256"] == "untrained"
    assert embedded["untrained_extractor"] is True
    assert embedded["head"]["lstm_hidden"] == 32 and embedded["precision"] == "fp32"
    assert embedded["inputs"][0]["name"] == "waveform"
    assert [o["shape"] for o in embedded["outputs"]] == [["batch", 5], ["batch", 5]]
    for key in ("toolkit_version", "torch_version", "onnx_version", "export_time"):
        assert embedded[key]
    parity = embedded["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and parity["top1_agreement"] == 1.0
    assert parity["backend"] == fmt and 0 <= parity["max_rel_diff"] < 1e-3
    assert {c["name"].split(" ")[0] for c in parity["cases"]} >= {"speech", "batch", "noise",
                                                                  "corpus"}
    assert [c["shape"][1] for c in parity["cases"][:4]] == [800, 16_000, 48_000, 160_000]
    # Loaded back by the user's runtime: the same logits as eager, any batch and length.
    graph = ExportGraph(load_run(run_dir).recognizer)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.3, 0.3, (3, 12_345)).astype(
        np.float32))
    expected = eager_outputs(graph, x)[0].numpy()
    opened = Recognizer.open(result.path)
    assert opened.info.labels == tuple(embedded["labels"]) and opened.info.kind == fmt
    assert np.abs(opened.logits(x.numpy()) - expected).max() < 1e-4
    assert leftovers(tmp_path) == []


def test_baked_48k_input_rate(run_dir: Path, tmp_path: Path):
    result = exporter.export_run(run_dir, "onnx", out_dir=tmp_path, input_rate=48_000)
    meta = read_onnx_metadata(result.path)
    assert result.path.name == "model.48000hz.onnx"
    assert (meta["sample_rate"], meta["model_sample_rate"], meta["min_samples"]) == (48_000,
                                                                                     16_000, 1200)
    assert any("48000 Hz" in c["name"] for c in meta["parity"]["cases"])
    # A 48 kHz file fed directly equals the toolkit's own resampling then the 16 kHz model.
    source = json.loads((run_dir / "config.json").read_text())["data"]["source"]
    clip = next(Path(source).rglob("*.wav"))
    at48 = load_audio(clip, 48_000).samples[None]
    at16 = torch.from_numpy(load_audio(clip, 16_000).samples)[None]
    recognizer = load_run(run_dir).recognizer
    with torch.inference_mode():
        expected = recognizer(at16)[0].numpy()
    got = Recognizer.open(result.path).logits(at48)
    assert got.argmax() == expected.argmax() and np.abs(got - expected).max() < 0.05


def _quantized_inputs(model, op_type: str) -> list[str]:
    """Which inputs of each `op_type` node come from a DequantizeLinear (QDQ's marking)."""
    made_by = {o: n.op_type for n in model.graph.node for o in n.output}
    return [made_by.get(i, "initializer") for n in model.graph.node if n.op_type == op_type
            for i in n.input[:2]]


def test_int8_is_static_qdq_calibrated_on_training_clips(run_dir: Path, tmp_path: Path):
    import onnx
    from onnx import numpy_helper

    result = exporter.export_run(run_dir, "onnx", precision="int8", out_dir=tmp_path,
                                 min_agreement=0.0, calibration_clips=12)
    assert result.path.name == "model.int8.onnx"
    model = onnx.load(str(result.path))
    # every convolution and matmul reads its input and weights through DequantizeLinear
    for op in ("Conv", "MatMul", "Gemm"):
        sources = _quantized_inputs(model, op)
        assert sources and set(sources) == {"DequantizeLinear"}, (op, sources)
    ops = {n.op_type for n in model.graph.node}
    assert "MatMulInteger" not in ops and "DynamicQuantizeLinear" not in ops
    # weights are int8 with one scale per output channel; activations uint8
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weights = [(inits[n.input[0]], inits[n.input[1]], {a.name: a.i for a in n.attribute})
               for n in model.graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] in inits and inits[n.input[0]].ndim > 1]
    assert weights and all(w.dtype == np.int8 for w, _, _ in weights)
    assert all(scale.size == w.shape[axes.get("axis", 1)] > 1 for w, scale, axes in weights)
    assert any(inits[n.input[2]].dtype == np.uint8 for n in model.graph.node
               if n.op_type == "QuantizeLinear")

    metadata = read_onnx_metadata(result.path)
    calibration = metadata["quantization"]["calibration"]
    split = json.loads((run_dir / "splits" / "speaker-holdout" / "split.json").read_text())
    assert calibration["clips"] == 12 == len(set(calibration["files"]))
    assert {Path(f).relative_to(Path(f).parents[2]).as_posix()
            for f in calibration["files"]} <= set(split["train"])
    assert "static QDQ" in metadata["quantization"]["scheme"]
    gate = metadata["parity"]["gate"]
    assert gate["min_agreement"] == 0.0 and gate["default_min_agreement"] == 0.98
    assert gate["passed"] and gate["test_split_clips"] == 20
    # the disagreeing clips are the test clips where its top-1 differs from eager's
    recognizer, graph = Recognizer.open(result.path), ExportGraph(load_run(run_dir).recognizer)
    expected = []
    for f, _ in exporter.RunDir(run_dir).test_clips("speaker-holdout", load_run(run_dir).config):
        x = load_audio(f, 16_000, graph.min_samples).samples[None]
        if eager_outputs(graph, torch.from_numpy(x))[0].argmax() != \
                recognizer.logits(x).argmax():
            expected.append(str(f))
    assert gate["disagreeing_clips"] == expected and gate["disagreeing_count"] == len(expected)
    assert gate["test_split_top1_agreement"] == 1 - len(expected) / 20
    assert 0 < gate["test_split_max_prob_diff"] <= 1


def test_a_failed_agreement_gate_names_the_clips_and_the_option(run_dir: Path, tmp_path: Path,
                                                               monkeypatch):
    """The dynamic int8 form (MatMul only), then a runtime that gets every label wrong: the
    error names the disagreeing clips, the figure and --min-agreement; nothing is left."""
    import onnx

    result = exporter.export_run(run_dir, "onnx", precision="int8-dynamic", out_dir=tmp_path,
                                 min_agreement=0.0)
    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert result.path.name == "model.int8-dynamic.onnx"
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops and "ConvInteger" not in ops
    assert "calibration" not in read_onnx_metadata(result.path)["quantization"]

    real = load_onnx

    def reversed_labels(path, device="cpu"):  # the least likely label comes out on top
        loaded = real(path, device)
        return LoadedArtifact(lambda *x: -loaded.runner(*x), loaded.metadata)

    monkeypatch.setitem(formats.FORMATS, "onnx",
                        replace(formats.FORMATS["onnx"], load=reversed_labels))
    with pytest.raises(ParityError) as e:
        exporter.export_run(run_dir, "onnx", precision="int8-dynamic",
                            out_dir=tmp_path / "fail")
    message = str(e.value)
    assert "below 98%" in message and "--min-agreement" in message
    assert "on 20 test clips" in message and "max |Δp|" in message
    assert message.count(".wav") == 5 and " more)" in message
    assert not (tmp_path / "fail" / "model.int8-dynamic.onnx").exists()
    assert leftovers(tmp_path / "fail") == []
    with pytest.raises(ExportError, match="int8 is not available for torchscript"):
        exporter.export_run(run_dir, "torchscript", precision="int8", out_dir=tmp_path)


def test_failed_parity_leaves_nothing_and_exits_nonzero(run_dir: Path, tmp_path: Path,
                                                        monkeypatch):
    real = load_onnx

    def off_by_a_little(path, device="cpu"):
        loaded = real(path, device)
        return LoadedArtifact(lambda *x: loaded.runner(*x) + 2e-4, loaded.metadata)

    monkeypatch.setitem(formats.FORMATS, "onnx",
                        replace(formats.FORMATS["onnx"], load=off_by_a_little))
    result = CliRunner().invoke(export_cli, [str(run_dir), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "fails parity" in result.output and "2.00e-04 > 1e-04" in result.output
    assert list(tmp_path.iterdir()) == []


def test_existing_artifact_needs_force(run_dir: Path, tmp_path: Path):
    first = exporter.export_run(run_dir, "torchscript", out_dir=tmp_path)
    stamp = first.path.stat().st_mtime_ns
    with pytest.raises(ExportError, match="exists; pass --force"):
        exporter.export_run(run_dir, "torchscript", out_dir=tmp_path)
    assert first.path.stat().st_mtime_ns == stamp
    again = exporter.export_run(run_dir, "torchscript", out_dir=tmp_path, force=True)
    assert again.path == first.path and leftovers(tmp_path) == []


def test_pt2_program_and_aoti_package(run_dir: Path, pt2_exports: Path):
    """torch.export keeps batch and length dynamic (the LSTM runs as a while_loop)."""
    tmp_path = pt2_exports
    graph = ExportGraph(load_run(run_dir).recognizer)
    rng = np.random.default_rng(1)
    for name, reader in (("model.pt2", read_pt2_metadata),
                         ("model.aoti.pt2", read_aoti_metadata)):
        path = tmp_path / name
        meta = reader(path)
        assert meta == sidecar_metadata(path)
        assert meta["format"] in ("pt2", "aoti") and meta["min_samples"] == 720
        assert meta["parity"]["max_abs_diff"] <= 1e-4 and meta["labels"][0] == "angry"
        recognizer = Recognizer.open(path)  # the runtime API, torch imported lazily
        assert recognizer.min_samples == 720 and recognizer.info.kind == meta["format"]
        run = recognizer.logits
        for shape in ((1, 720), (3, 23_456)):
            x = rng.uniform(-0.3, 0.3, shape).astype(np.float32)
            expected = eager_outputs(graph, torch.from_numpy(x))[0].numpy()
            assert np.abs(run(x) - expected).max() < 1e-4
    assert leftovers(tmp_path) == []


def test_pt2_refuses_a_bidirectional_head(run_dir: Path):
    recognizer = load_run(run_dir).recognizer
    graph = ExportGraph(recognizer)
    graph.recognizer.head.config = replace(graph.recognizer.head.config, bidirectional=True)
    with pytest.raises(ExportError, match="unidirectional"):
        pt2_graph(graph)


def padded(clips: list[np.ndarray], fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Clips of different lengths as one batch, padded with `fill` after each clip's end."""
    lengths = np.array([c.size for c in clips])
    batch = np.full((len(clips), lengths.max()), fill, np.float32)
    for row, clip in enumerate(clips):
        batch[row, :clip.size] = clip
    return batch, lengths


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_ragged_graph_rows_equal_clips_alone(run_dir: Path, tmp_path: Path, fmt: str):
    """--ragged: a lengths input; each row of a padded batch equals its clip alone, whatever
    the padding holds, and the runtime batches clips of different lengths through it."""
    if fmt == "onnx":
        result = CliRunner().invoke(export_cli, [str(run_dir), "--format", fmt, "--ragged",
                                                 "--out", str(tmp_path)])
        assert result.exit_code == 0, result.output
    else:  # (the CLI's pt2 also compiles an AOTInductor package: slow, and the same program)
        exporter.export_run(run_dir, fmt, layout="padded", out_dir=tmp_path)
    path = tmp_path / f"model.ragged{formats.FORMATS[fmt].suffix}"
    meta = json.loads(sidecar_path(path).read_text())
    assert meta["input_layout"] == "padded"
    assert [(i["name"], i["dtype"]) for i in meta["inputs"]] == [("waveform", "float32"),
                                                                  ("lengths", "int64")]
    ragged_cases = [c for c in meta["parity"]["cases"] if c["name"].startswith("ragged")]
    assert len(ragged_cases) == 2 and all(c["max_abs_diff"] <= 1e-4 for c in ragged_cases)

    recognizer = Recognizer.open(path)
    assert recognizer.info.takes_lengths
    graph = ExportGraph(load_run(run_dir).recognizer)
    rng = np.random.default_rng(7)
    clips = [rng.uniform(-0.3, 0.3, n).astype(np.float32)
             for n in (recognizer.min_samples, 5_000, 23_456, 16_000)]
    alone = np.concatenate([eager_outputs(graph, torch.from_numpy(c)[None])[0].numpy()
                            for c in clips])
    for fill in (0.0, 0.7):  # the graph zeroes the padding itself
        batch, lengths = padded(clips, fill)
        assert np.abs(recognizer.logits(batch, lengths) - alone).max() < 1e-4
    # the public API: different lengths in one call give each clip's own prediction
    assert recognizer.max_padding == 0.0  # the CPU default: padding costs what audio costs
    recognizer.max_padding = 1.0          # here every clip shares one padded batch
    calls = []
    runner = recognizer.runner
    recognizer.runner = lambda *x: calls.append(x[0].shape) or runner(*x)
    got = recognizer.predict_batch(clips, 16_000, batch_size=4)
    assert calls == [(4, 23_456)]
    assert [p.label for p in got] == [graph.labels[i] for i in alone.argmax(axis=1)]
    assert np.abs(np.array([p.logits for p in got]) - alone).max() < 1e-4
    if fmt == "onnx":  # files of different lengths share padded batches in predict_files
        files = [write_wav(tmp_path / f"c{i}.wav", c, subtype="FLOAT")
                 for i, c in enumerate(clips)]
        one = dict(recognizer.predict_files(files, batch_size=1))
        four = dict(recognizer.predict_files(files, batch_size=4))
        for f in files:
            assert np.allclose(list(one[f].probabilities.values()),
                               list(four[f].probabilities.values()), atol=1e-5)


def test_whole_clip_graphs_refuse_rows_of_different_lengths(tiny_onnx: Path):
    recognizer = Recognizer.open(tiny_onnx)
    assert not recognizer.info.takes_lengths
    with pytest.raises(ValueError, match=r"whole clips only; .* --ragged"):
        recognizer.logits(np.zeros((2, 4000), np.float32), [4000, 3000])
    np.testing.assert_array_equal(recognizer.logits(np.zeros((2, 4000), np.float32),
                                                    [4000, 4000]).shape, (2, 5))


@pytest.mark.parametrize(("fmt", "precision"), [("onnx", "fp16"), ("torchscript", "bf16")])
def test_reduced_precision_artifacts_are_gated(run_dir: Path, tmp_path: Path, fmt: str,
                                               precision: str):
    result = exporter.export_run(run_dir, fmt, precision=precision, out_dir=tmp_path)
    assert result.path.name == f"model.{precision}{formats.FORMATS[fmt].suffix}"
    meta = json.loads(result.sidecar.read_text())
    assert meta["precision"] == precision
    assert "the feature encoder's group norm" in meta["kept_in_fp32"]
    gate = meta["parity"]["gate"]
    assert gate["passed"] and gate["test_split_top1_agreement"] >= 0.99
    assert 0 < gate["golden_max_prob_diff"] < 0.05 and meta["parity"]["max_prob_diff"] > 0
    recognizer = Recognizer.open(result.path)
    assert recognizer.info.precision == precision
    x = np.random.default_rng(3).uniform(-0.3, 0.3, (2, 12_000)).astype(np.float32)
    graph = ExportGraph(load_run(run_dir).recognizer)
    expected = eager_outputs(graph, torch.from_numpy(x))[0].numpy()
    got = recognizer.logits(x)
    assert got.dtype == np.float32 and 0 < np.abs(got - expected).max() < 0.1


def test_reduced_precision_gate_failure_leaves_nothing(run_dir: Path, tmp_path: Path,
                                                       monkeypatch):
    real = load_onnx

    def always_first_label(path, device="cpu"):
        loaded = real(path, device)
        return LoadedArtifact(
            lambda *x: np.eye(5, dtype=np.float32)[np.zeros(len(x[0]), int)] * 50,
            loaded.metadata)

    monkeypatch.setitem(formats.FORMATS, "onnx",
                        replace(formats.FORMATS["onnx"], load=always_first_label))
    result = CliRunner().invoke(export_cli, [str(run_dir), "--precision", "fp16", "--out",
                                             str(tmp_path)])
    assert result.exit_code == 1 and "below 99%" in result.output
    assert list(tmp_path.iterdir()) == []


def test_bf16_is_not_offered_for_onnx(run_dir: Path, tmp_path: Path):
    with pytest.raises(ExportError, match="bf16 is not available for onnx"):
        exporter.export_run(run_dir, "onnx", precision="bf16", out_dir=tmp_path)


def test_short_inputs_are_rejected_before_any_runtime(run_dir: Path):
    graph = ExportGraph(load_run(run_dir).recognizer, 48_000)
    with pytest.raises(ValueError, match="has 1199 samples; the model needs at least 1200"):
        check_input(torch.zeros(1, 1199), graph.min_samples)
    check_input(torch.zeros(2, 1200), graph.min_samples)
    with pytest.raises(ValueError, match="at least 1200"):
        eager_outputs(graph, torch.zeros(1, 1))


@pytest.mark.parametrize("layers", [1, 3])
def test_loop_lstm_equals_nn_lstm(layers: int):
    """The pt2 graph's LSTM: same final states as nn.LSTM, at any batch and length."""
    from torch import nn

    from emo_toolkit.export.loop_lstm import LoopLSTM

    torch.manual_seed(layers)
    lstm = nn.LSTM(24, 16, num_layers=layers, batch_first=True).eval()
    loop = LoopLSTM(lstm)
    for shape in ((1, 1, 24), (3, 57, 24)):
        x = torch.randn(*shape)
        with torch.no_grad():
            _, (h, c) = lstm(x)
            _, (h2, c2) = loop(x)
        assert torch.allclose(h, h2, atol=1e-6) and torch.allclose(c, c2, atol=1e-6)


def test_calibration_feeds_each_clip_in_the_graphs_layout(tmp_path: Path):
    """A calibration clip reaches the graph as a batch of one in its layout; unreadable and
    too-short files are passed over for the next ones."""
    from emo_toolkit.export.artifact import Calibration

    files = [tmp_path / f"{i}.wav" for i in range(5)]
    for i, f in enumerate(files):
        write_wav(f, np.full(800 + 100 * i, 0.1, np.float32), 16_000)
    files[0].write_bytes(b"not audio")
    chosen = Calibration.from_files(files, 2, 16_000, min_samples=400)
    # the spread picks files 0 and 2; 0 is unreadable, so the next unpicked one (1) serves
    assert chosen.files == (files[2], files[1])
    assert [c.size for c in chosen.clips] == [1000, 900]
    clips = list(chosen.feeds(["waveform"], "clips"))
    assert [c["waveform"].shape for c in clips] == [(1, 1000), (1, 900)]
    padded = next(chosen.feeds(["waveform", "lengths"], "padded"))
    assert padded["lengths"].tolist() == [1000] and padded["lengths"].dtype == np.int64
    joined = next(chosen.feeds(["waveform", "lengths"], "concatenated"))
    assert joined["waveform"].shape == (1000,) and joined["lengths"].dtype == np.int32
    with pytest.raises(ExportError, match="no readable training clip"):
        Calibration.from_files(files[:1], 3, 16_000, 400)


def test_export_options_for_reduced_precision_are_checked(run_dir: Path):
    runner = CliRunner()
    result = runner.invoke(export_cli, [str(run_dir), "--min-agreement", "0.9"])
    assert result.exit_code == 2 and "applies to fp16, bf16 and int8" in result.output
    result = runner.invoke(export_cli, [str(run_dir), "--precision", "int8",
                                        "--calibration-clips", "0"])
    assert result.exit_code == 2 and "--calibration-clips" in result.output
    result = runner.invoke(export_cli, [str(run_dir), "--precision", "int8",
                                        "--min-agreement", "1.5"])
    assert result.exit_code == 2 and "--min-agreement" in result.output
