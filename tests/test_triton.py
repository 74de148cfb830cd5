"""emo-export --format triton: the repository's config.pbtxt parsed with Triton's own schema
(tritonclient's model_config message) and checked against the ONNX model it serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from emo_toolkit.cli.export import main as export_cli
from emo_toolkit.export.triton import TritonOptions, config_pbtxt
from emo_toolkit.runtime.formats.onnx import load_onnx

ONNX_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.INT32: "TYPE_INT32"}


def parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repository(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("triton")
    result = CliRunner().invoke(export_cli, [str(tiny_run), "--format", "triton", "--out",
                                             str(root), "--triton-name", "ser",
                                             "--triton-max-batch", "6"])
    assert result.exit_code == 0, result.output
    return root


def test_repository_layout_and_config_follow_tritons_schema(repository: Path):
    folder = repository / "ser"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) \
        == ["1/model.onnx", "1/model.onnx.json", "config.pbtxt", "labels.txt"]
    config = parse((folder / "config.pbtxt").read_text())
    assert config.name == "ser" and config.backend == "onnxruntime"
    assert config.max_batch_size == 6
    assert list(config.dynamic_batching.preferred_batch_size) == [3, 6]
    assert [g.kind for g in config.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    [waveform] = config.input
    assert waveform.allow_ragged_batch and list(waveform.dims) == [-1]
    [lengths] = config.batch_input
    assert lengths.kind == model_config_pb2.BatchInput.BATCH_ELEMENT_COUNT
    assert (list(lengths.target_name), list(lengths.source_input)) == (["lengths"], ["waveform"])
    assert model_config_pb2.DataType.Name(lengths.data_type) == "TYPE_INT32"
    meta = json.loads((folder / "1" / "model.onnx.json").read_text())
    labels = (folder / "labels.txt").read_text().splitlines()
    assert labels == meta["labels"] and len(labels) == 5
    for output in config.output:
        assert output.label_filename == "labels.txt" and list(output.dims) == [len(labels)]


def test_config_matches_the_onnx_model(repository: Path):
    """Ragged inputs and batch inputs reach the model 1-D (no batch axis); outputs keep the
    batch axis, one row per request."""
    folder = repository / "ser"
    config = parse((folder / "config.pbtxt").read_text())
    graph = onnx.load(str(folder / "1" / "model.onnx")).graph
    declared = {t.name: (t.data_type, [-1], "input") for t in config.input}
    declared |= {b.target_name[0]: (b.data_type, [-1], "input") for b in config.batch_input}
    declared |= {t.name: (t.data_type, [-1, *t.dims], "output") for t in config.output}
    for tensor in [*graph.input, *graph.output]:
        assert tensor.name in declared, f"{tensor.name} is not in config.pbtxt"
        data_type, dims, _ = declared.pop(tensor.name)
        kind = tensor.type.tensor_type
        assert model_config_pb2.DataType.Name(data_type) == ONNX_TYPES[kind.elem_type]
        assert [d.dim_value if d.HasField("dim_value") else -1 for d in kind.shape.dim] == dims
    assert not declared, f"config.pbtxt declares tensors the model lacks: {list(declared)}"


def test_a_ragged_batch_as_triton_assembles_it_equals_the_requests_alone(repository: Path,
                                                                        tiny_run: Path):
    """Requests of different lengths, concatenated with their element counts the way the
    onnxruntime backend hands them to the model: each row equals its request alone, and
    eager PyTorch on that clip."""
    import torch

    from emo_toolkit.export.graph import ExportGraph, eager_outputs
    from emo_toolkit.train.inference import load_run

    run = load_onnx(repository / "ser" / "1" / "model.onnx").runner
    rng = np.random.default_rng(0)
    requests = [rng.uniform(-0.3, 0.3, (1, n)).astype(np.float32)
                for n in (9_000, 400, 23_456, 16_000, 9_000, 1_234)]
    flat = np.concatenate([r[0] for r in requests])
    counts = np.array([r.size for r in requests], np.int32)  # BATCH_ELEMENT_COUNT
    batched = run(flat, counts)
    alone = np.concatenate([run(r[0], np.array([r.size], np.int32)) for r in requests])
    assert batched.shape == (6, 5) and np.abs(batched - alone).max() < 1e-5
    graph = ExportGraph(load_run(tiny_run).recognizer)
    eager = np.concatenate([eager_outputs(graph, torch.from_numpy(r))[0].numpy()
                            for r in requests])
    assert np.abs(batched - eager).max() < 1e-4


def test_gpu_instances_and_a_bad_field_fails_the_schema():
    config = parse(config_pbtxt(TritonOptions("m", 4, (2, 4), instances=2, device="cuda:1"), 3))
    [group] = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert (group.count, list(group.gpus)) == (2, [1])
    with pytest.raises(text_format.ParseError):
        parse(config_pbtxt(TritonOptions(), 3) + "\nmax_batch: 4\n")
    with pytest.raises(ValueError, match="preferred batch sizes"):
        TritonOptions(max_batch_size=4, preferred_batch_sizes=(8,))
