"""Audio loading: decode with libsndfile, check, mix to mono, resample to the extractor's rate.

Short-clip policy (one rule, applied everywhere): a clip with fewer than
`MIN_SAMPLES` samples at `SAMPLE_RATE` after resampling is *rejected* with
`TooShortAudioError`. HuBERT/wav2vec2's convolutional feature encoder has a
receptive field of 400 samples (25 ms at 16 kHz) and crashes below it; padding
such a clip would invent most of its content, so we refuse it and say why.

Limits that keep one hostile file from taking the machine: a supported range of
input rates (`MIN_RATE`..`MAX_RATE`, checked from the header before decoding), a
longest clip (`MAX_SECONDS`, also from the header, then enforced while decoding in
blocks), and a largest sample magnitude (`MAX_ABS_SAMPLE`): float files with
finite but enormous samples would overflow inside the model. Decoding mixes to
mono block by block, so memory follows the mono clip, not the channel count, and
resampling (toolkit/runtime/resample.py) takes bounded memory at any rate in the range.
"""

from __future__ import annotations

import io
import math
import stat
import struct
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from emo_toolkit.runtime.errors import (
    AudioError,
    CorruptAudioError,
    EmptyFileError,
    NonFiniteAudioError,
    OutOfRangeAudioError,
    TooLongAudioError,
    TooShortAudioError,
    TruncatedAudioError,
    UnreadableFileError,
    UnsupportedRateError,
    ZeroLengthAudioError,
)
from emo_toolkit.runtime.io import native_stderr
from emo_toolkit.runtime.resample import StreamResampler, resampled_length
from emo_toolkit.runtime.resample import resample as _resample
from emo_toolkit.runtime.rules import AUDIO, RESAMPLE

SAMPLE_RATE = 16_000
"""The rate every supported SSL extractor expects."""

MIN_SAMPLES = 400
"""Receptive field of the conv feature encoder (kernel 10 stride 5, then six kernels of 3/2)."""

MIN_RATE, MAX_RATE = int(AUDIO["min_rate"]), int(AUDIO["max_rate"])
"""Input sample rates accepted (Hz): telephone audio up to studio rates (rules.json)."""

MAX_CHANNELS = 64
"""Most channels a waveform or stream given as samples may have."""

MAX_SECONDS = float(AUDIO["max_clip_seconds"])
"""Longest clip taken whole (rules.json). HuBERT's attention grows with the square of the length;
cut longer recordings into clips first."""

MAX_ABS_SAMPLE = float(AUDIO["max_abs_sample"])
"""Largest accepted |sample| (full scale is 1.0): far larger values overflow in the model
(rules.json)."""

_DECODE_BLOCK_VALUES = 1 << 22   # samples (all channels) decoded at a time

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".mp3"})
"""File name endings treated as audio when a folder is scanned."""

# Resampling settings are part of the feature identity (the cache key uses them).
RESAMPLE_METHOD = "sinc_interp_hann"
RESAMPLE_LOWPASS_WIDTH = int(RESAMPLE["lowpass_width"])
RESAMPLE_ROLLOFF = float(RESAMPLE["rolloff"])


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


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited sinc resampling with the toolkit's settings, float32 in and out."""
    return _resample(samples, from_rate, to_rate, lowpass_width=RESAMPLE_LOWPASS_WIDTH,
                     rolloff=RESAMPLE_ROLLOFF)


def stream_resampler(from_rate: int, to_rate: int) -> StreamResampler:
    """`resample` block by block (a recording read in blocks), with the same settings."""
    return StreamResampler(from_rate, to_rate, lowpass_width=RESAMPLE_LOWPASS_WIDTH,
                           rolloff=RESAMPLE_ROLLOFF)


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


def read_audio(path: str | Path, max_seconds: float = MAX_SECONDS) -> Audio:
    """Decode a file as it is (its own rate), mixed to mono, with every file-level check.

    Raises a subclass of `AudioError` naming the file for: missing/unreadable,
    0-byte, corrupt or unknown format, unsupported rate, too long, truncated,
    zero-length, non-finite and out-of-range audio.
    """
    with AudioStream(path, max_seconds) as stream:
        blocks = list(stream.blocks())
        mono = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        return Audio(stream.path, np.ascontiguousarray(mono, dtype=np.float32),
                     stream.sample_rate, stream.sample_rate, stream.channels)


class _ReadGuard(io.RawIOBase):
    """The file as libsndfile reads it. An OSError while reading (EIO from a failing disk,
    a network share gone) would escape through soundfile's C callback, print a traceback
    and leave libsndfile to call the file malformed or "System error."; here it is kept,
    the read ends, and the caller reports the file as unreadable with the OS's reason."""

    def __init__(self, path: Path):
        super().__init__()
        self._raw = _open_raw(path)
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self.error is not None:
            return 0
        try:
            return self._raw.readinto(buffer) or 0
        except OSError as e:
            self.error = e
            return 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._raw.seek(offset, whence)
        except OSError as e:
            self.error = self.error or e
            return self._raw.tell()

    def tell(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._raw.close()
        super().close()

    def raise_error(self, path: Path) -> None:
        """Raise the kept read error as this file's UnreadableFileError, if there is one."""
        if self.error is not None:
            raise _unreadable(path, self.error) from self.error


def _open_raw(path: Path) -> io.RawIOBase:
    return path.open("rb", buffering=0)


def _unreadable(path: Path, e: OSError) -> UnreadableFileError:
    return UnreadableFileError(path, f"cannot read the file ({e.strerror or e})")


def _sound_file(path: Path, guard: _ReadGuard) -> sf.SoundFile:
    """libsndfile on the guarded file; a file it cannot open is corrupt, unless a read error
    was behind it (then unreadable). The guard is closed on failure."""
    try:  # a file object: any path the OS takes works, whatever its encoding
        return sf.SoundFile(guard)
    except (RuntimeError, TypeError, ValueError) as e:  # LibsndfileError is a RuntimeError
        guard.close()
        guard.raise_error(path)
        raise CorruptAudioError(path, f"not a readable audio file ({_libsndfile_says(e)})"
                                ) from e
    except BaseException:
        guard.close()
        raise


def read_header(path: str | Path) -> tuple[int, int]:
    """(frames, sample rate) from the header alone, with the errors AudioStream raises for
    a file that cannot be opened or read."""
    path = Path(path)
    _check_file(path)
    try:
        guard = _ReadGuard(path)
    except OSError as e:
        raise _unreadable(path, e) from e
    with guard, _sound_file(path, guard) as f:
        return f.frames, f.samplerate


class AudioStream:
    """A file decoded block by block and mixed to mono at its own rate, with every check
    of `read_audio`: memory follows one block, not the recording. `max_seconds=None`
    takes recordings of any length (a consumer that cuts them into clips)."""

    def __init__(self, path: str | Path, max_seconds: float | None = MAX_SECONDS):
        self.path = Path(path)
        self.max_seconds = max_seconds
        _check_file(self.path)
        try:
            _check_riff_truncation(self.path)
            _check_ogg_pages(self.path)
            self._fh = _ReadGuard(self.path)
        except OSError as e:
            raise _unreadable(self.path, e) from e
        except AudioError:
            raise
        except (ArithmeticError, LookupError, ValueError, struct.error) as e:  # header fields
            raise CorruptAudioError(self.path, "the WAV header's fields contradict each other "
                                    f"({type(e).__name__}: {e})") from e
        self._file = _sound_file(self.path, self._fh)
        self.sample_rate, self.channels = self._file.samplerate, self._file.channels
        self.declared_frames = self._file.frames
        try:
            check_rate(self.path, self.sample_rate)
            if max_seconds is not None and self.declared_frames > self._max_frames:
                raise TooLongAudioError(self.path, _too_long(
                    self.declared_frames / self.sample_rate, max_seconds))
        except AudioError:
            self.close()
            raise

    @property
    def _max_frames(self) -> float:
        return math.inf if self.max_seconds is None else int(self.max_seconds * self.sample_rate)

    def blocks(self, frames: int | None = None) -> Iterator[np.ndarray]:
        """Mono float32 blocks of up to `frames` frames; the checks run on each block, and
        truncation and emptiness are raised after the last one."""
        step = frames or max(1, _DECODE_BLOCK_VALUES // max(1, self.channels))
        mp3 = self._file.format == "MP3"  # no checksum: mpg123's log is the sign of damage
        total = 0
        while True:
            try:
                with native_stderr() if mp3 else nullcontext([""]) as log:
                    block = self._file.read(step, dtype="float32", always_2d=True)
            except OSError as e:
                raise _unreadable(self.path, e) from e
            except (RuntimeError, ValueError) as e:
                self._fh.raise_error(self.path)
                raise CorruptAudioError(
                    self.path, f"the header is valid but decoding failed partway; the file is "
                    f"truncated or corrupt ({_libsndfile_says(e)})") from e
            self._fh.raise_error(self.path)
            if mp3 and "error" in log[0]:
                raise CorruptAudioError(self.path, "the MP3 decoder reported damaged frames "
                                        f"({_first_error(log[0])})")
            if block.shape[0] == 0:
                break
            check_samples(self.path, block, total)
            total += block.shape[0]
            if total > self._max_frames:
                raise TooLongAudioError(self.path, _too_long(total / self.sample_rate,
                                                             float(self.max_seconds or 0)))
            yield block.mean(axis=1, dtype=np.float32) if self.channels > 1 else block[:, 0]
        if total < self.declared_frames:
            raise TruncatedAudioError(self.path, f"header declares {self.declared_frames} "
                                      f"frames but only {total} could be decoded")
        if total == 0:
            raise ZeroLengthAudioError(self.path, "the file holds a header but no audio samples")

    def close(self) -> None:
        self._file.close()
        self._fh.close()

    def __enter__(self) -> AudioStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_rate(name: str | Path, rate: int) -> None:
    """UnsupportedRateError naming `name` unless `rate` (Hz) is within MIN_RATE..MAX_RATE."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedRateError(name, f"sample rate {rate} Hz is outside the supported "
                                   f"{MIN_RATE}-{MAX_RATE} Hz")


def too_long(seconds: float, limit: float) -> str:
    """"S s is longer than the L s", S with the digits that show it (60.02, never 60.0)."""
    digits = 1
    while round(seconds, digits) <= limit and digits < 6:
        digits += 1
    return f"{seconds:.{digits}f} s is longer than the {limit:g} s"


def _too_long(seconds: float, limit: float) -> str:
    return (f"{too_long(seconds, limit)} this toolkit takes as one clip; cut the recording "
            "into shorter clips")


def check_samples(path: str | Path, block: np.ndarray, offset: int = 0) -> None:
    """Refuse NaN/inf, and finite samples so large that the model's sums would overflow.

    `block` is (frames, channels); `offset` is the frame index of its first row."""
    finite = np.isfinite(block)
    if not finite.all():
        bad = int((~finite).sum())
        first = offset + int(np.argmin(finite.all(axis=1)))
        raise NonFiniteAudioError(
            path, f"{bad} sample(s) are NaN or infinite (first at frame {first})")
    peak = float(np.abs(block).max(initial=0.0))
    if peak > MAX_ABS_SAMPLE:
        first = offset + int(np.argmax((np.abs(block) > MAX_ABS_SAMPLE).any(axis=1)))
        raise OutOfRangeAudioError(
            path, f"sample magnitude {peak:.3g} at frame {first} is beyond the accepted "
            f"{MAX_ABS_SAMPLE:g} (full scale is 1.0)")


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
               min_samples: int = MIN_SAMPLES, max_seconds: float = MAX_SECONDS) -> Audio:
    """Decode, check, mix to mono and resample to `sample_rate`; reject too-short clips."""
    audio = validate_audio(path, sample_rate, min_samples, max_seconds)
    samples = resample(audio.samples, audio.original_rate, sample_rate)
    return Audio(audio.path, samples, sample_rate, audio.original_rate, audio.original_channels)


def validate_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
                   min_samples: int = MIN_SAMPLES, max_seconds: float = MAX_SECONDS) -> Audio:
    """Every check `load_audio` makes, without paying for the resampling.

    Returns the clip at its original rate; use it to scan a corpus.
    """
    audio = read_audio(path, max_seconds)
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
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFileError(path, "not a regular file")
    if st.st_size == 0:
        raise EmptyFileError(path, "the file is empty (0 bytes)")


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
                if declared_frames == 0:
                    raise CorruptAudioError(path, f"the WAV header's block align ({block_align} "
                                            f"bytes) is larger than its data ({chunk_size} bytes)")
                held_frames = available // block_align
                missing = 100 * (1 - held_frames / declared_frames)
                raise TruncatedAudioError(
                    path,
                    f"truncated: the WAV header declares {declared_frames} frames but the file "
                    f"holds {held_frames} ({missing:.0f}% missing)",
                )
            pos += 8 + chunk_size + (chunk_size & 1)


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7 if r & 0x80000000 else r << 1) & 0xFFFFFFFF
        table.append(r)
    return table


_OGG_CRC = _ogg_crc_table()  # Ogg's CRC-32: polynomial 0x04C11DB7, not reflected (not zlib's)
_OGG_EOS = 0x04              # the header flag of a logical stream's last page
_MAX_OGG_BYTES = 64 << 20    # an Ogg file is checked in memory up to this size


def _check_ogg_pages(path: Path) -> None:
    """libsndfile decodes a truncated or damaged Ogg (Vorbis, Opus) without an error: the
    frame count comes from the last page that is there, and a page that fails its checksum
    is dropped. Walk the pages ourselves: each must follow the last up to the end of the
    file, match its CRC, and the stream must end on a page flagged end-of-stream."""
    with path.open("rb") as fh:
        if fh.read(4) != b"OggS" or path.stat().st_size > _MAX_OGG_BYTES:
            return
        data = b"OggS" + fh.read()
    pos, flags = 0, 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            raise TruncatedAudioError(path, f"the Ogg stream breaks off at byte {pos} of "
                                      f"{len(data)} (truncated or damaged)")
        flags, count = data[pos + 5], data[pos + 26]
        end = pos + 27 + count + sum(data[pos + 27:pos + 27 + count])
        if pos + 27 + count > len(data) or end > len(data):
            raise TruncatedAudioError(path, f"the Ogg page at byte {pos} runs past the end of "
                                      "the file (truncated)")
        crc = 0
        page = bytearray(data[pos:end])
        page[22:26] = b"\0\0\0\0"
        for byte in page:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ byte]
        if crc != struct.unpack_from("<I", data, pos + 22)[0]:
            raise CorruptAudioError(path, f"the Ogg page at byte {pos} fails its checksum "
                                    "(the file is damaged)")
        pos = end
    if not flags & _OGG_EOS:
        raise TruncatedAudioError(path, "the Ogg stream has no end-of-stream page (truncated)")


def _first_error(log: str) -> str:
    return next((line.strip() for line in log.splitlines() if "error" in line), "")[:200]
