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
    if from_rate == to_rate:
        return np.asarray(samples, dtype=np.float32)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected 1-D samples, got shape {x.shape}")
    g = math.gcd(from_rate, to_rate)
    orig, new = from_rate // g, to_rate // g
    first, weights = _phase_table(orig, new, lowpass_width, rolloff)
    taps = weights.shape[1]
    pad_left = max(0, -int(first.min()))
    padded = np.zeros(pad_left + x.size + taps + orig, dtype=np.float32)
    padded[pad_left: pad_left + x.size] = x
    out = np.empty(resampled_length(x.size, from_rate, to_rate), dtype=np.float32)
    if new <= _FEW_PHASES:
        _by_phase(padded, out, first + pad_left, weights, orig, new)
    else:
        _by_block(padded, out, first + pad_left, weights, orig, new)
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
