"""CUDA paths: run on a machine with a GPU (docs/figures/device_check.sh runs this file there);
skipped elsewhere. Each compares the device's results with the CPU's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emo_toolkit.export import exporter
from emo_toolkit.runtime.errors import EmoToolkitError
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.train.inference import recognizer_from_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def clips(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-0.3, 0.3, n).astype(np.float32) for n in (400, 7_000, 16_000, 31_234)]


def test_a_run_on_cuda_equals_the_cpu_on_a_ragged_batch(tiny_run: Path):
    x = clips(np.random.default_rng(0))
    cpu = recognizer_from_run(tiny_run).logits_of_clips(x, 4)
    gpu = recognizer_from_run(tiny_run, device="cuda").logits_of_clips(x, 4)
    assert np.abs(np.stack(cpu) - np.stack(gpu)).max() < 1e-3


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_on_cuda_stays_close_to_fp32(tiny_run: Path, precision: str):
    from emo_toolkit.export.graph import ExportGraph
    from emo_toolkit.runtime.formats.base import torch_runner
    from emo_toolkit.train.inference import load_run

    graph = ExportGraph(load_run(tiny_run).recognizer).to("cuda")
    x = np.random.default_rng(1).uniform(-0.3, 0.3, (4, 16_000)).astype(np.float32)
    fp32 = torch_runner(graph, "cuda")(x)
    reduced = torch_runner(graph, "cuda", precision)(x)
    assert np.isfinite(reduced).all() and np.abs(reduced - fp32).max() < 0.2


@pytest.mark.parametrize(("fmt", "precision"), [("torchscript", "bf16"), ("torchscript", "fp16"),
                                                ("aoti", "fp32")])
def test_exports_for_cuda_pass_their_gate_and_run_ragged(tiny_run: Path, tmp_path: Path,
                                                         fmt: str, precision: str):
    result = exporter.export_formats(tiny_run, ["pt2", "aoti"] if fmt == "aoti" else [fmt],
                                     precision=precision, out_dir=tmp_path, device="cuda",
                                     layout="padded")[-1]
    assert result.gate["passed"]
    recognizer = Recognizer.open(result.path, device="cuda")
    x = clips(np.random.default_rng(2))
    got = np.stack(recognizer.logits_of_clips(x, 4))
    cpu = np.stack(recognizer_from_run(tiny_run).logits_of_clips(x, 1))
    assert np.abs(got - cpu).max() < (1e-3 if precision == "fp32" else 0.2)


def test_onnx_on_cuda_runs_or_says_why(tiny_onnx: Path):
    import onnxruntime as ort

    x = np.random.default_rng(3).uniform(-0.3, 0.3, (2, 9_000)).astype(np.float32)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(EmoToolkitError, match="no CUDA execution provider"):
            Recognizer.open(tiny_onnx, device="cuda")
        return
    gpu = Recognizer.open(tiny_onnx, device="cuda").logits(x)
    assert np.abs(gpu - Recognizer.open(tiny_onnx).logits(x)).max() < 1e-3
