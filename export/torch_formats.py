"""Writing the torch artifacts: TorchScript, the torch.export program (.pt2) and the
AOTInductor package (.aoti.pt2), with their metadata (their readers and runners:
emo_toolkit.runtime.formats.torch).

TorchScript: `torch.jit.trace` of the graph (shape-generic: the trace holds no
length-dependent branches), metadata in the extra file "metadata.json",
loadable from C++ with torch::jit::load. A trace pins the device of every tensor
the graph makes (pytorch#31141), so it is traced on the export's --device and
runs there. pt2: one torch.export program serves
the .pt2 file and the AOTInductor package; its LSTM is a while_loop
(export/loop_lstm.py) so the length stays symbolic.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emo_toolkit.export.artifact import Exports, example_arrays
from emo_toolkit.runtime.formats.torch import (
    PT2_META_FILE,
    TORCHSCRIPT_META_FILE,
    load_torchscript,
    quiet_torchscript,
)

if TYPE_CHECKING:
    import torch

    from emo_toolkit.export.graph import ExportGraph

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


def save_torchscript(module: torch.jit.ScriptModule, path: Path, metadata: dict[str, Any]) -> None:
    import torch

    with quiet_torchscript():
        torch.jit.save(module, str(path),
                       _extra_files={TORCHSCRIPT_META_FILE: json.dumps(metadata)})


# --- pt2: torch.export ExportedProgram and AOTInductor package ---------------------------


def pt2_min_samples(graph: ExportGraph) -> int:
    """The shortest input at the graph's rate that gives the extractor PT2_MIN_FRAMES frames."""
    extractor = graph.recognizer.extractor
    model_samples = extractor.min_samples
    while extractor.num_frames(model_samples) < PT2_MIN_FRAMES:
        model_samples += 1
    return -(-model_samples * graph.input_rate // graph.model_rate)


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


def write_aoti(exports: Exports, path: Path, precision: str = "fp32") -> None:
    import torch

    torch._inductor.aoti_compile_and_package(exports.program(precision), package_path=str(path))


def set_aoti_metadata(_: Exports, path: Path, metadata: dict[str, Any]) -> None:
    """AOTInductor packages are zip archives: the metadata goes in as one more member."""
    import zipfile

    with zipfile.ZipFile(path, "a") as archive:
        prefix = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/extra/{PT2_META_FILE}", json.dumps(metadata))


