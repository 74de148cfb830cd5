"""Uncompressed audio as it arrives on a pipe: raw PCM frames, or a WAV stream whose header
comes first and whose length is not known (recorders write 0 or 0xFFFFFFFF as the data
size). libsndfile needs to seek in a WAV file; a pipe cannot, so the header is read here.
The writing half (`wav_stream_header`, `s16le_bytes`) is what benchmarks and tests feed
the streaming commands with.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emo_toolkit.runtime.audio import MAX_CHANNELS, MAX_RATE, MIN_RATE
from emo_toolkit.runtime.errors import EmoToolkitError
from emo_toolkit.runtime.rules import AUDIO

RAW_FORMATS = {"s16le": ("<i2", 2, 32768.0), "s24le": ("", 3, 8388608.0),
               "s32le": ("<i4", 4, 2147483648.0), "f32le": ("<f4", 4, 1.0)}
"""Sample encodings: numpy dtype (s24le is unpacked by hand), bytes per sample, full scale."""

WAVE_PCM, _WAVE_FLOAT, _WAVE_EXTENSIBLE = 1, 3, 0xFFFE
_UNKNOWN_SIZE = 0xFFFFFFFF  # what a recorder writing to a pipe puts in the size fields
_MAX_HEADER_BYTES = int(AUDIO["max_wav_header_bytes"])  # chunks before "data" (LIST, fact...)
# larger than this are refused (rules.json: emo_classify --stream too)


class PcmError(EmoToolkitError, ValueError):
    """Input that is not the audio it claims to be."""


@dataclass(frozen=True)
class PcmFormat:
    encoding: str   # a key of RAW_FORMATS
    rate: int
    channels: int

    def __post_init__(self) -> None:
        if self.encoding not in RAW_FORMATS:
            raise PcmError(f"sample format {self.encoding!r} is not one of "
                           f"{', '.join(RAW_FORMATS)}")
        if not MIN_RATE <= self.rate <= MAX_RATE:
            raise PcmError(f"sample rate {self.rate} Hz is outside the supported "
                           f"{MIN_RATE}-{MAX_RATE} Hz")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise PcmError(f"{self.channels} channels: 1 to {MAX_CHANNELS} are supported")

    @property
    def frame_bytes(self) -> int:
        return RAW_FORMATS[self.encoding][1] * self.channels


class PcmDecoder:
    """Bytes in, float32 (frames, channels) out; a partial frame waits for the next bytes."""

    def __init__(self, fmt: PcmFormat):
        self.format = fmt
        self.pending = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self.pending + data
        whole = len(data) - len(data) % self.format.frame_bytes
        self.pending = data[whole:]
        dtype, width, scale = RAW_FORMATS[self.format.encoding]
        raw = data[:whole]
        if width == 3:  # little-endian 24-bit: sign-extend into int32
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            values = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        else:
            values = np.frombuffer(raw, dtype)
        return (values.astype(np.float32) / np.float32(scale)).reshape(-1, self.format.channels)

    @property
    def leftover(self) -> int:
        """Bytes of an incomplete frame (at the end of input: a truncated stream)."""
        return len(self.pending)


def read_wav_header(read: Callable[[int], bytes]) -> PcmFormat:
    """The format of a WAV stream, reading up to the start of its "data" chunk with `read`
    (which returns exactly n bytes, or fewer at the end of input)."""
    head = read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise PcmError("not a WAV stream (no RIFF/WAVE header); for raw samples give "
                       "--format s16le|s24le|s32le|f32le with --rate and --channels")
    fmt: PcmFormat | None = None
    seen = 12
    while True:
        chunk = read(8)
        if len(chunk) < 8:
            raise PcmError("the WAV stream ended before its data chunk")
        kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"data":
            if fmt is None:
                raise PcmError("the WAV stream has no fmt chunk before its data")
            return fmt
        seen += 8 + size
        if seen > _MAX_HEADER_BYTES:
            raise PcmError(f"the WAV stream's header chunks exceed {_MAX_HEADER_BYTES} bytes")
        body = read(size + size % 2)
        if len(body) < size:
            raise PcmError(f"the WAV stream ended inside its {kind.decode('latin-1')!r} chunk")
        if kind == b"fmt ":
            fmt = _wav_format(body)


def _wav_format(body: bytes) -> PcmFormat:
    if len(body) < 16:
        raise PcmError("the WAV stream's fmt chunk is too short")
    tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID's first two bytes
    encoding = {(WAVE_PCM, 16): "s16le", (WAVE_PCM, 24): "s24le", (WAVE_PCM, 32): "s32le",
                (_WAVE_FLOAT, 32): "f32le"}.get((tag, bits))
    if encoding is None:
        raise PcmError(f"WAV sample format {tag} with {bits} bits is not supported in a stream "
                       "(16/24/32-bit PCM and 32-bit float are)")
    if channels < 1 or block_align != channels * bits // 8:
        raise PcmError(f"the WAV stream's header contradicts itself ({channels} channels of "
                       f"{bits} bits in frames of {block_align} bytes)")
    return PcmFormat(encoding, rate, channels)


def wav_stream_header(rate: int, channels: int = 1, bits: int = 16, tag: int = WAVE_PCM,
                      extra_chunk: bytes = b"") -> bytes:
    """A WAV header as a recorder writes it to a pipe: sizes unknown (0xFFFFFFFF), the data
    to follow; `extra_chunk` (a whole chunk) goes between fmt and data."""
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8,
                      channels * bits // 8, bits)
    return (b"RIFF" + struct.pack("<I", _UNKNOWN_SIZE) + b"WAVE" + b"fmt " +
            struct.pack("<I", len(fmt)) + fmt + extra_chunk + b"data" +
            struct.pack("<I", _UNKNOWN_SIZE))


def s16le_bytes(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as 16-bit little-endian PCM (clipped, rounded)."""
    return np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2").tobytes()
