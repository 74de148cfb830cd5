"""emo-serve's HTTP protocol, one home for it: what a request may hold, the limits, and the
status each failure gets. No Ray here: the deployments (app.py) call these functions.

    POST /predict     an audio file's bytes (WAV, FLAC, Ogg, MP3: what libsndfile decodes)
                      with Content-Type audio/* or application/octet-stream; or raw samples,
                      Content-Type audio/x-float32 (little-endian float32, interleaved
                      channels) with ?rate=HZ[&channels=N]. Optional query: name=, the
                      reply's "file" (default "-"); segments=true, one row per segment
                      before the file row; window=SECONDS, the longest segment.
                      200: emo-predict's file row (a JSON object), or with segments=true
                      its segment rows and then the file row (a JSON array).
    GET /healthz      200 while the service answers.
    GET /readyz       200 once a model replica has loaded the model.
    GET /info         labels, sample rate, limits, precision, runtime, untrained.

Failures answer with an emo-predict error row ({"file", "error", "message", "untrained"})
and a 4xx status: 400 a bad query, 404/405 a wrong path or method, 413 a body over the
limit, 415 a content type that is not audio, 422 audio that cannot be classified (the
runtime's reason codes: corrupt, truncated, empty-file, zero-length, too-short, too-long,
non-finite, out-of-range, unsupported-rate); 408 comes from Ray Serve's request timeout.
5xx only when the service itself fails: 503 no model replica answered, 500 the model
failed on valid audio (inference-failed) or the service did (internal-error).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emo_toolkit.runtime.audio import MAX_CHANNELS, MAX_RATE, MAX_SECONDS, MIN_RATE
from emo_toolkit.runtime.rules import REASON
from emo_toolkit.runtime.settings import setting

RAW_TYPE = "audio/x-float32"
"""Raw samples: little-endian float32, channels interleaved; the rate in the query."""
ENCODED_TYPES = frozenset({"application/octet-stream"})
"""Besides audio/*: bytes that libsndfile decodes, whatever the client calls them."""

DEFAULT_MAX_BODY_MB = 64.0
"""Largest request body (MB): 35 minutes of 16 kHz 16-bit mono WAV, 17 of float32."""
DEFAULT_MAX_DURATION_S = 1800.0
"""Longest recording a request may hold (seconds), checked from the header or the sample
count before the audio is decoded."""
DEFAULT_NAME = "-"

STATUS_OF_REASON = {REASON["inference_failed"]: 500, REASON["non_finite_output"]: 500,
                    "failed": 500}
"""Error rows that are the service's fault; every other audio reason is 422."""


@dataclass(frozen=True)
class Limits:
    """What one request may hold (emo-serve's options are made from these fields)."""

    max_body_mb: float = setting(DEFAULT_MAX_BODY_MB, "largest request body; larger ones get "
                                 "413", range=(0.001, 4096.0))
    max_duration_s: float = setting(DEFAULT_MAX_DURATION_S, "longest recording a request may "
                                    "hold, in seconds; longer ones get 422",
                                    option="max_duration", range=(1.0, 86_400.0))

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1e6)

    def to_json(self) -> dict[str, Any]:
        return {"max_body_mb": self.max_body_mb, "max_duration_s": self.max_duration_s,
                "min_rate": MIN_RATE, "max_rate": MAX_RATE}


class RequestError(Exception):
    """A request refused before its audio is classified: an HTTP status, a stable code and a
    one-line message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Query:
    """/predict's query options, checked."""

    name: str = DEFAULT_NAME
    segments: bool = False
    window: float | None = None
    rate: int | None = None
    channels: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        known = {"name", "segments", "window", "rate", "channels"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise RequestError(400, "bad-query", f"unknown query parameter {unknown[0]!r}; "
                               f"/predict takes {', '.join(sorted(known))}")
        segments = params.get("segments", "false").lower()
        if segments not in ("true", "false", "1", "0"):
            raise RequestError(400, "bad-query", f"segments={segments!r}: true or false")
        window = _number(params, "window", float, 0.0, MAX_SECONDS)
        rate = _number(params, "rate", int, MIN_RATE, MAX_RATE)
        channels = _number(params, "channels", int, 1, MAX_CHANNELS)
        return cls(params.get("name", DEFAULT_NAME)[:300], segments in ("true", "1"),
                   window, rate, 1 if channels is None else channels)


def _number(params: Mapping[str, str], name: str, kind: type, low: float, high: float
            ) -> Any:
    if name not in params:
        return None
    text = params[name]
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not low <= value <= high or \
            (name == "window" and value <= low):
        raise RequestError(400, "bad-query", f"{name}={text!r}: a {kind.__name__} from "
                           f"{low:g} to {high:g}" + (" (exclusive of 0)" if name == "window"
                                                     else ""))
    return value


def media_type(content_type: str | None) -> str:
    """'raw' for RAW_TYPE, 'encoded' for audio/* and ENCODED_TYPES; RequestError (415)
    otherwise."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == RAW_TYPE:
        return "raw"
    if kind.startswith("audio/") or kind in ENCODED_TYPES:
        return "encoded"
    raise RequestError(415, "unsupported-media-type",
                       f"Content-Type {kind or '(none)'!r} is not audio: send an audio file as "
                       f"audio/* or application/octet-stream, or samples as {RAW_TYPE}")


def check_declared_length(content_length: str | None, limits: Limits) -> None:
    """413 before reading a body whose Content-Length is over the limit."""
    if content_length is None:
        return
    try:
        size = int(content_length)
    except ValueError as e:
        raise RequestError(400, "bad-request", f"Content-Length {content_length!r} is not a "
                           "number") from e
    if size > limits.max_body_bytes:
        raise too_large(limits)


def too_large(limits: Limits) -> RequestError:
    return RequestError(413, "body-too-large", f"the request body is over "
                        f"{limits.max_body_bytes / 1e6:g} MB (emo-serve --max-body-mb)")


def raw_samples(body: bytes, query: Query) -> np.ndarray:
    """A RAW_TYPE body as (frames, channels) float32."""
    if query.rate is None:
        raise RequestError(400, "bad-query", f"{RAW_TYPE} needs ?rate=HZ (the samples' rate)")
    frame = 4 * query.channels
    if len(body) % frame:
        raise RequestError(400, "bad-request", f"{len(body)} bytes is not a whole number of "
                           f"{query.channels}-channel float32 frames ({frame} bytes each)")
    return np.frombuffer(body, "<f4").astype(np.float32).reshape(-1, query.channels)


def error_row(name: str, reason: str, message: str, untrained: bool
              ) -> tuple[int, dict[str, Any]]:
    """The status and emo-predict's error row for audio that could not be classified."""
    return STATUS_OF_REASON.get(reason, 422), {
        "file": name, "error": reason, "message": message, "untrained": untrained}


def request_error_row(name: str, error: RequestError, untrained: bool) -> dict[str, Any]:
    return {"file": name, "error": error.code, "message": error.message, "untrained": untrained}
