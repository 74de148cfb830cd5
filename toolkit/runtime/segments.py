"""Cutting a long recording into segments the model can take, at pauses.

HuBERT's attention grows with the square of the input length, and one label for
a many-minute recording says little, so recordings longer than a window are cut
into segments of at most `window` samples. A cut goes in the middle of the
longest pause found in the second half of the window; a pause is a run of frames
at least `PAUSE_DB` below the window's speech level (or digitally silent) that
lasts at least `MIN_PAUSE_S`. Where the second half holds no pause, the cut falls
at the window's end (fixed windows, the fallback). Segments are contiguous: they
cover the recording with no gap, so every sample is classified once.

The segmenter takes the recording block by block and keeps at most two windows
of audio: memory does not grow with the recording's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from emo_toolkit.runtime.rules import SEGMENTS

# rules.json: the C segmenter (cpp/src/segment.cc) cuts at the same samples
FRAME_S = float(SEGMENTS["frame_s"])
"""Energy frame length."""

MIN_PAUSE_S = float(SEGMENTS["min_pause_s"])
"""Shortest run of quiet frames that counts as a pause."""

PAUSE_DB = float(SEGMENTS["pause_db"])
"""A frame this far below the window's speech level (its 95th-percentile frame) is quiet."""

SILENCE_DBFS = float(SEGMENTS["silence_dbfs"])
"""A frame below this level is quiet whatever the speech level."""


@dataclass(frozen=True)
class Segment:
    """Samples [start, end) of the recording (at the segmenter's rate)."""

    start: int
    end: int
    samples: np.ndarray

    @property
    def length(self) -> int:
        return self.end - self.start


class Segmenter:
    """Feed blocks with `push`, then call `finish`; both return the segments completed.

    Every segment has at most `window` samples and, when the recording has at least
    `min_samples`, at least `min_samples` (a short tail is merged into the segment
    before it, or takes the samples it lacks from it)."""

    def __init__(self, sample_rate: int, window: int, min_samples: int):
        if window < 4 * min_samples:
            raise ValueError(f"a window of {window} samples is too short for segments of at "
                             f"least {min_samples}")
        self.rate, self.window, self.min_samples = sample_rate, window, min_samples
        self.frame = max(1, round(FRAME_S * sample_rate))
        self.min_pause_frames = max(1, round(MIN_PAUSE_S / FRAME_S))
        self._buffer = np.zeros(0, dtype=np.float32)
        self._start = 0                       # recording index of _buffer[0]
        self._held: Segment | None = None     # the last cut segment, held for a short tail

    def push(self, block: np.ndarray) -> list[Segment]:
        self._buffer = np.concatenate([self._buffer, np.asarray(block, dtype=np.float32)])
        done = []
        while self._buffer.size > self.window:
            cut = self.cut_point(self._buffer[: self.window])
            done += self._hold(Segment(self._start, self._start + cut, self._buffer[:cut].copy()))
            self._buffer = self._buffer[cut:]
            self._start += cut
        return done

    def finish(self) -> list[Segment]:
        """The last segments; an empty list when the recording was empty."""
        tail = Segment(self._start, self._start + self._buffer.size, self._buffer)
        held, self._held = self._held, None
        if held is None:
            return [tail] if tail.length else []
        if tail.length == 0 or tail.length >= self.min_samples:
            return [held] + ([tail] if tail.length else [])
        joined = np.concatenate([held.samples, tail.samples])
        if joined.size <= self.window:
            return [Segment(held.start, tail.end, joined)]
        split = joined.size - self.min_samples
        return [Segment(held.start, held.start + split, joined[:split]),
                Segment(held.start + split, tail.end, joined[split:])]

    def _hold(self, segment: Segment) -> list[Segment]:
        released, self._held = self._held, segment
        return [] if released is None else [released]

    def cut_point(self, window: np.ndarray) -> int:
        """Where to end a segment that starts at window[0]: in (len/2, len]."""
        n = window.size // self.frame
        frames = window[: n * self.frame].reshape(n, self.frame).astype(np.float64)
        level = 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-20)
        speech = np.percentile(level, 95)
        quiet = (level < speech - PAUSE_DB) | (level < SILENCE_DBFS)
        lo = n // 2
        best: tuple[int, int] | None = None  # (length in the search range, middle frame)
        for first, last in _runs(quiet):
            if last - first < self.min_pause_frames or last <= lo:
                continue
            a = max(first, lo)
            candidate = (last - a, (a + last) // 2)
            if best is None or candidate[0] >= best[0]:
                best = candidate
        if best is None:
            return window.size
        return min(window.size, max(best[1] * self.frame, self.min_samples))


def _runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """[first, last) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    yield from zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True)


def segment(blocks: Iterable[np.ndarray], sample_rate: int, window: int,
            min_samples: int) -> Iterator[Segment]:
    """The segments of a recording given as blocks, as they are completed."""
    segmenter = Segmenter(sample_rate, window, min_samples)
    for block in blocks:
        yield from segmenter.push(block)
    yield from segmenter.finish()
