"""Band-limited sinc resampling in NumPy, equal to torchaudio's `functional.resample`
(method sinc_interp_hann) within float32 rounding, in memory bounded for any rates.

torchaudio builds one kernel row per output phase, `new / gcd` rows of
`orig / gcd + 2 * width` taps, and convolves with it. When the two rates share
almost no factor (44101 Hz to 16 kHz: 16000 rows of 44135 taps) that kernel alone
takes gigabytes. Every row is zero outside `2 * width` taps around its centre,
though, so here each output sample is computed from those taps only: a table of
`phases x taps` weights, applied to blocks of output samples.

y[j] = scale * sum_n x[n] * sinc(t) * cos^2(pi t / (2 w)),  t = base * (n / orig - j / new),
|t| < w (the lowpass filter width), base = rolloff * min(orig, new), scale = base / orig.
"""

from __future__ import annotations

import math

import numpy as np

_BLOCK_VALUES = 1 << 22
"""Taps gathered per block: tens of MB whatever the rates."""

_FEW_PHASES = 1024


def resampled_length(num_samples: int, from_rate: int, to_rate: int) -> int:
    """How many samples resampling `num_samples` from `from_rate` to `to_rate` gives."""
    if from_rate == to_rate:
        return num_samples
    g = math.gcd(from_rate, to_rate)
    return math.ceil(num_samples * (to_rate // g) / (from_rate // g))


def _phase_table(orig: int, new: int, lowpass_width: int,
                 rolloff: float) -> tuple[np.ndarray, np.ndarray]:
    """Per output phase: the first input offset (relative to orig * k) and the tap weights.

    The weights are computed in float32 in torchaudio's order of operations, so they
    round as its kernel does."""
    f32 = np.float32
    base = min(orig, new) * rolloff
    reach = lowpass_width * orig / base          # input samples either side of the centre
    taps = 2 * math.ceil(reach) + 2
    phase = np.arange(new)
    first = np.floor(phase * orig / new - reach).astype(np.int64)
    n = first[:, None] + np.arange(taps)[None, :]                 # input offsets
    t = (-phase.astype(f32) / f32(new))[:, None] + n.astype(f32) / f32(orig)
    t *= f32(base)
    t = np.clip(t, -lowpass_width, lowpass_width).astype(f32)
    window = np.cos(t * f32(math.pi) / f32(lowpass_width) / f32(2)) ** 2
    t *= f32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        sinc = np.where(t == 0, f32(1.0), np.sin(t) / t).astype(f32)
    return first, sinc * (window * f32(base / orig))


def resample(samples: np.ndarray, from_rate: int, to_rate: int, *, lowpass_width: int = 6,
             rolloff: float = 0.99) -> np.ndarray:
    """Resample 1-D float samples; float32 out. Memory: the table and one block."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected 1-D samples, got shape {x.shape}")
    return StreamResampler(from_rate, to_rate, lowpass_width=lowpass_width,
                           rolloff=rolloff).flush(x)


class StreamResampler:
    """`resample` over a stream: push blocks of input, get every output sample whose taps
    have all arrived, and the rest on `flush`. The outputs equal resampling the whole
    signal at once, so a long recording resamples in memory bounded by one block."""

    def __init__(self, from_rate: int, to_rate: int, *, lowpass_width: int = 6,
                 rolloff: float = 0.99):
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
        self.from_rate, self.to_rate = from_rate, to_rate
        g = math.gcd(from_rate, to_rate)
        self.orig, self.new = from_rate // g, to_rate // g
        self.passthrough = from_rate == to_rate
        if not self.passthrough:
            self.first, self.weights = _phase_table(self.orig, self.new, lowpass_width, rolloff)
            # input offsets, relative to orig * k, that output period k reads: [lo, hi)
            self.lo = int(self.first.min())
            self.hi = int(self.first.max()) + self.weights.shape[1]
        self.received = 0               # input samples pushed so far
        self.emitted = 0                # output samples returned so far
        self.period = 0                 # next output period k (outputs new*k .. new*k + new-1)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0           # input index of buffer[0]

    def push(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        self.received += x.size
        if self.passthrough:
            self.emitted += x.size
            return x
        self.buffer = np.concatenate([self.buffer, x]) if self.buffer.size else x
        # period k is complete once input orig * k + hi - 1 has arrived
        out = self._emit((self.received - self.hi) // self.orig + 1)
        self.emitted += out.size  # never past the final length: hi > orig (see _phase_table)
        return out

    def flush(self, last: np.ndarray | None = None) -> np.ndarray:
        """The outputs left (after the `last` block, if given), with the signal taken as zero
        after its end, as torchaudio does."""
        x = self._take(np.zeros(0, dtype=np.float32) if last is None else last)
        total = resampled_length(self.received, self.from_rate, self.to_rate)
        if self.passthrough:
            self.emitted += x.size
            return x
        out = self._emit(-(-total // self.new))
        out = out[: max(0, total - self.emitted)]
        self.emitted += out.size
        return out

    def _take(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block, dtype=np.float32).reshape(-1)
        self.received += x.size
        if not self.passthrough and x.size:
            self.buffer = np.concatenate([self.buffer, x]) if self.buffer.size else x
        return x

    def _emit(self, end_period: int) -> np.ndarray:
        if end_period <= self.period:
            return np.zeros(0, dtype=np.float32)
        start_in = self.orig * self.period + self.lo
        stop_in = self.orig * (end_period - 1) + self.hi
        local = np.zeros(stop_in - start_in + self.orig, dtype=np.float32)  # zeros beyond ends
        a = max(start_in, self.buffer_start)
        b = min(stop_in, self.buffer_start + self.buffer.size)
        if b > a:
            local[a - start_in: b - start_in] = self.buffer[a - self.buffer_start:
                                                            b - self.buffer_start]
        out = np.empty(self.new * (end_period - self.period), dtype=np.float32)
        apply = _by_phase if self.new <= _FEW_PHASES else _by_block
        apply(local, out, self.first - self.lo, self.weights, self.orig, self.new)
        self.period = end_period
        keep_from = self.orig * self.period + self.lo
        if keep_from > self.buffer_start:
            self.buffer = self.buffer[keep_from - self.buffer_start:].copy()
            self.buffer_start = keep_from
        return out


def _by_phase(padded: np.ndarray, out: np.ndarray, first: np.ndarray, weights: np.ndarray,
              orig: int, new: int) -> None:
    """Few phases (common rates): each phase's outputs are a strided view times its taps."""
    taps = weights.shape[1]
    step = padded.strides[0]
    for phase in range(min(new, out.size)):
        rows = len(range(phase, out.size, new))
        for k0 in range(0, rows, _BLOCK_VALUES // taps):
            k1 = min(rows, k0 + _BLOCK_VALUES // taps)
            view = np.lib.stride_tricks.as_strided(
                padded[first[phase] + orig * k0:], shape=(k1 - k0, taps),
                strides=(orig * step, step), writeable=False)
            out[phase + new * k0: phase + new * k1: new] = view @ weights[phase]


def _by_block(padded: np.ndarray, out: np.ndarray, first: np.ndarray, weights: np.ndarray,
              orig: int, new: int) -> None:
    """Many phases (rates that share few factors): gather each output's taps in blocks."""
    taps = weights.shape[1]
    block = max(1, _BLOCK_VALUES // taps)
    offsets = np.arange(taps)
    for start in range(0, out.size, block):
        j = np.arange(start, min(start + block, out.size))
        phase, k = j % new, j // new
        gathered = padded[(orig * k + first[phase])[:, None] + offsets[None, :]]
        out[start: start + j.size] = np.einsum("ij,ij->i", gathered, weights[phase])
