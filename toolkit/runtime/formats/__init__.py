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
from emo_toolkit.runtime.formats.openvino import load_openvino
from emo_toolkit.runtime.formats.torch import load_aoti, load_pt2, load_torchscript_artifact

Loader = Callable[..., LoadedArtifact]
"""(path, device, run=RunOptions, **options) -> the runner and the embedded metadata."""


@dataclass(frozen=True)
class Runtime:
    """Another runtime that runs a format (its first is the reader's `load` itself)."""

    name: str
    load: Loader
    requires: tuple[str, str]       # (module, extra)


@dataclass(frozen=True, kw_only=True)
class ArtifactReader:
    """How the runtime recognises, reads and runs one artifact format."""

    name: str
    suffix: str                     # file name ending, after "model[.RATEhz][.PRECISION]"
    load: Loader                    # with the format's own runtime, `runtime`
    requires: tuple[str, str] | None = ("torch", "train")  # (module, extra) beyond the base
    runtime: str = "torch"
    alternatives: tuple[Runtime, ...] = ()

    @property
    def installed(self) -> bool:
        """Whether this install has the package the format needs (`requires`)."""
        return self.requires is None or importlib.util.find_spec(self.requires[0]) is not None

    @property
    def runtimes(self) -> tuple[str, ...]:
        return (self.runtime, *(r.name for r in self.alternatives))

    def loader(self, runtime: str | None) -> tuple[Loader, tuple[str, str] | None]:
        """The loader of `runtime` (None: the format's own) and the (module, extra) it needs."""
        if runtime in (None, self.runtime):
            return self.load, self.requires
        for r in self.alternatives:
            if r.name == runtime:
                return r.load, r.requires
        raise ArtifactError(f"runtime {runtime!r} does not run {self.name} artifacts; "
                            f"available: {', '.join(self.runtimes)}")


READERS = {r.name: r for r in (
    # [gpu] installs the same onnxruntime module as [cpu]
    ArtifactReader(name="onnx", suffix=".onnx", load=load_onnx, requires=("onnxruntime", "cpu"),
                   runtime="onnxruntime",
                   alternatives=(Runtime("openvino", load_openvino, ("openvino", "openvino")),)),
    ArtifactReader(name="torchscript", suffix=".torchscript.pt", load=load_torchscript_artifact),
    ArtifactReader(name="pt2", suffix=".pt2", load=load_pt2),
    ArtifactReader(name="aoti", suffix=".aoti.pt2", load=load_aoti),
    ArtifactReader(name="executorch", suffix=".pte", load=load_executorch,
                   requires=("executorch", "edge"), runtime="executorch"),
)}
RUNTIMES = tuple(dict.fromkeys(n for r in READERS.values() for n in r.runtimes))
RUNTIME_PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int8-dynamic")
"""What Recognizer.open's `precision` names: an artifact's exported precision, or (OpenVINO,
fp32 artifacts) bf16 or fp16 computed at run time."""


def format_of(path: Path) -> ArtifactReader:
    """The format of an artifact file, from its name's ending (the longest that matches)."""
    matches = [r for r in READERS.values() if path.name.endswith(r.suffix)]
    if not matches:
        raise ArtifactError(f"{path}: not an artifact this toolkit runs (names end in "
                            f"{', '.join(r.suffix for r in READERS.values())})")
    return max(matches, key=lambda r: len(r.suffix))
