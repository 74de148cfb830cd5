"""Safe weight files: load without unpickling code, hash, find in or fetch to the hub cache."""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from emo_toolkit.runtime.errors import EmoToolkitError

if TYPE_CHECKING:
    import torch

OFFLINE_ENV = "EMO_TOOLKIT_OFFLINE"
"""Set to 1 to never try a download (fail at once when weights are missing)."""

DOWNLOAD_TIMEOUT_S = 15


class WeightsError(EmoToolkitError):
    """Weights that are missing, cannot be fetched, or are not a plain state dict."""


def sha256_state_dict(state: dict[str, torch.Tensor]) -> str:
    """A content hash of tensors (names, dtypes, shapes and values), order-independent."""
    h = hashlib.sha256()
    import torch

    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors, or from a torch file with weights_only=True.

    A pickle that would build arbitrary objects or call functions is refused
    before any of its code runs.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own SafetensorError and OSError types
            raise WeightsError(f"{path}: not a readable safetensors file ({e})") from e
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        if "global" not in detail.lower():
            raise WeightsError(f"{path}: not a readable torch weights file ({detail})") from e
        raise WeightsError(
            f"{path}: refused to load: the file holds Python objects other than tensors, "
            "and loading it could run code. Only plain state dicts are accepted "
            f"(weights_only=True). Detail: {detail}"
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable torch weights file ({e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a state dict (name -> tensor)")
    return obj


def _unpickler_detail(message: str) -> str:
    """The one line of torch's long weights_only message that says what was found."""
    marker = "WeightsUnpickler error:"
    if marker in message:
        rest = message.split(marker, 1)[1].strip().splitlines()[0]
        return f"{marker} {rest.split('. Please', 1)[0]}"  # drop torch's advice to allowlist
    return message.strip().splitlines()[0]


def hub_checkpoint_dir() -> Path:
    """Where torch hub keeps downloaded checkpoints (honours TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_to_hub_cache(file_name: str, url: str, hint: str) -> Path:
    """The checkpoint's path in the hub cache, downloading it first if it is missing.

    Fails fast, naming the file expected, the cache folder and `hint`, when the
    file is absent and cannot be downloaded (or `EMO_TOOLKIT_OFFLINE=1`).
    """
    target = hub_checkpoint_dir() / file_name
    if target.is_file():
        return target
    why = f"{OFFLINE_ENV}=1 is set"
    if os.environ.get(OFFLINE_ENV, "") not in ("1", "true", "yes"):
        try:
            _download(url, target)
            return target
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            why = f"download from {url} failed: {getattr(e, 'reason', e)}"
    raise WeightsError(
        f"pretrained weights not found: expected {target} in the torch hub cache folder "
        f"{target.parent}, and {why}. Copy the file there, or {hint}."
    )


def _download(url: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, \
                os.fdopen(fd, "wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
                      "I8": 1, "U8": 1, "BOOL": 1}
MAX_SAFETENSORS_HEADER = 100 << 20


def safetensors_shapes(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of a .safetensors file, after checking its header whole.

    Every offset and size is checked against the file before anything is loaded: a
    truncated, empty or garbage file, or a header length beyond the file, is a
    WeightsError naming the file, never a huge allocation."""
    import json
    import stat
    import struct

    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read ({e.strerror})") from e
    if not stat.S_ISREG(st.st_mode):
        raise WeightsError(f"{path}: not a regular file")
    size = st.st_size
    if size < 8:
        raise WeightsError(f"{path}: {size} bytes is too short for a safetensors file")
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > min(size - 8, MAX_SAFETENSORS_HEADER):
            raise WeightsError(f"{path}: not a safetensors file (its header claims {n} bytes; "
                               f"the file has {size})")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise WeightsError(f"{path}: damaged safetensors header ({e})") from e
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: damaged safetensors header (not an object)")
    data_size, out = size - 8 - n, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = (isinstance(entry, dict) and entry.get("dtype") in SAFETENSORS_DTYPES
              and isinstance(entry.get("shape"), list)
              and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                      for d in entry["shape"])
              and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
              and all(isinstance(o, int) and not isinstance(o, bool)
                      for o in entry["data_offsets"]))
        if not ok:
            raise WeightsError(f"{path}: damaged safetensors entry {name!r}")
        begin, end = entry["data_offsets"]
        numel = 1
        for d in entry["shape"]:
            numel *= d
        if not 0 <= begin <= end <= data_size or end - begin != numel * SAFETENSORS_DTYPES[
                entry["dtype"]]:
            raise WeightsError(f"{path}: tensor {name!r} lies outside the file or has the "
                               "wrong size (truncated or damaged)")
        out[name] = (entry["dtype"], tuple(entry["shape"]))
    return out
