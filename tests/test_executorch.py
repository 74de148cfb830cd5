"""ExecuTorch programs (.pte): the edge methods, the export's gate, the runtime, the refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.export.edge_graph import STEPS_PER_CALL, edge_modules
from emo_toolkit.export.graph import ExportGraph, eager_outputs
from emo_toolkit.export.torch_formats import pt2_min_samples
from emo_toolkit.runtime.errors import ArtifactError, DeviceError
from emo_toolkit.runtime.formats.executorch import load_executorch, read_executorch_metadata
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.train.inference import load_run
from tests.conftest import write_wav
from tests.faults import sidecar_metadata

pytest.importorskip("executorch")


@pytest.fixture(scope="module")
def graph(tiny_run: Path) -> ExportGraph:
    return ExportGraph(load_run(tiny_run).recognizer)


@pytest.fixture
def pte(tiny_pte: Path) -> Path:
    return tiny_pte


def host_loop(graph: ExportGraph, waveform: torch.Tensor) -> torch.Tensor:
    """The edge methods in eager torch, driven as the runners drive them."""
    features, steps = edge_modules(graph)
    with torch.inference_mode():
        inputs = features(waveform)
        frames = inputs.shape[1]
        calls = -(-frames // STEPS_PER_CALL)
        padded = torch.zeros(calls * STEPS_PER_CALL, inputs.shape[2])
        padded[:frames] = inputs[0]
        running = (torch.arange(calls * STEPS_PER_CALL) < frames).float()
        h = c = torch.zeros(steps.lstm.num_layers, steps.lstm.hidden_size)
        for i in range(calls):
            window = slice(i * STEPS_PER_CALL, (i + 1) * STEPS_PER_CALL)
            h, c, logits, probs = steps(padded[window], running[window], h, c)
    assert torch.allclose(probs, torch.softmax(logits, -1))
    return logits


@pytest.mark.parametrize("samples", [720, 16_000, 16_000 * 3 + 77])
def test_edge_methods_are_the_eager_graph(graph: ExportGraph, samples: int):
    """Features + a host loop of lstm_steps (explicit attention, the LSTM written out, the
    last call padded with running = 0) equal the whole graph: the split is exact."""
    x = 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(samples))
    expected = eager_outputs(graph, x)[0]
    assert torch.allclose(host_loop(graph, x), expected, atol=1e-5, rtol=0)


def test_export_round_trip_and_metadata(pte: Path, graph: ExportGraph, tiny_run: Path,
                                        tmp_path: Path):
    embedded = read_executorch_metadata(pte)
    assert embedded == sidecar_metadata(pte)
    assert embedded["format"] == "executorch" and embedded["precision"] == "fp32"
    assert embedded["untrained_extractor"] is True
    assert embedded["min_samples"] == pt2_min_samples(graph)
    assert embedded["max_samples"] == 20 * 16_000
    assert embedded["executorch"]["batch"] == 1
    assert embedded["executorch"]["steps_per_call"] == STEPS_PER_CALL
    parity = embedded["parity"]
    assert parity["gate"]["passed"] and parity["max_abs_diff"] <= 1e-4
    assert [c["shape"][1] for c in parity["cases"][:4]] == [800, 16_000, 48_000, 160_000]
    # The user's runtime: a batch runs row by row, each row equal to eager.
    opened = Recognizer.open(pte)
    assert opened.info.kind == "executorch" and opened.info.max_samples == 320_000
    x = np.random.default_rng(0).uniform(-0.3, 0.3, (3, 12_345)).astype(np.float32)
    expected = eager_outputs(graph, torch.from_numpy(x))[0].numpy()
    assert np.abs(opened.logits(x) - expected).max() < 1e-4
    # Longer than the program's planned memory: one line naming the limit, and recordings
    # are cut into segments that fit.
    with pytest.raises(ValueError, match=r"at most 320000 samples \(20 s\)"):
        opened.logits(np.zeros((1, 320_001), np.float32))
    rng = np.random.default_rng(1)
    long = write_wav(tmp_path / "long.wav", (0.1 * rng.standard_normal(16_000 * 25)).astype(
        np.float32))
    (path, result), = opened.predict_files([long], window=60.0)
    assert path == long and len(result.segments) == 2
    assert max(s.end - s.start for s in result.segments) <= 20.0


def test_int8_program_is_gated(edge_exports: Path, tiny_run: Path):
    """int8 linear layers (dynamic activations) in the features method; gated on top-1
    agreement with eager on the test split like every reduced precision."""
    path = edge_exports / "model.int8.pte"
    embedded = read_executorch_metadata(path)
    gate = embedded["parity"]["gate"]
    assert embedded["precision"] == "int8" and gate["passed"]
    assert gate["test_split_clips"] == 20 and gate["test_split_top1_agreement"] >= 0.98
    linear_bytes = sum(m.weight.numel() * 4 for m in load_run(tiny_run).recognizer.modules()
                       if isinstance(m, torch.nn.Linear))
    # the linear weights are stored as int8, a quarter of their fp32 bytes (plus scales)
    assert path.stat().st_size < (edge_exports / "model.pte").stat().st_size - \
        0.6 * linear_bytes
    opened = Recognizer.open(path)
    assert opened.info.precision == "int8"
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (1, 23_456)).astype(np.float32)
    graph = ExportGraph(load_run(tiny_run).recognizer)
    expected = eager_outputs(graph, torch.from_numpy(x))[1].numpy()
    probs = np.exp(opened.logits(x))
    assert np.abs(probs / probs.sum() - expected).max() < 0.05


def test_refusals_are_one_line(tiny_run: Path, pte: Path, tmp_path: Path):
    for args, message in (
            (["--ragged"], "one whole clip per call (batch 1): export it without --ragged"),
            (["--precision", "fp16"], "fp16 is not available for executorch; available: "
                                      "fp32, int8"),
            (["--device", "cuda"], "CUDA is not available")):
        result = CliRunner().invoke(export_cli, [str(tiny_run), "--format", "executorch",
                                                 "--out", str(tmp_path), *args])
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DeviceError, match="ExecuTorch programs run on the CPU"):
        load_executorch(pte, "cuda")
    truncated = tmp_path / "cut.pte"
    truncated.write_bytes(pte.read_bytes()[:100_000])
    with pytest.raises(ArtifactError,
                       match=r"cut.pte: cannot be loaded as an artifact of format executorch"):
        Recognizer.open(truncated)


def test_max_samples_in_metadata_is_checked(tiny_pte: Path):
    from emo_toolkit.runtime.predictions import ModelInfo

    meta = read_executorch_metadata(tiny_pte)
    for bad in (100, "320000", 1.5):
        with pytest.raises(ArtifactError, match="max_samples below min_samples or not a whole"):
            ModelInfo.from_metadata({**meta, "max_samples": bad}, tiny_pte, "executorch")
    assert ModelInfo.from_metadata({**meta, "max_samples": None}, tiny_pte,
                                   "executorch").max_samples is None
