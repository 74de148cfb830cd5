"""Training examples streamed from the feature cache: one memory-mapped entry at a time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from emo_toolkit.features.cache import FeatureCache
from emo_toolkit.runtime.errors import EmoToolkitError


class MissingFeaturesError(EmoToolkitError):
    """A clip's features are not in the cache."""


class CachedFeatures(Dataset):
    """(features float32 (layers, frames, dim), label index) per clip, read on demand.

    Holds only the clips' audio hashes and labels, so its memory does not grow
    with the size of the features.
    """

    def __init__(self, cache: FeatureCache, audio_sha256: Sequence[str], labels: Sequence[int],
                 names: Sequence[str] | None = None):
        if len(audio_sha256) != len(labels):
            raise ValueError("one label per clip")
        self.names = list(names) if names is not None else list(audio_sha256)
        """What error messages call each clip (its file, when known)."""
        missing = [s for s in audio_sha256 if not cache.has(s)]
        if missing:
            raise MissingFeaturesError(
                f"{len(missing)} clip(s) have no features in {cache.dir}; extract them first")
        self.cache, self.shas, self.labels = cache, list(audio_sha256), list(labels)

    def __len__(self) -> int:
        return len(self.shas)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = self.cache.get(self.shas[i])
        if arr is None:
            raise MissingFeaturesError(f"features of {self.names[i]} vanished from "
                                       f"{self.cache.dir}; rerun to compute them again")
        # Entries are checked (finite, shaped) when computed or reused: not again per epoch.
        return torch.from_numpy(np.array(arr, dtype=np.float32)), self.labels[i]


def pad_batch(items: Sequence[tuple[torch.Tensor, int]]):
    """Collate (L, T, D) items into (B, L, T_max, D) zero-padded, frame lengths, labels."""
    lengths = torch.tensor([x.shape[1] for x, _ in items])
    first = items[0][0]
    out = first.new_zeros((len(items), first.shape[0], int(lengths.max()), first.shape[2]))
    for b, (x, _) in enumerate(items):
        out[b, :, : x.shape[1]] = x
    return out, lengths, torch.tensor([y for _, y in items])
