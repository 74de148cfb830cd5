"""Writers, runners and metadata readers of each artifact format.

ONNX: the TorchScript-based exporter (`dynamo=False`), opset 17, dynamic batch
and samples axes, weights inside the one .onnx file (no external data; the
supported extractors stay far below protobuf's 2 GB limit, and the writer
refuses a model that would not). The dynamo exporter fails on the head's LSTM
with a dynamic length (its decomposition unrolls time steps; measured with
torch 2.14.1), so it is not used. Metadata: `metadata_props` key "emo_toolkit".
int8: dynamic quantisation of MatMul only, QUInt8 weights (ConvInteger is
missing on many execution providers, onnxruntime#12558; QInt8 is riskier,
onnxruntime#5644).

TorchScript: `torch.jit.trace` of the graph (shape-generic: the trace holds no
length-dependent branches), metadata in the extra file "metadata.json",
loadable from C++ with torch::jit::load. Loading TorchScript runs code from
the archive: load only artifacts you trust.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.graph import INPUT_NAME, OUTPUT_NAMES, ExportGraph
from toolkit.errors import EmoToolkitError

ONNX_OPSET = 17
ONNX_META_KEY = "emo_toolkit"
TORCHSCRIPT_META_FILE = "metadata.json"
PROTOBUF_LIMIT = 2 * 1024**3


class ExportError(EmoToolkitError):
    """An export that could not be written."""


def _example(graph: ExportGraph) -> torch.Tensor:
    return 0.1 * torch.randn(2, graph.input_rate, generator=torch.Generator().manual_seed(0))


def write_onnx(graph: ExportGraph, path: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is chatty
        torch.onnx.export(
            graph, (_example(graph),), str(path), input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES), opset_version=ONNX_OPSET, dynamo=False,
            dynamic_axes={INPUT_NAME: {0: "batch", 1: "samples"},
                          **{name: {0: "batch"} for name in OUTPUT_NAMES}},
        )
    if path.stat().st_size >= PROTOBUF_LIMIT:
        raise ExportError(f"{path}: the ONNX graph is over protobuf's 2 GB limit")


def quantize_onnx_int8(source: Path, target: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice on the root logger
    try:
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)


def set_onnx_metadata(path: Path, metadata: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(metadata)
    onnx.save(model, str(path))


def read_onnx_metadata(path: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == ONNX_META_KEY:
            return json.loads(entry.value)
    raise ExportError(f"{path}: no {ONNX_META_KEY} metadata")


def onnx_providers(device: str) -> list[str]:
    """Chosen from the requested device: onnxruntime-gpu without CUDA would fall back loudly."""
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") \
        else ["CPUExecutionProvider"]


def onnx_runner(path: Path, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=onnx_providers(device))
    return lambda waveform: session.run([OUTPUT_NAMES[0]], {INPUT_NAME: waveform})[0]


def write_torchscript(graph: ExportGraph, path: Path, metadata: dict[str, Any]) -> None:
    import warnings

    with torch.inference_mode(), warnings.catch_warnings():
        # TracerWarning, and torch 2.14's notice that TorchScript is deprecated: it is still
        # the format C++ apps load with torch::jit::load.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, (_example(graph),), check_trace=False)
    save_torchscript(traced, path, metadata)


def load_torchscript(path: Path, device: str = "cpu",
                     extra: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device, _extra_files=extra or {})


def save_torchscript(module: torch.jit.ScriptModule, path: Path, metadata: dict[str, Any]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, str(path),
                       _extra_files={TORCHSCRIPT_META_FILE: json.dumps(metadata)})


def read_torchscript_metadata(path: Path) -> dict[str, Any]:
    extra = {TORCHSCRIPT_META_FILE: ""}
    load_torchscript(path, extra=extra)
    return json.loads(extra[TORCHSCRIPT_META_FILE])


def torchscript_runner(path: Path, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    module = load_torchscript(path, device).eval()

    def run(waveform: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(waveform).to(device))[0].cpu().numpy()

    return run


# --- pt2: torch.export ExportedProgram and AOTInductor package ---------------------------

PT2_META_FILE = "emo_toolkit.json"
PT2_MIN_FRAMES = 2  # torch.export guards the frame count against 1 (0/1 specialisation)


def pt2_graph(graph: ExportGraph) -> ExportGraph:
    """The graph with its LSTM as a while_loop, so torch.export keeps the length symbolic."""
    from export.loop_lstm import LoopLSTM

    head = graph.recognizer.head
    if head.config.bidirectional:
        raise ExportError("pt2 export covers unidirectional heads; this head is bidirectional")
    exportable = ExportGraph(graph.recognizer, graph.input_rate)
    exportable.recognizer.head.lstm = LoopLSTM(exportable.recognizer.head.lstm)
    return exportable.eval()


def pt2_min_samples(graph: ExportGraph) -> int:
    """The shortest input at the graph's rate that gives the extractor PT2_MIN_FRAMES frames."""
    extractor = graph.recognizer.extractor
    model_samples = extractor.min_samples
    while extractor.num_frames(model_samples) < PT2_MIN_FRAMES:
        model_samples += 1
    return -(-model_samples * graph.input_rate // graph.model_rate)


def export_program(graph: ExportGraph, device: str = "cpu") -> torch.export.ExportedProgram:
    import torch.fx.experimental._config as fx_config
    from torch.export import Dim

    exportable = pt2_graph(graph).to(device)
    with fx_config.patch(backed_size_oblivious=True), torch.no_grad():
        return torch.export.export(exportable, (_example(graph).to(device),),
                                   dynamic_shapes={INPUT_NAME: {0: Dim.AUTO, 1: Dim.AUTO}})


def write_pt2(graph: ExportGraph, path: Path, metadata: dict[str, Any],
              device: str = "cpu") -> torch.export.ExportedProgram:
    program = export_program(graph, device)
    save_pt2(program, path, metadata)
    return program


def save_pt2(program: torch.export.ExportedProgram, path: Path, metadata: dict[str, Any]) -> None:
    torch.export.save(program, str(path), extra_files={PT2_META_FILE: json.dumps(metadata)})


def read_pt2_metadata(path: Path) -> dict[str, Any]:
    extra = {PT2_META_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[PT2_META_FILE])


def pt2_runner(path: Path, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    module = torch.export.load(str(path)).module()

    def run(waveform: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(waveform).to(device))[0].cpu().numpy()

    return run


def write_aoti(graph: ExportGraph, path: Path, device: str = "cpu") -> None:
    torch._inductor.aoti_compile_and_package(export_program(graph, device),
                                             package_path=str(path))


def set_aoti_metadata(path: Path, metadata: dict[str, Any]) -> None:
    """AOTInductor packages are zip archives: the metadata goes in as one more member."""
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        prefix = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/extra/{PT2_META_FILE}", json.dumps(metadata))


def read_aoti_metadata(path: Path) -> dict[str, Any]:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(f"/extra/{PT2_META_FILE}"):
                return json.loads(archive.read(name))
    raise ExportError(f"{path}: no {PT2_META_FILE} metadata")


def aoti_runner(path: Path, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    module = torch._inductor.aoti_load_package(str(path))

    def run(waveform: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(waveform).to(device))[0].cpu().numpy()

    return run
