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

pt2: a torch.export program (.pt2) and an AOTInductor package, one program for both.
`FORMATS` (one `ArtifactFormat` per format) is what the exporter, artifact names, the
parity check and emo-bench use: a new format or precision is one entry.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.errors import ArtifactError, DeviceError, EmoToolkitError
from toolkit.recognizer import Runner

if TYPE_CHECKING:
    import torch

    from export.graph import ExportGraph

# torch is imported inside the functions that need it: reading this registry (emo-export's
# options, the ONNX runner of the runtime) must not load it.
INPUT_NAME = "waveform"
OUTPUT_NAMES = ("logits", "probs")

ONNX_OPSET = 17
ONNX_META_KEY = "emo_toolkit"
TORCHSCRIPT_META_FILE = "metadata.json"
PROTOBUF_LIMIT = 2 * 1024**3


@dataclass(frozen=True)
class LoadedArtifact:
    """An artifact ready to run, and the metadata embedded in it (None: none yet)."""

    runner: Runner
    metadata: dict[str, Any] | None


class ExportError(EmoToolkitError):
    """An export that could not be written."""


class ProviderMissing(RuntimeError):
    """ONNX Runtime fell back from the requested execution provider."""


class Exports:
    """One graph on its way to several formats: the torch.export program is made once and
    serves both the .pt2 program and the AOTInductor package."""

    def __init__(self, graph: ExportGraph, device: str = "cpu"):
        self.graph, self.device = graph, device

    @cached_property
    def program(self) -> torch.export.ExportedProgram:
        return export_program(self.graph, self.device)


def torch_runner(module: Any, device: str, precision: str = "fp32") -> Runner:
    """A torch module (eager, compiled, TorchScript, AOTInductor) as a Runner; fp16/bf16 run
    under autocast, and the logits come back as float32."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def run(waveform: np.ndarray) -> np.ndarray:
        autocast = torch.autocast(kind, dtype=dtype) if dtype else nullcontext()
        with torch.inference_mode(), autocast:
            logits = module(torch.from_numpy(waveform).to(device))[0]
        return logits.float().cpu().numpy()

    return run


def _example(graph: ExportGraph) -> torch.Tensor:
    import torch

    return 0.1 * torch.randn(2, graph.input_rate, generator=torch.Generator().manual_seed(0))


def write_onnx(exports: Exports, path: Path, precision: str = "fp32") -> None:
    """fp32, or int8 quantised from an fp32 file written beside `path` first."""
    import torch

    if precision == "int8":
        fp32 = path.with_name(path.name + ".fp32.onnx")
        try:
            write_onnx(exports, fp32)
            quantize_onnx_int8(fp32, path)
        finally:
            fp32.unlink(missing_ok=True)
        return
    graph = exports.graph
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
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice on the root logger
    try:
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QUInt8)
    finally:
        root.setLevel(level)


def set_onnx_metadata(_: Exports, path: Path, metadata: dict[str, Any]) -> None:
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


def load_onnx(path: Path, device: str = "cpu", providers: list[Any] | None = None,
              precision: str = "fp32") -> LoadedArtifact:
    """An ONNX Runtime session (torch-free) and its embedded metadata; with `providers`,
    ProviderMissing when the first of them did not load (ORT would fall back silently)."""
    import onnxruntime as ort

    if providers is None:
        # Chosen from the device: onnxruntime-gpu without CUDA would fall back loudly.
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DeviceError(f"device {device}: this onnxruntime has no CUDA execution "
                                  f"provider ({', '.join(ort.get_available_providers())})")
            index = int(device.partition(":")[2] or 0)
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
    options = ort.SessionOptions()
    # ORT caches a memory plan per input shape; segments of a long recording come in many
    # lengths, and the cache made peak memory grow with the recording (1 -> 10 minutes of
    # HuBERT-base: 751 -> 907 MB with it, 751 -> 774 MB without, at the same speed).
    options.enable_mem_pattern = False
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
    if session.get_providers()[0] != wanted:
        raise ProviderMissing(f"{wanted} did not load; ONNX Runtime chose "
                              f"{', '.join(session.get_providers())}")
    raw = session.get_modelmeta().custom_metadata_map.get(ONNX_META_KEY)
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    # ORT's own exceptions derive from Exception only: as RuntimeError, a failed run is an
    # InferenceError for the Recognizer, as a failed torch run is
    ort_errors = tuple(getattr(state, n) for n in ("Fail", "InvalidArgument", "RuntimeException",
                                                   "EPFail") if hasattr(state, n))

    def run(waveform: np.ndarray) -> np.ndarray:
        try:
            return session.run([OUTPUT_NAMES[0]], {INPUT_NAME: waveform})[0]
        except ort_errors as e:
            raise RuntimeError(f"ONNX Runtime: {e}") from e

    return LoadedArtifact(run, json.loads(raw) if raw else None)


def write_torchscript(exports: Exports, path: Path, precision: str = "fp32") -> None:
    import torch

    graph = exports.graph
    with torch.inference_mode(), warnings.catch_warnings():
        # TracerWarning, and torch 2.14's notice that TorchScript is deprecated: it is still
        # the format C++ apps load with torch::jit::load.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, (_example(graph),), check_trace=False)
    save_torchscript(traced, path, {})


def embed_torchscript(_: Exports, path: Path, metadata: dict[str, Any]) -> None:
    save_torchscript(load_torchscript(path), path, metadata)


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """torch 2.14 warns that TorchScript is deprecated: it is still what torch::jit::load reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def load_torchscript(path: Path, device: str = "cpu",
                     extra: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    import torch

    with _quiet_torchscript():
        return torch.jit.load(str(path), map_location=device, _extra_files=extra or {})


def save_torchscript(module: torch.jit.ScriptModule, path: Path, metadata: dict[str, Any]) -> None:
    import torch

    with _quiet_torchscript():
        torch.jit.save(module, str(path),
                       _extra_files={TORCHSCRIPT_META_FILE: json.dumps(metadata)})


def read_torchscript_metadata(path: Path) -> dict[str, Any]:
    return _required(load_torchscript_artifact(path).metadata, path, TORCHSCRIPT_META_FILE)


def load_torchscript_artifact(path: Path, device: str = "cpu",
                              precision: str = "fp32") -> LoadedArtifact:
    extra = {TORCHSCRIPT_META_FILE: ""}
    module = load_torchscript(path, device, extra).eval()
    raw = extra[TORCHSCRIPT_META_FILE]
    return LoadedArtifact(torch_runner(module, device, precision), _json_or_none(raw))


def _json_or_none(raw: str | bytes) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


def _required(metadata: dict[str, Any] | None, path: Path, name: str) -> dict[str, Any]:
    """The metadata a reader found, or ExportError when the artifact has none."""
    if metadata is None:
        raise ExportError(f"{path}: no {name} metadata")
    return metadata


# --- pt2: torch.export ExportedProgram and AOTInductor package ---------------------------

PT2_META_FILE = "emo_toolkit.json"
PT2_MIN_FRAMES = 2  # torch.export guards the frame count against 1 (0/1 specialisation)


def pt2_graph(graph: ExportGraph) -> ExportGraph:
    """The graph with its LSTM as a while_loop, so torch.export keeps the length symbolic."""
    from export.graph import ExportGraph
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
    import torch
    import torch.fx.experimental._config as fx_config
    from torch.export import Dim

    exportable = pt2_graph(graph).to(device)
    with fx_config.patch(backed_size_oblivious=True), torch.no_grad():
        return torch.export.export(exportable, (_example(graph).to(device),),
                                   dynamic_shapes={INPUT_NAME: {0: Dim.AUTO, 1: Dim.AUTO}})


def write_pt2(exports: Exports, path: Path, precision: str = "fp32") -> None:
    save_pt2(exports, path, {})


def save_pt2(exports: Exports, path: Path, metadata: dict[str, Any]) -> None:
    """The program with the metadata as an extra file (written with the program)."""
    import torch

    torch.export.save(exports.program, str(path),
                      extra_files={PT2_META_FILE: json.dumps(metadata)})


def read_pt2_metadata(path: Path) -> dict[str, Any]:
    return _required(load_pt2(path).metadata, path, PT2_META_FILE)


def load_pt2(path: Path, device: str = "cpu", precision: str = "fp32") -> LoadedArtifact:
    import torch

    extra = {PT2_META_FILE: ""}
    module = torch.export.load(str(path), extra_files=extra).module().to(device)
    return LoadedArtifact(torch_runner(module, device, precision),
                          _json_or_none(extra[PT2_META_FILE]))


def write_aoti(exports: Exports, path: Path, precision: str = "fp32") -> None:
    import torch

    torch._inductor.aoti_compile_and_package(exports.program, package_path=str(path))


def set_aoti_metadata(_: Exports, path: Path, metadata: dict[str, Any]) -> None:
    """AOTInductor packages are zip archives: the metadata goes in as one more member."""
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        prefix = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/extra/{PT2_META_FILE}", json.dumps(metadata))


def read_aoti_metadata(path: Path) -> dict[str, Any]:
    return _required(_aoti_metadata(path), path, PT2_META_FILE)


def _aoti_metadata(path: Path) -> dict[str, Any] | None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(f"/extra/{PT2_META_FILE}"):
                return json.loads(archive.read(name))
    return None


def load_aoti(path: Path, device: str = "cpu", precision: str = "fp32") -> LoadedArtifact:
    import torch

    return LoadedArtifact(torch_runner(torch._inductor.aoti_load_package(str(path)), device,
                                       precision), _aoti_metadata(path))


# --- the registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactFormat:
    """Everything the toolkit knows about one artifact format."""

    name: str
    suffix: str                     # file name ending, after "model[.RATEhz][.PRECISION]"
    option: str                     # the emo-export --format choice that writes it
    precisions: tuple[str, ...]
    write: Callable[[Exports, Path, str], None]                 # (exports, path, precision)
    embed: Callable[[Exports, Path, dict[str, Any]], None]      # metadata into the artifact
    read_metadata: Callable[[Path], dict[str, Any]]
    load: Callable[..., LoadedArtifact]                         # (path, device, **options)
    min_samples: Callable[[ExportGraph], int] | None = None     # when not the graph's own

    def shortest_input(self, graph: ExportGraph) -> int:
        return self.min_samples(graph) if self.min_samples else graph.min_samples


FORMATS = {f.name: f for f in (
    ArtifactFormat("onnx", ".onnx", "onnx", ("fp32", "int8"), write_onnx, set_onnx_metadata,
                   read_onnx_metadata, load_onnx),
    ArtifactFormat("torchscript", ".torchscript.pt", "torchscript", ("fp32",),
                   write_torchscript, embed_torchscript, read_torchscript_metadata,
                   load_torchscript_artifact),
    ArtifactFormat("pt2", ".pt2", "pt2", ("fp32",), write_pt2, save_pt2, read_pt2_metadata,
                   load_pt2, pt2_min_samples),
    ArtifactFormat("aoti", ".aoti.pt2", "pt2", ("fp32",), write_aoti, set_aoti_metadata,
                   read_aoti_metadata, load_aoti, pt2_min_samples),
)}
PRECISIONS = tuple(dict.fromkeys(p for f in FORMATS.values() for p in f.precisions))


def format_of(path: Path) -> ArtifactFormat:
    """The format of an artifact file, from its name's ending (the longest that matches)."""
    matches = [f for f in FORMATS.values() if path.name.endswith(f.suffix)]
    if not matches:
        raise ArtifactError(f"{path}: not an artifact this toolkit runs (names end in "
                            f"{', '.join(f.suffix for f in FORMATS.values())})")
    return max(matches, key=lambda f: len(f.suffix))


def artifact_format(name: str) -> ArtifactFormat:
    if name not in FORMATS:
        raise ExportError(f"unknown format {name!r}; available: {', '.join(FORMATS)}")
    return FORMATS[name]
