"""What every artifact format's reading half shares: I/O names, the Runner and loaded-artifact
types, and the torch runner (torch is imported inside it: the ONNX path is torch-free)."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.runtime.errors import ArtifactError, ExportError
from emo_toolkit.runtime.io import read_json_file, sha256_file

Runner = Callable[..., np.ndarray]
"""The graph's inputs in (a float32 waveform batch, and the lengths when the graph takes
them: ModelInfo.layout), float32 logits (B, C) out: host NumPy both ways."""


INPUT_NAME = "waveform"
LENGTHS_NAME = "lengths"
OUTPUT_NAMES = ("logits", "probs")


@dataclass(frozen=True)
class LoadedArtifact:
    """An artifact ready to run, and the metadata embedded in it (None: none yet)."""

    runner: Runner
    metadata: dict[str, Any] | None
    precision: str | None = None  # what the runtime computes in (None: the exported one)
    threads: int | None = None    # the threads the runtime reports it runs on (None: unsaid)


@dataclass(frozen=True)
class RunOptions:
    """How a runtime runs an artifact, beyond the device (Recognizer.open's options)."""

    runtime: str | None = None    # None: the format's first runtime (ONNX: ONNX Runtime)
    precision: str | None = None  # None: the precision the artifact was exported in
    threads: int | None = None    # None: the runtime's default (every core it sees)


class ProviderMissing(RuntimeError):
    """ONNX Runtime fell back from the requested execution provider."""


def torch_runner(module: Any, device: str, precision: str = "fp32") -> Runner:
    """A torch module (eager, compiled, TorchScript, AOTInductor) as a Runner taking the
    graph's inputs as arrays; `precision` fp16/bf16 runs an fp32 module under autocast
    (eager backends), and the logits come back as float32."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def run(*arrays: np.ndarray) -> np.ndarray:
        autocast = torch.autocast(kind, dtype=dtype) if dtype else nullcontext()
        with torch.inference_mode(), autocast:
            logits = module(*(torch.from_numpy(a).to(device) for a in arrays))[0]
        return logits.float().cpu().numpy()

    return run


def json_or_none(raw: str | bytes) -> dict[str, Any] | None:
    return json.loads(raw) if raw else None


def required(metadata: dict[str, Any] | None, path: Path, name: str) -> dict[str, Any]:
    """The metadata a reader found, or ExportError when the artifact has none."""
    if metadata is None:
        raise ExportError(f"{path}: no {name} metadata")
    return metadata


DIGEST_KEY = "artifact_sha256"
"""In the sidecar: the artifact file's sha256 at export (the file cannot hold its own)."""


def sidecar_path(artifact: Path) -> Path:
    """The JSON file beside an artifact: its embedded metadata, and its digest."""
    return artifact.parent / (artifact.name + ".json")


def check_digest(path: Path) -> None:
    """Refuse an artifact whose bytes differ from the digest its sidecar recorded at export
    (a flipped bit in its weights would predict other answers). Without a sidecar, or with
    one from before digests, nothing is checked. Costs one read of the file."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return
    recorded = read_json_file(sidecar)
    want = recorded.get(DIGEST_KEY) if isinstance(recorded, dict) else None
    if want is not None and sha256_file(path) != want:
        raise ArtifactError(f"{path}: its bytes differ from the digest {sidecar.name} recorded "
                            "at export (damaged or altered); export it again")
