"""Live audio: a stream per source, fed blocks of any size, classified window by window.

    stream = recognizer.stream(sample_rate=48_000, window=2.0, hop=0.5)
    for block in microphone_blocks():
        for result in stream.push(block):
            print(result.start, result.end, result.label)
    for result in stream.flush():
        ...

Windows are fixed: window k covers [k * hop, k * hop + window) of the stream (at the
model's rate, after the stream's own resampler, whose output equals resampling the
whole signal at once), and its result equals predicting those samples offline. When
the stream ends, `flush` classifies the last `window` seconds if samples after the
last window remain (or the whole stream, if it is shorter than a window but not
than the model's minimum). The stream keeps only the samples windows still need:
memory stays at about one window plus one block, whatever the stream's length.

A runner that cannot keep up (the model takes longer than `hop` per window) calls
`accept` and `compute` separately and `skip`s windows that waited too long; results
carry their window's index, so skips show as gaps, and `skipped` counts them.

Every block gets the checks a file gets (floating samples, finite, within
emo_toolkit.runtime.audio.MAX_ABS_SAMPLE): a bad block raises an error naming it and
is not taken, so the stream goes on with the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from emo_toolkit.runtime.audio import MAX_CHANNELS, check_rate, check_samples, stream_resampler
from emo_toolkit.runtime.checks import check_float, check_int
from emo_toolkit.runtime.predictions import Prediction
from emo_toolkit.runtime.windows import Window

STREAM_NAME = "<stream>"
"""How errors name a stream."""

HOP_FRACTION = 0.5
"""The default hop: half a window, so every moment is heard by two windows."""


class Classifier(Protocol):
    """What a stream needs of its Recognizer (which imports this module)."""

    @property
    def sample_rate(self) -> int: ...
    @property
    def min_samples(self) -> int: ...
    @property
    def labels(self) -> tuple[str, ...]: ...
    def window(self, window: float | Window | None = None) -> Window: ...
    def logits_of_clips(self, clips: Sequence[np.ndarray], batch_size: int
                        ) -> list[np.ndarray]: ...
    def prediction(self, logits: np.ndarray) -> Prediction: ...


@dataclass(frozen=True)
class Smoothing:
    """Exponential smoothing of successive windows' probabilities: each window's smoothed
    probabilities are `alpha` times its own plus (1 - alpha) times the previous window's
    smoothed ones (the first window's are its own)."""

    alpha: float

    def __post_init__(self) -> None:
        check_float("smoothing alpha", self.alpha, 0.0, 1.0, low_open=True)

    def to_json(self) -> dict[str, Any]:
        return {"method": "exponential", "alpha": self.alpha}


@dataclass(frozen=True)
class WindowPrediction:
    """One window of a stream: its index (from 0; skipped windows leave gaps), [start, end)
    in seconds from the stream's start, its prediction, and with smoothing, the smoothed
    probabilities and the label they rank first."""

    index: int
    start: float
    end: float
    prediction: Prediction
    smoothing: Smoothing | None = None
    smoothed: dict[str, float] | None = None

    @property
    def label(self) -> str:
        return self.prediction.label

    @property
    def smoothed_label(self) -> str | None:
        return None if self.smoothed is None else max(self.smoothed, key=self.smoothed.get)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        row = {"window": self.index, "start": round(self.start, 3), "end": round(self.end, 3),
               **self.prediction.to_json()}
        if self.smoothing is not None and self.smoothed is not None:
            row["smoothed"] = {**self.smoothing.to_json(), "label": self.smoothed_label,
                               "probabilities": {k: round(v, 6)
                                                 for k, v in self.smoothed.items()}}
        return row


class Stream:
    """See the module docstring. Made by `Recognizer.stream`."""

    def __init__(self, recognizer: Classifier, sample_rate: int,
                 window: float | Window | None = None,
                 hop: float | None = None, *, channels: int = 1,
                 smoothing: Smoothing | None = None):
        check_int("sample_rate", sample_rate, 1, 10**7)
        check_rate(STREAM_NAME, sample_rate)
        check_int("channels", channels, 1, MAX_CHANNELS)
        self.recognizer, self.sample_rate, self.channels = recognizer, sample_rate, channels
        self.resolved = recognizer.window(window)
        self.window = self.resolved.samples
        rate = recognizer.sample_rate
        if self.window < recognizer.min_samples:
            raise ValueError(f"a window of {self.window / rate:g} s is shorter than the "
                             f"model's shortest input ({recognizer.min_samples / rate:g} s)")
        if hop is None:
            self.hop = max(1, round(self.window * HOP_FRACTION))
        else:
            check_float("hop", hop, 0.0, self.window / rate, low_open=True)
            self.hop = max(1, round(hop * rate))
        self.smoothing = smoothing
        self.resampler = stream_resampler(sample_rate, rate)
        self.buffer = np.zeros(0, np.float32)  # model-rate samples from buffer_start on
        self.buffer_start = 0
        self.received = 0       # model-rate samples so far
        self.next_window = 0    # index of the next window to compute
        self.last_end = 0       # end (samples) of the last window computed
        self.blocks = 0         # blocks taken, for error messages
        self.frames = 0         # input frames taken, for error messages
        self.skipped = 0
        self.closed = False
        self._smoothed: np.ndarray | None = None

    @property
    def window_s(self) -> float:
        return self.window / self.recognizer.sample_rate

    @property
    def hop_s(self) -> float:
        return self.hop / self.recognizer.sample_rate

    @property
    def ready(self) -> int:
        """Complete windows not yet computed or skipped."""
        complete = (self.received - self.window) // self.hop + 1 if self.received >= self.window \
            else 0
        return max(0, complete - self.next_window)

    def accept(self, samples: np.ndarray) -> None:
        """Take a block: (frames,) or (frames, channels) floating samples at `sample_rate`.
        A bad block raises ValueError naming it, and is not taken."""
        if self.closed:
            raise ValueError(f"{STREAM_NAME}: the stream was flushed; start another")
        name = f"{STREAM_NAME} block {self.blocks + 1}"
        x = np.asarray(samples)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{name}: samples must be float32 or float64 in [-1, 1], got "
                             f"{x.dtype}")
        if x.ndim == 1 and self.channels == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.channels:
            shape = "(frames,)" if self.channels == 1 else f"(frames, {self.channels})"
            raise ValueError(f"{name}: expected {shape} samples, got shape {list(x.shape)}")
        check_samples(name, x, self.frames)
        self.blocks += 1
        self.frames += x.shape[0]
        mono = x.astype(np.float32).mean(axis=1, dtype=np.float32)
        self._append(self.resampler.push(mono))

    def compute(self, limit: int | None = None) -> list[WindowPrediction]:
        """Classify the ready windows (at most `limit`), oldest first."""
        n = self.ready if limit is None else min(limit, self.ready)
        results = []
        for _ in range(n):
            start = self.next_window * self.hop
            results.append(self._classify(self.next_window, start, start + self.window))
            self.next_window += 1
            self._drop_before(self.next_window * self.hop)
        return results

    def skip(self, keep: int = 1) -> int:
        """Drop all ready windows but the newest `keep`; how many were dropped."""
        drop = max(0, self.ready - keep)
        self.next_window += drop
        self.skipped += drop
        self._drop_before(self.next_window * self.hop)
        return drop

    def push(self, samples: np.ndarray) -> list[WindowPrediction]:
        """`accept` then `compute`: the windows this block completed."""
        self.accept(samples)
        return self.compute()

    def flush(self) -> list[WindowPrediction]:
        """End the stream: the windows left, and the last `window` seconds when samples
        after the last window remain. Nothing for a stream shorter than the model's
        minimum."""
        if self.closed:
            return []
        self._append(self.resampler.flush())
        results = self.compute()
        self.closed = True
        end = self.received
        if end > self.last_end and end >= self.recognizer.min_samples:
            results.append(self._classify(self.next_window, max(0, end - self.window), end))
            self.next_window += 1
        self.buffer = np.zeros(0, np.float32)
        return results

    # --- internals --------------------------------------------------------------------

    def _append(self, samples: np.ndarray) -> None:
        if samples.size:
            self.buffer = np.concatenate([self.buffer, samples]) if self.buffer.size \
                else samples
            self.received += samples.size

    def _drop_before(self, position: int) -> None:
        position = min(position, self.received - self.window)  # flush may need the last window
        if position > self.buffer_start:
            cut = min(position - self.buffer_start, self.buffer.size)
            self.buffer = self.buffer[cut:].copy()
            self.buffer_start += cut

    def _classify(self, index: int, start: int, end: int) -> WindowPrediction:
        clip = self.buffer[start - self.buffer_start:end - self.buffer_start]
        recognizer = self.recognizer
        prediction = recognizer.prediction(recognizer.logits_of_clips([clip], 1)[0])
        self.last_end = end
        smoothed = None
        if self.smoothing is not None:
            p = np.array([prediction.probabilities[k] for k in recognizer.labels])
            a = self.smoothing.alpha
            self._smoothed = p if self._smoothed is None else a * p + (1 - a) * self._smoothed
            smoothed = dict(zip(recognizer.labels, self._smoothed.tolist(), strict=True))
        rate = recognizer.sample_rate
        return WindowPrediction(index, start / rate, end / rate, prediction, self.smoothing,
                                smoothed)
