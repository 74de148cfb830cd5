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


def test_int8_is_gated_on_test_split_agreement(run_dir: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(exporter.MIN_AGREEMENT, "int8", 0.0)
    result = exporter.export_run(run_dir, "onnx", precision="int8", out_dir=tmp_path)
    gate = read_onnx_metadata(result.path)["parity"]["gate"]
    assert result.path.name == "model.int8.onnx" and gate["passed"]
    assert gate["test_split_clips"] == 20 and 0 <= gate["test_split_top1_agreement"] <= 1
    import onnx

    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert "MatMulInteger" in ops and "ConvInteger" not in ops

    monkeypatch.setitem(exporter.MIN_AGREEMENT, "int8", 1.01)
    with pytest.raises(ParityError, match=r"top-1 agreement .* is below"):
        exporter.export_run(run_dir, "onnx", precision="int8", out_dir=tmp_path / "fail")
    assert not (tmp_path / "fail" / "model.int8.onnx").exists()
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
