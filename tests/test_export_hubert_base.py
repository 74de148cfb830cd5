"""Integration: the full-size HuBERT-base architecture (untrained weights) with the default head,
exported to ONNX and TorchScript, passes the fp32 parity contract (max |Δlogit| <= 1e-4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emo_toolkit.export import exporter
from emo_toolkit.export.graph import ExportGraph
from emo_toolkit.features.extractor import open_extractor
from emo_toolkit.runtime.formats.onnx import read_onnx_metadata
from emo_toolkit.runtime.formats.torch import read_torchscript_metadata
from emo_toolkit.train.head import EmotionHead, HeadConfig
from emo_toolkit.train.inference import EmotionRecognizer


@pytest.fixture(scope="module")
def graph() -> ExportGraph:
    extractor = open_extractor("hubert_base", untrained=True)
    torch.manual_seed(0)
    head = EmotionHead(HeadConfig(extractor.num_layers, extractor.dim, 5))
    labels = ["angry", "disgust", "fear", "happy", "sad"]
    return ExportGraph(EmotionRecognizer(extractor, head.eval(), labels))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_full_hubert_base_passes_fp32_parity(graph: ExportGraph, tmp_path: Path, fmt: str):
    identity = graph.recognizer.extractor.identity
    metadata = exporter.base_metadata(graph, None, None, identity.to_json(),
                                      graph.recognizer.head.config.to_json())
    target = tmp_path / exporter.artifact_name(fmt, "fp32", 16_000)
    result = exporter.export_graph(graph, fmt, "fp32", target, metadata)
    assert result.report.max_abs_diff <= 1e-4 and result.report.top1_agreement == 1.0
    reader = read_onnx_metadata if fmt == "onnx" else read_torchscript_metadata
    meta = reader(result.path)
    assert meta["extractor"]["name"] == "hubert_base" and meta["untrained_extractor"]
    assert 350e6 < result.size_bytes < 450e6  # 94.4M + 4.9M parameters in one fp32 file
    if fmt == "onnx":
        assert not list(tmp_path.glob("*.data"))  # one file, no external data
