"""On-disk feature cache: one .npy per clip, (layers, frames, dim), fp16 by default.

An entry is keyed by the sha256 of the audio file's bytes, inside a folder
keyed by everything else that shapes the features (extractor, weights hash,
sample rate, resampling settings, compute precision, storage dtype, format
version). Entries are written to a temporary file and renamed into place, so a
reader never sees a partial entry; temporary files left by killed writers are
removed when a cache is next opened. Reads are memory-mapped. An entry is checked
(shape, finite values) before it is reused, and a damaged one is computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emo_toolkit.runtime.audio import RESAMPLE_LOWPASS_WIDTH, RESAMPLE_METHOD, RESAMPLE_ROLLOFF
from emo_toolkit.runtime.io import OutputError, atomic_write_json, pid_alive, write_point

FORMAT_VERSION = 1
Storage = Literal["fp16", "fp32"]
_DTYPES = {"fp16": np.float16, "fp32": np.float32}
_CHUNK = 1 << 20
_TMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$")
FP16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class CacheKey:
    extractor: str
    weights_sha256: str
    trained: bool
    sample_rate: int
    precision: str = "fp32"
    storage: Storage = "fp16"
    resample_method: str = RESAMPLE_METHOD
    resample_lowpass_width: int = RESAMPLE_LOWPASS_WIDTH
    resample_rolloff: float = RESAMPLE_ROLLOFF
    format_version: int = FORMAT_VERSION

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]

    def folder_name(self) -> str:
        tag = "" if self.trained else "-UNTRAINED"
        return f"{self.extractor}{tag}-{self.digest()}"


class FeatureCache:
    def __init__(self, root: str | Path, key: CacheKey):
        if key.storage not in _DTYPES:
            raise ValueError(f"storage must be fp16 or fp32, got {key.storage!r}")
        self.key = key
        self.dir = Path(root) / key.folder_name()
        self.dir.mkdir(parents=True, exist_ok=True)
        description = self.dir / "key.json"
        if not description.is_file():
            atomic_write_json(description, {**asdict(key), "note": _note(key)})
        self.removed_partial = self._sweep_dead_writers()

    def path(self, audio_sha256: str) -> Path:
        return self.dir / audio_sha256[:2] / f"{audio_sha256}.npy"

    def has(self, audio_sha256: str) -> bool:
        return self.path(audio_sha256).is_file()

    def get(self, audio_sha256: str) -> np.ndarray | None:
        """The entry, memory-mapped read-only, or None when absent or unreadable."""
        path = self.path(audio_sha256)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a damaged entry reads as missing and is computed again
        return arr if arr.ndim == 3 else None

    def check(self, audio_sha256: str, num_layers: int, dim: int) -> bool:
        """Whether a usable entry is there: (num_layers, frames >= 1, dim), every value finite.

        A damaged entry (truncated, other shape, NaN/inf) is deleted, so it is computed again."""
        path = self.path(audio_sha256)
        if not path.is_file():
            return False
        arr = self.get(audio_sha256)
        good = (arr is not None and arr.shape[0] == num_layers and arr.shape[2] == dim
                and arr.shape[1] >= 1 and bool(np.isfinite(arr).all()))
        del arr  # release the memory map before a delete
        if not good:
            path.unlink(missing_ok=True)
        return good

    def put(self, audio_sha256: str, features: np.ndarray) -> Path:
        """Store (layers, frames, dim) features atomically; fp16 unless a value would overflow."""
        if features.ndim != 3:
            raise ValueError(f"features must be (layers, frames, dim), got {features.shape}")
        if not np.isfinite(features).all():
            raise ValueError("features with NaN or infinite values are never cached")
        dtype = _DTYPES[self.key.storage]
        if dtype is np.float16 and float(np.abs(features).max(initial=0.0)) > FP16_MAX:
            dtype = np.float32  # keep the entry exact rather than store inf
        arr = np.ascontiguousarray(features, dtype=dtype)
        final = self.path(audio_sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.{os.getpid()}.tmp"
        try:
            with tmp.open("wb") as fh:
                np.lib.format.write_array_header_1_0(
                    fh, np.lib.format.header_data_from_array_1_0(arr))
                data = memoryview(arr.reshape(-1)).cast("B")
                for start in range(0, len(data), _CHUNK):
                    _write_chunk(fh, data[start:start + _CHUNK])
                fh.flush()
                os.fsync(fh.fileno())
            write_point(final)
            os.replace(tmp, final)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"{final}: cannot write ({e.strerror or e})") from e
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.glob("*/*.npy"))

    def _sweep_dead_writers(self) -> int:
        removed = 0
        for tmp in self.dir.glob("*/.*.tmp"):
            m = _TMP.match(tmp.name)
            if m and not pid_alive(int(m.group("pid"))):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed


def _write_chunk(fh: Any, chunk: memoryview) -> None:
    fh.write(chunk)


def _note(key: CacheKey) -> str:
    weights = "UNTRAINED random weights" if not key.trained else f"weights {key.weights_sha256}"
    return f"features of {key.extractor} ({weights}); one .npy per audio sha256"
