"""Batched feature extraction into the cache, with loading overlapped with compute.

Clips are sorted by length and grouped into batches under a budget of padded
samples, so padding stays small; `LayerFeatureExtractor` makes padded batches
give each clip its single-clip features. DataLoader workers decode and resample
the next batches while the model runs. Each clip's features go to the cache as
soon as its batch is done, so memory does not grow with the number of clips.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from emo_toolkit.data.datasets import SkippedFile
from emo_toolkit.features import distributed
from emo_toolkit.features.cache import CacheKey, FeatureCache, Storage
from emo_toolkit.features.distributed import ONE_PROCESS, Ranks
from emo_toolkit.features.extractor import LayerFeatureExtractor, autocast_context, log_tag
from emo_toolkit.runtime.audio import (
    MAX_RATE,
    MAX_SECONDS,
    MIN_RATE,
    load_audio,
    read_header,
    resampled_length,
)
from emo_toolkit.runtime.errors import AudioError, per_file_error
from emo_toolkit.runtime.io import OutputError, sha256_file
from emo_toolkit.runtime.progress import progress_bar

_log = logging.getLogger(__name__)

DEFAULT_BATCH_SECONDS = 64.0   # padded audio per batch
DEFAULT_MAX_BATCH = {"cpu": 1, "cuda": 16}
"""Clips per batch. On 2 CPU cores batching HuBERT-base gained little
(docs/figures/extraction.py)."""


@dataclass
class ExtractionReport:
    extractor: str
    cache_dir: Path
    computed: int = 0
    reused: int = 0
    audio_seconds: float = 0.0     # of the computed clips
    wall_seconds: float = 0.0
    skipped: list[SkippedFile] = field(default_factory=list)
    audio_sha256: dict[Path, str] = field(default_factory=dict)  # every usable clip

    @property
    def clips_per_second(self) -> float:
        return self.computed / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def realtime_factor(self) -> float:
        """Audio seconds processed per wall-clock second (higher is faster)."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self) -> str:
        return (f"{self.extractor}: {self.computed} computed, {self.reused} reused from cache, "
                f"{len(self.skipped)} skipped; {self.clips_per_second:.1f} clips/s, "
                f"{self.realtime_factor:.1f} audio-s/s; cache {self.cache_dir}")


def cache_for(extractor: LayerFeatureExtractor, root: str | Path, *, precision: str = "fp32",
              storage: Storage = "fp16") -> FeatureCache:
    """The cache folder for this extractor's features; an unusable folder is an OutputError."""
    ident = extractor.identity
    try:
        return FeatureCache(root, CacheKey(ident.name, ident.weights_sha256, ident.trained,
                                           extractor.sample_rate, precision, storage))
    except OSError as e:
        raise OutputError(f"{root}: cannot use as a feature cache folder "
                          f"({e.strerror or e})") from e


def plan_batches(lengths: Sequence[int], max_batch_samples: int, max_batch: int) -> list[list[int]]:
    """Indices grouped longest first, each batch's padded size within the budget."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches:
            current = batches[-1]
            padded = lengths[current[0]] * (len(current) + 1)  # the first is the longest
            if len(current) < max_batch and padded <= max_batch_samples:
                current.append(i)
                continue
        batches.append([i])
    return batches


class _AudioFiles(Dataset):
    """Decodes and resamples in DataLoader workers; errors travel back as values."""

    def __init__(self, paths: Sequence[Path], sample_rate: int, min_samples: int):
        self.paths, self.sample_rate, self.min_samples = list(paths), sample_rate, min_samples

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | AudioError]:
        try:
            return i, load_audio(self.paths[i], self.sample_rate, self.min_samples).samples
        except Exception as e:  # one bad file never stops the others
            return i, per_file_error(self.paths[i], e)


def _collate(items: list[tuple[int, np.ndarray | AudioError]]):
    good = [(i, x) for i, x in items if isinstance(x, np.ndarray)]
    errors = [(i, e) for i, e in items if isinstance(e, AudioError)]
    if not good:
        return [], None, None, errors
    lengths = torch.tensor([len(x) for _, x in good])
    batch = torch.zeros(len(good), int(lengths.max()))
    for row, (_, x) in enumerate(good):
        batch[row, : len(x)] = torch.from_numpy(x)
    return [i for i, _ in good], batch, lengths, errors


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # leave the cores to the model


def _merge_reports(reports: Sequence[ExtractionReport]) -> ExtractionReport:
    """One report for the shards of a multi-process extraction."""
    merged = ExtractionReport(reports[0].extractor, reports[0].cache_dir)
    merged.reused = reports[0].reused  # every rank counts the same cached entries
    merged.wall_seconds = max(r.wall_seconds for r in reports)
    bad = {s.path for r in reports for s in r.skipped}
    for r in reports:
        merged.computed += r.computed
        merged.audio_seconds += r.audio_seconds
        merged.skipped += [s for s in r.skipped if s not in merged.skipped]
        merged.audio_sha256.update({p: h for p, h in r.audio_sha256.items() if p not in bad})
    return merged


def extract_to_cache(paths: Sequence[Path], extractor: LayerFeatureExtractor, cache: FeatureCache,
                     *, precision: str = "fp32", batch_seconds: float = DEFAULT_BATCH_SECONDS,
                     max_batch: int | None = None, num_workers: int = 1,
                     progress: bool = True, ranks: Ranks = ONE_PROCESS) -> ExtractionReport:
    """Compute and cache the features of every path not cached yet; bad files are skipped.

    Under several processes (`ranks`, process group initialised) every process calls
    this with the same paths and computes every N-th missing entry (by audio hash, so
    no two write the same one); each returns the merged report of all of them, once
    every share is in the cache."""
    device = next(extractor.parameters()).device
    report = ExtractionReport(extractor.identity.describe(), cache.dir)
    todo: dict[str, Path] = {}
    for path in paths:
        try:
            sha = sha256_file(path)
        except OSError as e:
            report.skipped.append(SkippedFile(Path(path), "unreadable", str(e)))
            continue
        report.audio_sha256[Path(path)] = sha
        if sha not in todo and cache.check(sha, extractor.num_layers, extractor.dim):
            report.reused += 1
        else:
            todo.setdefault(sha, Path(path))
    # Every rank must list the same missing entries before any writes one, or the shares
    # would not line up.
    distributed.barrier(ranks)
    shas = distributed.shard(sorted(todo), ranks)
    files = [todo[sha] for sha in shas]
    lengths = [_expected_length(f, extractor.sample_rate) for f in files]
    budget = max(1, int(batch_seconds * extractor.sample_rate))
    if max_batch is None:
        max_batch = DEFAULT_MAX_BATCH.get(device.type, 1)
    batches = plan_batches(lengths, budget, max_batch)
    loader = DataLoader(
        _AudioFiles(files, extractor.sample_rate, extractor.min_samples),
        batch_sampler=batches, collate_fn=_collate, num_workers=num_workers,
        worker_init_fn=_worker_init if num_workers else None,
    )
    _log.info("%s extracting %d clips (%d already cached) into %s", log_tag(extractor),
              len(files), report.reused, cache.dir)
    start = time.perf_counter()
    bar = progress_bar(len(files), f"features {log_tag(extractor)}", "clip", enabled=progress)
    with torch.inference_mode(), autocast_context(device, precision):
        for index, batch, batch_lengths, errors in loader:
            for i, e in errors:
                _skip(report, shas[i], e.reason, e.problem)
            if index:
                layers, frames = extractor(batch.to(device), batch_lengths.to(device))
                layers = layers.float().cpu().numpy()
                for row, i in enumerate(index):
                    features = layers[:, row, : int(frames[row])]
                    if not np.isfinite(features).all():
                        _skip(report, shas[i], "non-finite-features", "the extractor's output "
                              "holds NaN or infinite values for this clip")
                        continue
                    cache.put(shas[i], features)
                    report.computed += 1
                    report.audio_seconds += int(batch_lengths[row]) / extractor.sample_rate
            bar.update(len(index) + len(errors))
            elapsed = time.perf_counter() - start
            bar.set_postfix_str(f"{report.audio_seconds / max(elapsed, 1e-9):.1f} audio-s/s")
    bar.close()
    report.wall_seconds = time.perf_counter() - start
    for skipped in report.skipped:
        _log.warning("%s skipped %s: %s", log_tag(extractor), skipped.path, skipped.message)
    return _merge_reports(distributed.gather(report, ranks)) if ranks.distributed else report


def _skip(report: ExtractionReport, sha: str, reason: str, message: str) -> None:
    """Leave out every file with these audio bytes (a corpus may hold copies)."""
    for path in [p for p, h in report.audio_sha256.items() if h == sha]:
        report.skipped.append(SkippedFile(path, reason, message))
        del report.audio_sha256[path]


def _expected_length(path: Path, sample_rate: int) -> int:
    """Length after resampling, from the header alone (0 when unreadable: it fails in a worker)."""
    try:
        frames, rate = read_header(path)
    except AudioError:
        return 0
    if not MIN_RATE <= rate <= MAX_RATE or frames > MAX_SECONDS * rate:
        return 0  # refused when decoded
    return resampled_length(frames, rate, sample_rate)
