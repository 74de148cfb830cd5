"""The artifact formats the toolkit writes and runs: one `ArtifactFormat` per format.

`FORMATS` is what the exporter, artifact names, the parity check, the runtime and
emo-bench use: a new format or precision is one entry. The formats' code lives in
export/onnx_format.py (torch-free to load) and export/torch_formats.py; what they
share in export/artifact.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.artifact import ExportError, Exports, LoadedArtifact
from export.executorch_format import (
    embed_executorch,
    executorch_metadata,
    load_executorch,
    read_executorch_metadata,
    write_executorch,
)
from export.onnx_format import load_onnx, read_onnx_metadata, set_onnx_metadata, write_onnx
from export.torch_formats import (
    embed_torchscript,
    load_aoti,
    load_pt2,
    load_torchscript_artifact,
    pt2_min_samples,
    read_aoti_metadata,
    read_pt2_metadata,
    read_torchscript_metadata,
    save_pt2,
    set_aoti_metadata,
    write_aoti,
    write_pt2,
    write_torchscript,
)
from toolkit.errors import ArtifactError

if TYPE_CHECKING:
    from export.graph import ExportGraph


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
    requires: tuple[str, str] | None = ("torch", "train")  # (module, extra) beyond the base
    metadata: Callable[[ExportGraph], dict[str, Any]] | None = None  # the format's own fields

    @property
    def installed(self) -> bool:
        """Whether this install has the package the format needs (`requires`)."""
        import importlib.util

        return self.requires is None or importlib.util.find_spec(self.requires[0]) is not None

    def shortest_input(self, graph: ExportGraph) -> int:
        return self.min_samples(graph) if self.min_samples else graph.min_samples


# ONNX has no bf16: opset 17's Conv takes no bfloat16 (the checker refuses the model).
FORMATS = {f.name: f for f in (
    ArtifactFormat("onnx", ".onnx", "onnx", ("fp32", "fp16", "int8"), write_onnx,
                   set_onnx_metadata, read_onnx_metadata, load_onnx, requires=None),
    ArtifactFormat("torchscript", ".torchscript.pt", "torchscript", ("fp32", "fp16", "bf16"),
                   write_torchscript, embed_torchscript, read_torchscript_metadata,
                   load_torchscript_artifact),
    ArtifactFormat("pt2", ".pt2", "pt2", ("fp32", "fp16", "bf16"), write_pt2, save_pt2,
                   read_pt2_metadata, load_pt2, pt2_min_samples),
    ArtifactFormat("aoti", ".aoti.pt2", "pt2", ("fp32", "fp16", "bf16"), write_aoti,
                   set_aoti_metadata, read_aoti_metadata, load_aoti, pt2_min_samples),
    ArtifactFormat("executorch", ".pte", "executorch", ("fp32", "int8"), write_executorch,
                   embed_executorch, read_executorch_metadata, load_executorch, pt2_min_samples,
                   requires=("executorch", "edge"), metadata=executorch_metadata),
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
