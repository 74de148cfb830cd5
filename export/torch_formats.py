"""The torch artifacts: TorchScript, the torch.export program (.pt2) and the AOTInductor
package (.aoti.pt2), with their metadata and runners.

TorchScript: `torch.jit.trace` of the graph (shape-generic: the trace holds no
length-dependent branches), metadata in the extra file "metadata.json",
loadable from C++ with torch::jit::load. A trace pins the device of every tensor
the graph makes (pytorch#31141), so it is traced on the export's --device and
runs there. pt2: one torch.export program serves
the .pt2 file and the AOTInductor package; its LSTM is a while_loop
(export/loop_lstm.py) so the length stays symbolic. Loading any of them runs
code from the archive: load only artifacts you trust.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.artifact import (
    ExportError,
    Exports,
    LoadedArtifact,
    example_arrays,
    json_or_none,
    required,
    torch_runner,
)

if TYPE_CHECKING:
    import torch

    from export.graph import ExportGraph

TORCHSCRIPT_META_FILE = "metadata.json"
PT2_META_FILE = "emo_toolkit.json"
PT2_MIN_FRAMES = 2  # torch.export guards the frame count against 1 (0/1 specialisation)


# --- TorchScript ---------------------------------------------------------------------------

def write_torchscript(exports: Exports, path: Path, precision: str = "fp32") -> None:
    import torch

    graph = exports.graph_for(precision)
    if exports.device != "cpu":  # a trace pins the devices of the tensors it makes
        graph = copy.deepcopy(graph).to(exports.device)  # (pytorch#31141): trace there
    with torch.inference_mode(), warnings.catch_warnings():
        # TracerWarning, and torch 2.14's notice that TorchScript is deprecated: it is still
        # the format C++ apps load with torch::jit::load.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, example_arrays(graph), check_trace=False)
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
    return required(load_torchscript_artifact(path).metadata, path, TORCHSCRIPT_META_FILE)


def load_torchscript_artifact(path: Path, device: str = "cpu") -> LoadedArtifact:
    extra = {TORCHSCRIPT_META_FILE: ""}
    module = load_torchscript(path, device, extra).eval()
    return LoadedArtifact(torch_runner(module, device), json_or_none(extra[TORCHSCRIPT_META_FILE]))


# --- pt2: torch.export ExportedProgram and AOTInductor package ---------------------------

def pt2_graph(graph: ExportGraph) -> ExportGraph:
    """A copy of the graph with its LSTM as a while_loop, so torch.export keeps the length
    symbolic."""
    from export.loop_lstm import LoopLSTM

    if graph.recognizer.head.config.bidirectional:
        raise ExportError("pt2 export covers unidirectional heads; this head is bidirectional")
    exportable = copy.deepcopy(graph)
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
    from torch.export import Dim

    exportable = pt2_graph(graph).to(device)
    example = example_arrays(exportable)
    shapes = {name: dict.fromkeys(range(x.ndim), Dim.AUTO)
              for name, x in zip(graph.input_names, example, strict=True)}
    with size_oblivious(), torch.no_grad():
        return torch.export.export(exportable, example, dynamic_shapes=shapes)


def size_oblivious() -> AbstractContextManager[Any]:
    """Size-oblivious guards keep the length symbolic in torch.export; the flag is absent
    from older torch (the device image runs torch 2.11), where export specialises what it
    must."""
    import torch.fx.experimental._config as fx_config

    if hasattr(fx_config, "backed_size_oblivious"):
        return fx_config.patch(backed_size_oblivious=True)
    return nullcontext()


def write_pt2(exports: Exports, path: Path, precision: str = "fp32") -> None:
    _save_program(exports, path, precision, {})


def _save_program(exports: Exports, path: Path, precision: str,
                       metadata: dict[str, Any]) -> None:
    import torch

    torch.export.save(exports.program(precision), str(path),
                      extra_files={PT2_META_FILE: json.dumps(metadata)})


def save_pt2(exports: Exports, path: Path, metadata: dict[str, Any]) -> None:
    """The program with the metadata as an extra file (written with the program)."""
    _save_program(exports, path, metadata.get("precision", "fp32"), metadata)


def read_pt2_metadata(path: Path) -> dict[str, Any]:
    return required(load_pt2(path).metadata, path, PT2_META_FILE)


def load_pt2(path: Path, device: str = "cpu") -> LoadedArtifact:
    import torch

    extra = {PT2_META_FILE: ""}
    module = torch.export.load(str(path), extra_files=extra).module().to(device)
    return LoadedArtifact(torch_runner(module, device), json_or_none(extra[PT2_META_FILE]))


def write_aoti(exports: Exports, path: Path, precision: str = "fp32") -> None:
    import torch

    torch._inductor.aoti_compile_and_package(exports.program(precision), package_path=str(path))


def set_aoti_metadata(_: Exports, path: Path, metadata: dict[str, Any]) -> None:
    """AOTInductor packages are zip archives: the metadata goes in as one more member."""
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        prefix = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/extra/{PT2_META_FILE}", json.dumps(metadata))


def read_aoti_metadata(path: Path) -> dict[str, Any]:
    return required(_aoti_metadata(path), path, PT2_META_FILE)


def _aoti_metadata(path: Path) -> dict[str, Any] | None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(f"/extra/{PT2_META_FILE}"):
                return json.loads(archive.read(name))
    return None


def load_aoti(path: Path, device: str = "cpu") -> LoadedArtifact:
    import torch

    return LoadedArtifact(torch_runner(torch._inductor.aoti_load_package(str(path)), device),
                          _aoti_metadata(path))
