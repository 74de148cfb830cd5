"""The artifact formats the runtime opens: one `ArtifactReader` per format, the reading and
running half of each format's one entry (export/formats.py adds the writing half).

A new format is a reader here (a module beside this one) and a writer in export/.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emo_toolkit.runtime.errors import ArtifactError
from emo_toolkit.runtime.formats.base import LoadedArtifact
from emo_toolkit.runtime.formats.executorch import load_executorch
from emo_toolkit.runtime.formats.onnx import load_onnx
from emo_toolkit.runtime.formats.torch import load_aoti, load_pt2, load_torchscript_artifact


@dataclass(frozen=True, kw_only=True)
class ArtifactReader:
    """How the runtime recognises, reads and runs one artifact format."""

    name: str
    suffix: str                     # file name ending, after "model[.RATEhz][.PRECISION]"
    load: Callable[..., LoadedArtifact]   # (path, device, **options): runner and metadata
    requires: tuple[str, str] | None = ("torch", "train")  # (module, extra) beyond the base

    @property
    def installed(self) -> bool:
        """Whether this install has the package the format needs (`requires`)."""
        return self.requires is None or importlib.util.find_spec(self.requires[0]) is not None


READERS = {r.name: r for r in (
    # [gpu] installs the same onnxruntime module as [cpu]
    ArtifactReader(name="onnx", suffix=".onnx", load=load_onnx, requires=("onnxruntime", "cpu")),
    ArtifactReader(name="torchscript", suffix=".torchscript.pt", load=load_torchscript_artifact),
    ArtifactReader(name="pt2", suffix=".pt2", load=load_pt2),
    ArtifactReader(name="aoti", suffix=".aoti.pt2", load=load_aoti),
    ArtifactReader(name="executorch", suffix=".pte", load=load_executorch,
                   requires=("executorch", "edge")),
)}


def format_of(path: Path) -> ArtifactReader:
    """The format of an artifact file, from its name's ending (the longest that matches)."""
    matches = [r for r in READERS.values() if path.name.endswith(r.suffix)]
    if not matches:
        raise ArtifactError(f"{path}: not an artifact this toolkit runs (names end in "
                            f"{', '.join(r.suffix for r in READERS.values())})")
    return max(matches, key=lambda r: len(r.suffix))
