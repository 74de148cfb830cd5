"""Audio loading: decode with libsndfile, check, mix to mono, resample to the extractor's rate.

Short-clip policy (one rule, applied everywhere): a clip with fewer than
`MIN_SAMPLES` samples at `SAMPLE_RATE` after resampling is *rejected* with
`TooShortAudioError`. HuBERT/wav2vec2's convolutional feature encoder has a
receptive field of 400 samples (25 ms at 16 kHz) and crashes below it; padding
such a clip would invent most of its content, so we refuse it and say why.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from toolkit.errors import (
    CorruptAudioError,
    EmptyFileError,
    NonFiniteAudioError,
    TooShortAudioError,
    TruncatedAudioError,
    UnreadableFileError,
    ZeroLengthAudioError,
)

SAMPLE_RATE = 16_000
"""The rate every supported SSL extractor expects."""

MIN_SAMPLES = 400
"""Receptive field of the conv feature encoder (kernel 10 stride 5, then six kernels of 3/2)."""

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".mp3"})
"""File name endings treated as audio when a folder is scanned."""

# Resampling settings are part of the feature identity (the cache key uses them).
RESAMPLE_METHOD = "sinc_interp_hann"
RESAMPLE_LOWPASS_WIDTH = 6
RESAMPLE_ROLLOFF = 0.99


@dataclass(frozen=True)
class Audio:
    """A decoded clip: mono float32 samples at `sample_rate`."""

    path: Path
    samples: np.ndarray
    sample_rate: int
    original_rate: int
    original_channels: int

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds (the same before and after resampling)."""
        return self.num_samples / self.sample_rate


def resampled_length(num_samples: int, from_rate: int, to_rate: int) -> int:
    """How many samples torchaudio's resampler returns for `num_samples` input samples."""
    if from_rate == to_rate:
        return num_samples
    g = math.gcd(from_rate, to_rate)
    return math.ceil(num_samples * (to_rate // g) / (from_rate // g))


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited sinc resampling (torchaudio), float32 in and out."""
    if from_rate == to_rate:
        return samples
    import torch
    import torchaudio.functional as taf

    out = taf.resample(
        torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
        from_rate,
        to_rate,
        lowpass_filter_width=RESAMPLE_LOWPASS_WIDTH,
        rolloff=RESAMPLE_ROLLOFF,
        resampling_method=RESAMPLE_METHOD,
    )
    return out.numpy().astype(np.float32, copy=False)


def check_min_samples(path: str | Path, num_samples: int, min_samples: int = MIN_SAMPLES,
                      sample_rate: int = SAMPLE_RATE) -> None:
    """Apply the reject policy for short clips."""
    if num_samples < min_samples:
        have_ms, need_ms = 1000 * num_samples / sample_rate, 1000 * min_samples / sample_rate
        raise TooShortAudioError(
            path,
            f"{num_samples} samples at {sample_rate} Hz ({have_ms:.1f} ms); "
            f"the extractor needs at least {min_samples} ({need_ms:.0f} ms)",
        )


def read_audio(path: str | Path) -> Audio:
    """Decode a file as it is (its own rate), mixed to mono, with every file-level check.

    Raises a subclass of `AudioError` naming the file for: missing/unreadable,
    0-byte, corrupt or unknown format, truncated, zero-length and non-finite audio.
    """
    path = Path(path)
    _check_file(path)
    _check_riff_truncation(path)
    try:
        f = sf.SoundFile(str(path))
    except (RuntimeError, TypeError, ValueError) as e:  # LibsndfileError is a RuntimeError
        raise CorruptAudioError(path, f"not a readable audio file ({_libsndfile_says(e)})") from e
    with f:
        rate, channels, declared = f.samplerate, f.channels, f.frames
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (RuntimeError, ValueError) as e:
            raise CorruptAudioError(
                path, f"the header is valid but decoding failed partway; the file is truncated "
                f"or corrupt ({_libsndfile_says(e)})") from e

    if data.shape[0] < declared:
        raise TruncatedAudioError(
            path, f"header declares {declared} frames but only {data.shape[0]} could be decoded"
        )
    if data.shape[0] == 0:
        raise ZeroLengthAudioError(path, "the file holds a header but no audio samples")
    finite = np.isfinite(data)
    if not finite.all():
        bad = int((~finite).sum())
        first = int(np.argmin(finite.all(axis=1)))
        raise NonFiniteAudioError(
            path, f"{bad} sample(s) are NaN or infinite (first at frame {first})"
        )
    mono = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]
    return Audio(path, np.ascontiguousarray(mono), rate, rate, channels)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
               min_samples: int = MIN_SAMPLES) -> Audio:
    """Decode, check, mix to mono and resample to `sample_rate`; reject too-short clips."""
    audio = validate_audio(path, sample_rate, min_samples)
    samples = resample(audio.samples, audio.original_rate, sample_rate)
    return Audio(audio.path, samples, sample_rate, audio.original_rate, audio.original_channels)


def validate_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
                   min_samples: int = MIN_SAMPLES) -> Audio:
    """Every check `load_audio` makes, without paying for the resampling.

    Returns the clip at its original rate; use it to scan a corpus.
    """
    audio = read_audio(path)
    check_min_samples(
        audio.path,
        resampled_length(audio.num_samples, audio.original_rate, sample_rate),
        min_samples,
        sample_rate,
    )
    return audio


def _libsndfile_says(e: Exception) -> str:
    return str(getattr(e, "error_string", None) or e).strip()


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError as e:
        raise UnreadableFileError(path, "file not found") from e
    except OSError as e:
        raise UnreadableFileError(path, f"cannot access the file ({e.strerror})") from e
    if not path.is_file():
        raise UnreadableFileError(path, "not a regular file")
    if st.st_size == 0:
        raise EmptyFileError(path, "the file is empty (0 bytes)")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as e:
        raise UnreadableFileError(path, f"cannot read the file ({e.strerror})") from e


def _check_riff_truncation(path: Path) -> None:
    """libsndfile silently shortens a WAV whose data chunk runs past the end of the file.

    Walk the RIFF chunks ourselves and compare the declared data size with what is there.
    Streaming writers leave the size as 0 or 0xFFFFFFFF ("unknown"); those are not flagged.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        block_align = 1
        while pos + 8 <= size:
            fh.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
            if chunk_id == b"fmt ":
                fmt = fh.read(min(chunk_size, 16))
                if len(fmt) >= 14:
                    block_align = max(1, struct.unpack("<H", fmt[12:14])[0])
            elif chunk_id == b"data":
                available = size - (pos + 8)
                if chunk_size in (0, 0xFFFFFFFF) or chunk_size <= available:
                    return
                declared_frames = chunk_size // block_align
                held_frames = available // block_align
                missing = 100 * (1 - held_frames / declared_frames)
                raise TruncatedAudioError(
                    path,
                    f"truncated: the WAV header declares {declared_frames} frames but the file "
                    f"holds {held_frames} ({missing:.0f}% missing)",
                )
            pos += 8 + chunk_size + (chunk_size & 1)
