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

A stream holds one source's state; the recognizer computes. `decode_streams` (also
`Recognizer.decode_streams`) classifies the ready windows of many streams of one model
together, equal-length windows sharing a batch, as sherpa-onnx decodes several online
streams at once: what a service with many live sources on one model needs. Each stream's
results equal decoding it alone (within float rounding of a batched call).

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
from emo_toolkit.runtime.errors import EmoToolkitError
from emo_toolkit.runtime.predictions import Prediction
from emo_toolkit.runtime.rules import WINDOWS
from emo_toolkit.runtime.windows import Window

STREAM_NAME = "<stream>"
"""How errors name a stream."""

HOP_FRACTION = float(WINDOWS["hop_fraction"])
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
    def logits_or_failures(self, clips: Sequence[np.ndarray], batch_size: int
                           ) -> list[np.ndarray | EmoToolkitError]: ...
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


@dataclass(frozen=True)
class _Pending:
    """A ready window not yet classified: [start, end) in model-rate samples."""

    index: int
    start: int
    end: int
    last: bool  # the window after the input finished (the last `window` samples)


class StreamDecodeError(ValueError):
    """A window the model failed on while decoding several streams: `stream` is the
    failing stream's position in the list. No stream was changed by the call."""

    def __init__(self, stream: int, error: EmoToolkitError):
        super().__init__(f"stream {stream}: {error}")
        self.stream, self.error = stream, error


DECODE_BATCH = int(WINDOWS["decode_batch"])
"""The most windows one call of decode_streams puts in a batch."""


def decode_streams(recognizer: Classifier, streams: Sequence[Stream], limit: int | None = None,
                   batch_size: int = DECODE_BATCH) -> list[list[WindowPrediction]]:
    """The ready windows (at most `limit` per stream) of streams of `recognizer`, classified
    together: per stream, its windows oldest first. A window the model fails on (alone,
    after its batch failed) raises StreamDecodeError and leaves every stream as it was."""
    pending = []
    for k, stream in enumerate(streams):
        if stream.recognizer is not recognizer:
            raise ValueError(f"stream {k} belongs to another recognizer")
        if any(stream is other for other in streams[:k]):
            raise ValueError(f"stream {k} is given twice")
        pending += [(k, w) for w in stream.pending(limit)]
    rows = recognizer.logits_or_failures([streams[k].clip(w) for k, w in pending],
                                         batch_size) if pending else []
    predictions = []
    for (k, _), row in zip(pending, rows, strict=True):
        if not isinstance(row, np.ndarray):
            raise StreamDecodeError(k, row)
        try:
            predictions.append(recognizer.prediction(row))
        except EmoToolkitError as e:
            raise StreamDecodeError(k, e) from e
    results: list[list[WindowPrediction]] = [[] for _ in streams]
    for (k, w), prediction in zip(pending, predictions, strict=True):
        results[k].append(streams[k].finish(w, prediction))
    return results


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
        self.window = recognizer.window(window).samples
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
        self.closed = False     # the input finished
        self._last_done = False  # the last window (after the input finished) is classified
        self._smoothed: np.ndarray | None = None

    @property
    def window_s(self) -> float:
        return self.window / self.recognizer.sample_rate

    @property
    def hop_s(self) -> float:
        return self.hop / self.recognizer.sample_rate

    @property
    def ready(self) -> int:
        """Windows ready to classify: complete grid windows not yet computed or skipped, then
        (after the input finished) the last window, once the grid's are done."""
        grid = self._grid_ready()
        return grid + (grid == 0 and self._last_due(self.last_end))

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

    def input_finished(self) -> None:
        """End the input: the resampler's last samples come in, and the last window (the
        last `window` seconds, when samples after the last window remain) becomes ready."""
        if not self.closed:
            self._append(self.resampler.flush())
            self.closed = True

    def compute(self, limit: int | None = None) -> list[WindowPrediction]:
        """Classify the ready windows (at most `limit`), oldest first, one per call: a
        window's logits then do not depend on how the stream's blocks were cut. A window
        the model fails on raises its error, and stays ready."""
        try:
            return decode_streams(self.recognizer, [self], limit, batch_size=1)[0]
        except StreamDecodeError as e:
            raise e.error from None

    def skip(self, keep: int = 1) -> int:
        """Drop all ready grid windows but the newest `keep`; how many were dropped."""
        drop = max(0, self._grid_ready() - keep)
        self.next_window += drop
        self.skipped += drop
        self._drop_before(self.next_window * self.hop)
        return drop

    def push(self, samples: np.ndarray) -> list[WindowPrediction]:
        """`accept` then `compute`: the windows this block completed."""
        self.accept(samples)
        return self.compute()

    def flush(self) -> list[WindowPrediction]:
        """`input_finished` then `compute`: the windows left, and the last one. Nothing for
        a stream shorter than the model's minimum."""
        self.input_finished()
        return self.compute()

    def pending(self, limit: int | None = None) -> list[_Pending]:
        """The ready windows (at most `limit`), oldest first, without taking them: what
        decode_streams classifies before it `finish`es each."""
        grid = self._grid_ready()
        n = grid if limit is None else min(limit, grid)
        windows = [_Pending(i, i * self.hop, i * self.hop + self.window, False)
                   for i in range(self.next_window, self.next_window + n)]
        end = windows[-1].end if windows else self.last_end
        if n == grid and (limit is None or n < limit) and self._last_due(end):
            windows.append(_Pending(self.next_window + n, max(0, self.received - self.window),
                                    self.received, True))
        return windows

    def clip(self, w: _Pending) -> np.ndarray:
        """A pending window's samples at the model's rate."""
        return self.buffer[w.start - self.buffer_start:w.end - self.buffer_start]

    def finish(self, w: _Pending, prediction: Prediction) -> WindowPrediction:
        """Take the oldest pending window with its prediction: smoothing, then the samples
        no later window needs are dropped."""
        recognizer = self.recognizer
        smoothed = None
        if self.smoothing is not None:
            p = np.array([prediction.probabilities[k] for k in recognizer.labels])
            a = self.smoothing.alpha
            self._smoothed = p if self._smoothed is None else a * p + (1 - a) * self._smoothed
            smoothed = dict(zip(recognizer.labels, self._smoothed.tolist(), strict=True))
        self.next_window, self.last_end = w.index + 1, w.end
        self._last_done |= w.last
        if self._last_done:
            self.buffer = np.zeros(0, np.float32)
        else:
            self._drop_before(self.next_window * self.hop)
        rate = recognizer.sample_rate
        return WindowPrediction(w.index, w.start / rate, w.end / rate, prediction,
                                self.smoothing, smoothed)

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

    def _grid_ready(self) -> int:
        complete = (self.received - self.window) // self.hop + 1 \
            if self.received >= self.window else 0
        return max(0, complete - self.next_window)

    def _last_due(self, last_end: int) -> bool:
        """Whether the last window is still to classify when the grid's end at `last_end`."""
        return self.closed and not self._last_done and self.received > last_end and \
            self.received >= self.recognizer.min_samples
