"""Decode every clip of a dataset once, set aside the bad ones, and summarise the rest."""

from __future__ import annotations

import statistics
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emo_toolkit.data.datasets import Clip, Dataset, SkippedFile, load_dataset, without
from emo_toolkit.runtime.audio import MIN_SAMPLES, SAMPLE_RATE, validate_audio
from emo_toolkit.runtime.errors import per_file_error
from emo_toolkit.runtime.io import atomic_write_json
from emo_toolkit.runtime.progress import progress_iter


@dataclass(frozen=True)
class ClipInfo:
    clip: Clip
    duration: float
    sample_rate: int
    channels: int


@dataclass
class CorpusSummary:
    dataset: Dataset
    infos: list[ClipInfo]

    @property
    def skipped(self) -> list[SkippedFile]:
        return self.dataset.skipped

    def counts(self) -> dict[str, dict[str, int]]:
        """label -> speaker ("?" when unknown) -> clips."""
        table: dict[str, Counter[str]] = {label: Counter() for label in self.dataset.labels}
        for info in self.infos:
            table[info.clip.label][info.clip.speaker or "?"] += 1
        return {label: dict(sorted(c.items())) for label, c in table.items()}

    def durations(self) -> dict[str, dict[str, float]]:
        """Duration statistics in seconds, per label and for "all"."""
        groups: dict[str, list[float]] = {label: [] for label in self.dataset.labels}
        for info in self.infos:
            groups[info.clip.label].append(info.duration)
        groups["all"] = [i.duration for i in self.infos]
        return {name: _stats(values) for name, values in groups.items() if values}

    def to_json(self) -> dict[str, Any]:
        ds = self.dataset
        return {
            "root": str(ds.root),
            "layout": ds.layout,
            "labels": list(ds.labels),
            "speakers": list(ds.speakers),
            "speakers_known": ds.speakers_known,
            "num_clips": len(self.infos),
            "counts": self.counts(),
            "durations_s": self.durations(),
            "sample_rates": dict(sorted(Counter(i.sample_rate for i in self.infos).items())),
            "skipped": [s.to_json() for s in ds.skipped],
        }


def validate_dataset(ds: Dataset, *, sample_rate: int = SAMPLE_RATE,
                     min_samples: int = MIN_SAMPLES, progress: bool = True) -> CorpusSummary:
    """Decode each clip with every check of `load_audio`; bad files are skipped, never fatal."""
    infos: list[ClipInfo] = []
    bad: list[SkippedFile] = []
    for clip in progress_iter(ds.clips, len(ds.clips), "checking audio", "clip",
                              enabled=progress):
        try:
            audio = validate_audio(clip.path, sample_rate, min_samples)
        except Exception as e:  # one bad file never stops the others
            error = per_file_error(clip.path, e)
            bad.append(SkippedFile(clip.path, error.reason, error.problem))
            continue
        infos.append(ClipInfo(clip, audio.duration, audio.original_rate, audio.original_channels))
    checked = without(ds, bad)
    for label in sorted(set(ds.labels) - set(checked.labels)):
        n = sum(c.label == label for c in ds.clips)
        warnings.warn(f"label {label!r}: all {n} of its clip(s) were skipped (see the skipped "
                      "files), so it is left out", stacklevel=2)
    return CorpusSummary(checked, infos)


def scan_dataset(source: str | Path, layout: str = "auto", speaker_regex: str | None = None, *,
                 progress: bool = True) -> CorpusSummary:
    """Find the clips under `source` and decode each once; bad files end up skipped."""
    return validate_dataset(load_dataset(source, layout, speaker_regex), progress=progress)


def write_report(summary: CorpusSummary, path: str | Path) -> Path:
    return atomic_write_json(path, summary.to_json())


def format_summary(summary: CorpusSummary, max_skipped: int = 20) -> str:
    """A plain-text report: clips per label and speaker, durations, skipped files."""
    ds = summary.dataset
    counts = summary.counts()
    speakers = sorted({s for row in counts.values() for s in row})
    lines = [
        f"dataset  {ds.root}",
        f"layout   {ds.layout}",
        f"clips    {len(summary.infos)} usable, {len(ds.skipped)} skipped",
        f"labels   {len(ds.labels)}: {', '.join(ds.labels)}",
        f"speakers {len(ds.speakers)}" + ("" if ds.speakers_known else " (some or all unknown: ?)"),
        "",
    ]
    width = max([len("label"), *(len(label) for label in counts)])
    cols = [max(len(s), 3) for s in speakers]
    header = "label".ljust(width) + "".join(
        f" {s:>{w}}" for s, w in zip(speakers, cols, strict=True))
    lines += [header + "  total", "-" * (len(header) + 7)]
    for label, row in counts.items():
        cells = "".join(f" {row.get(s, 0):>{w}}" for s, w in zip(speakers, cols, strict=True))
        lines.append(f"{label.ljust(width)}{cells}  {sum(row.values()):>5}")
    name_width = max(width, len("durations (s)"))
    lines += ["", "durations (s)".ljust(name_width) + "   total    min   mean    max"]
    for name, st in summary.durations().items():
        lines.append(
            f"{name.ljust(name_width)} {st['total']:7.1f} {st['min']:6.2f} {st['mean']:6.2f}"
            f" {st['max']:6.2f}"
        )
    lines.append("")
    if ds.skipped:
        lines.append(f"skipped files ({len(ds.skipped)}):")
        lines += [f"  [{s.reason}] {s.path}: {s.message}" for s in ds.skipped[:max_skipped]]
        if len(ds.skipped) > max_skipped:
            lines.append(f"  ... and {len(ds.skipped) - max_skipped} more (see the JSON report)")
    else:
        lines.append("skipped files: none")
    return "\n".join(lines)


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "total": round(sum(values), 3),
        "min": round(min(values), 3),
        "mean": round(statistics.fmean(values), 3),
        "max": round(max(values), 3),
    }
