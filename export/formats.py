"""The artifact formats the toolkit writes: one `ArtifactFormat` per format, the runtime's
`ArtifactReader` (emo_toolkit.runtime.formats) with the writing half added.

`FORMATS` is what the exporter, artifact names, the parity check and emo-bench use: a new
format or precision is one entry here and one reader in the runtime. The writers live in
export/onnx_format.py, export/torch_formats.py and export/executorch_format.py; what they
share in export/artifact.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emo_toolkit.export.artifact import Exports
from emo_toolkit.export.executorch_format import (
    EXECUTORCH_INT8_SCHEME,
    embed_executorch,
    executorch_metadata,
    write_executorch,
)
from emo_toolkit.export.onnx_format import INT8_SCHEMES, set_onnx_metadata, write_onnx
from emo_toolkit.export.torch_formats import (
    embed_torchscript,
    pt2_min_samples,
    save_pt2,
    set_aoti_metadata,
    write_aoti,
    write_pt2,
    write_torchscript,
)
from emo_toolkit.runtime.errors import ExportError
from emo_toolkit.runtime.formats import READERS, ArtifactReader

if TYPE_CHECKING:
    from emo_toolkit.export.graph import ExportGraph


@dataclass(frozen=True, kw_only=True)
class ArtifactFormat(ArtifactReader):
    """Everything the toolkit knows about one artifact format: its reader, and how to write it."""

    option: str                     # the emo-export --format choice that writes it
    precisions: tuple[str, ...]
    write: Callable[[Exports, Path, str], None]                 # (exports, path, precision)
    embed: Callable[[Exports, Path, dict[str, Any]], None]      # metadata into the artifact
    min_samples: Callable[[ExportGraph], int] | None = None     # when not the graph's own
    metadata: Callable[[ExportGraph], dict[str, Any]] | None = None  # the format's own fields
    layouts: tuple[str, ...] = ("clips", "padded", "concatenated")  # input layouts it takes
    # quantised precision -> (what is quantised and how, for the metadata; whether its
    # activation ranges are calibrated on training clips)
    quantized: Mapping[str, tuple[str, bool]] = field(default_factory=dict)

    @classmethod
    def writing(cls, reader: str, **writer: Any) -> ArtifactFormat:
        """The runtime's reader called `reader`, with the writing half `writer`."""
        base = READERS[reader]
        return cls(**{f.name: getattr(base, f.name) for f in fields(base)}, **writer)

    def calibrates(self, precision: str) -> bool:
        """Whether `precision` takes its activation ranges from calibration clips."""
        return self.quantized.get(precision, ("", False))[1]

    def shortest_input(self, graph: ExportGraph) -> int:
        return self.min_samples(graph) if self.min_samples else graph.min_samples


# ONNX has no bf16: opset 17's Conv takes no bfloat16 (the checker refuses the model).
FORMATS = {f.name: f for f in (
    ArtifactFormat.writing("onnx", option="onnx",
                           precisions=("fp32", "fp16", "int8", "int8-dynamic"),
                           write=write_onnx, embed=set_onnx_metadata, quantized=INT8_SCHEMES),
    ArtifactFormat.writing("torchscript", option="torchscript",
                           precisions=("fp32", "fp16", "bf16"), write=write_torchscript,
                           embed=embed_torchscript),
    ArtifactFormat.writing("pt2", option="pt2", precisions=("fp32", "fp16", "bf16"),
                           write=write_pt2, embed=save_pt2, min_samples=pt2_min_samples),
    ArtifactFormat.writing("aoti", option="pt2", precisions=("fp32", "fp16", "bf16"),
                           write=write_aoti, embed=set_aoti_metadata,
                           min_samples=pt2_min_samples),
    ArtifactFormat.writing("executorch", option="executorch", precisions=("fp32", "int8"),
                           write=write_executorch, embed=embed_executorch,
                           min_samples=pt2_min_samples, metadata=executorch_metadata,
                           quantized={"int8": (EXECUTORCH_INT8_SCHEME, False)},
                           layouts=("clips",)),  # one whole clip per call (batch 1)
)}
PRECISIONS = tuple(dict.fromkeys(p for f in FORMATS.values() for p in f.precisions))


def artifact_format(name: str) -> ArtifactFormat:
    if name not in FORMATS:
        raise ExportError(f"unknown format {name!r}; available: {', '.join(FORMATS)}")
    return FORMATS[name]
