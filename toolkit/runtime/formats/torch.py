"""Reading and running the torch artifacts: TorchScript (.torchscript.pt), the torch.export
program (.pt2) and the AOTInductor package (.aoti.pt2). torch is imported when one is
opened; opening any of them runs code from the archive: open only artifacts you trust."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emo_toolkit.runtime.formats.base import (
    LoadedArtifact,
    RunOptions,
    json_or_none,
    required,
    torch_runner,
)

if TYPE_CHECKING:
    import torch


TORCHSCRIPT_META_FILE = "metadata.json"


PT2_META_FILE = "emo_toolkit.json"


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """torch 2.14 warns that TorchScript is deprecated: it is still what torch::jit::load reads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def load_torchscript(path: Path, device: str = "cpu",
                     extra: dict[str, str] | None = None) -> torch.jit.ScriptModule:
    import torch

    with quiet_torchscript():
        return torch.jit.load(str(path), map_location=device, _extra_files=extra or {})


def read_torchscript_metadata(path: Path) -> dict[str, Any]:
    return required(load_torchscript_artifact(path).metadata, path, TORCHSCRIPT_META_FILE)


def set_threads(run: RunOptions | None) -> None:
    """torch's intra-op thread count is the process's: `run.threads` sets it for all."""
    import torch

    if run is not None and run.threads is not None:
        torch.set_num_threads(run.threads)


def load_torchscript_artifact(path: Path, device: str = "cpu", run: RunOptions | None = None
                              ) -> LoadedArtifact:
    set_threads(run)
    extra = {TORCHSCRIPT_META_FILE: ""}
    module = load_torchscript(path, device, extra).eval()
    return LoadedArtifact(torch_runner(module, device), json_or_none(extra[TORCHSCRIPT_META_FILE]))


def read_pt2_metadata(path: Path) -> dict[str, Any]:
    return required(load_pt2(path).metadata, path, PT2_META_FILE)


def load_pt2(path: Path, device: str = "cpu", run: RunOptions | None = None) -> LoadedArtifact:
    import torch

    set_threads(run)
    extra = {PT2_META_FILE: ""}
    module = torch.export.load(str(path), extra_files=extra).module().to(device)
    return LoadedArtifact(torch_runner(module, device), json_or_none(extra[PT2_META_FILE]))


def read_aoti_metadata(path: Path) -> dict[str, Any]:
    return required(_aoti_metadata(path), path, PT2_META_FILE)


def _aoti_metadata(path: Path) -> dict[str, Any] | None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(f"/extra/{PT2_META_FILE}"):
                return json.loads(archive.read(name))
    return None


def load_aoti(path: Path, device: str = "cpu", run: RunOptions | None = None) -> LoadedArtifact:
    import torch

    set_threads(run)
    return LoadedArtifact(torch_runner(torch._inductor.aoti_load_package(str(path)), device),
                          _aoti_metadata(path))
