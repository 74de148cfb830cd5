"""emo-serve's Ray Serve application: an HTTP ingress and the model's replicas.

    HTTP ──► Ingress (decodes, checks, resamples and cuts audio: Recognizer.front_end)
                │  each segment's samples, through a deployment handle
                ▼
             ModelReplica, --replicas of them (Recognizer; @serve.batch gathers segments of
                concurrent requests into batches through the runtime's batch plan)

The ingress builds the reply from the replicas' logits with the Recognizer's own rules, so a
served result equals emo-predict's on the same audio. A segment whose replica dies is sent
again (up to `retries` times) to another replica; only when none answers does the request
get 503. The protocol (paths, content types, statuses) is protocol.py's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError
from ray.util import metrics
from starlette.requests import Request
from starlette.responses import Response

from emo_toolkit.runtime.audio import read_header
from emo_toolkit.runtime.errors import (
    EmoToolkitError,
    InferenceError,
    TooLongAudioError,
    per_file_error,
)
from emo_toolkit.runtime.io import to_json
from emo_toolkit.runtime.output import rows
from emo_toolkit.runtime.predictions import ModelInfo
from emo_toolkit.runtime.recognizer import ARRAY_NAME, Recognizer
from emo_toolkit.runtime.rules import REASON
from emo_toolkit.runtime.windows import Window
from emo_toolkit.serve.options import ServeOptions
from emo_toolkit.serve.protocol import (
    DEFAULT_NAME,
    Limits,
    Query,
    RequestError,
    check_declared_length,
    error_row,
    media_type,
    raw_samples,
    request_error_row,
    too_large,
)

APP_NAME = "emo-serve"
logger = logging.getLogger("ray.serve")
LATENCY_BOUNDARIES_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


class ModelReplica:
    """One copy of the model; `logits` is batched across concurrent requests."""

    def __init__(self, open_model: Callable[[], Recognizer], options: ServeOptions):
        self.recognizer = open_model()
        self.logits.set_max_batch_size(options.max_batch_size)
        self.logits.set_batch_wait_timeout_s(options.batch_wait_ms / 1000)
        self.batch_sizes = metrics.Histogram(
            "emo_batch_size", "segments gathered into one batch", boundaries=BATCH_BOUNDARIES)

    async def info(self) -> ModelInfo:
        return self.recognizer.info

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def logits(self, clips: list[np.ndarray]) -> list[np.ndarray | str]:
        """Logits per clip; a clip the model fails on gets the failure's message instead
        (after a failed batch each clip runs alone, so one bad clip fails only itself)."""
        self.batch_sizes.observe(len(clips))
        rows = self.recognizer.logits_or_failures(clips, len(clips))
        return [row if isinstance(row, np.ndarray) else str(row) for row in rows]


class Ingress:
    """The HTTP side: routes, decoding, segments, replies (see protocol.py)."""

    def __init__(self, model: Any, options: ServeOptions):
        self.model, self.options = model, options
        self.info: ModelInfo | None = None  # the model's, from the first replica that answers
        self.front: Recognizer | None = None
        self.window: Window | None = None  # the service's window, as /info reports it
        self.requests = metrics.Counter("emo_requests", "requests answered, by path and status",
                                        tag_keys=("path", "status"))
        self.latency = metrics.Histogram("emo_request_seconds", "time to answer /predict",
                                         boundaries=LATENCY_BOUNDARIES_S, tag_keys=("status",))
        self.spool = Path(tempfile.mkdtemp(prefix="emo-serve-"))  # request bodies, briefly

    def __del__(self) -> None:  # Ray Serve calls it when the replica stops
        shutil.rmtree(self.spool, ignore_errors=True)

    async def __call__(self, request: Request) -> Response:
        start = time.perf_counter()
        try:
            status, body = await self.route(request)
        except Exception as e:  # a fault of ours: one line to the client, the trace to the log
            logger.exception("emo-serve failed on %s %s", request.method, request.url.path)
            status, body = 500, {"error": "internal-error",
                                 "message": f"{type(e).__name__}: {e}"[:500]}
        path = request.url.path if request.url.path in ROUTES else "other"
        self.requests.inc(tags={"path": path, "status": str(status)})
        if path == "/predict":
            self.latency.observe(time.perf_counter() - start, tags={"status": str(status)})
        return Response(to_json(body, indent=None), status, media_type="application/json")

    async def route(self, request: Request) -> tuple[int, Any]:
        path, method = request.url.path, request.method
        if self.info is None and path in ("/predict", "/info"):
            try:
                await self._learn_model()
            except _Unavailable as e:
                return 503, {"error": "unavailable", "message": str(e)}
        if path not in ROUTES:
            return 404, {"error": "not-found", "message": f"no such path {path!r}; the "
                         f"service answers {', '.join(ROUTES)}"}
        if method != ROUTES[path]:
            return 405, {"error": "method-not-allowed",
                         "message": f"{path} takes {ROUTES[path]}, not {method}"}
        if path == "/healthz":
            return 200, {"status": "ok"}
        if path == "/readyz":
            return await self.readiness()
        if path == "/info":
            return 200, self.describe()
        return await self.predict(request)

    async def _learn_model(self) -> None:
        try:
            info = await self.model.info.remote()
        except (RayActorError, DeploymentUnavailableError) as e:
            raise _Unavailable(f"no model replica answered ({type(e).__name__})") from e
        self.info, self.front = info, Recognizer.front_end(info)
        self.window = self.front.window(self.options.window)  # what every request uses

    async def readiness(self) -> tuple[int, Any]:
        try:
            await asyncio.wait_for(self.model.info.remote(), timeout=5)
        except (asyncio.TimeoutError, RayActorError, DeploymentUnavailableError):
            return 503, {"ready": False, "message": "no model replica answered within 5 s"}
        return 200, {"ready": True}

    def describe(self) -> dict[str, Any]:
        info = self.info
        return {"model": Path(info.source).name, "kind": info.kind, "labels": list(info.labels),
                "sample_rate": info.sample_rate, "min_samples": info.min_samples,
                "max_samples": info.max_samples, "precision": info.precision,
                "runtime": info.runtime, "threads": info.threads, "untrained": info.untrained,
                "replicas": self.options.replicas, "max_batch_size": self.options.max_batch_size,
                "batch_wait_ms": self.options.batch_wait_ms,
                "window_s": self.window.seconds, "window": self.window.to_json(),
                **self.options.limits.to_json()}

    async def predict(self, request: Request) -> tuple[int, Any]:
        untrained = self.info.untrained
        name = request.query_params.get("name", DEFAULT_NAME)[:300]  # for refusals too
        try:
            query = Query.parse(request.query_params)
            kind = media_type(request.headers.get("content-type"))
            check_declared_length(request.headers.get("content-length"), self.options.limits)
            body = await self._body(request)
        except RequestError as e:
            return e.status, request_error_row(name, e, untrained)
        try:
            segments = await asyncio.to_thread(self._segments, body, kind, query)
            logits = await self._logits([seg.samples for seg in segments])
            failed = next((z for z in logits if isinstance(z, str)), None)
            if failed is not None:
                raise InferenceError(failed)
            result = self.front.recording([(s.start, s.end) for s in segments], logits)
        except RequestError as e:
            return e.status, request_error_row(name, e, untrained)
        except _Unavailable as e:
            return 503, {"file": name, "error": "unavailable", "message": str(e),
                         "untrained": untrained}
        except InferenceError as e:  # the model failed on valid audio: the service's fault
            return error_row(name, REASON["inference_failed"], str(e), untrained)
        except (EmoToolkitError, ValueError) as e:
            error = per_file_error(ARRAY_NAME, e)
            return error_row(name, error.reason, error.problem, untrained)
        said = self.info.precision if self.options.precision_said else None
        out = list(rows(Path(name), result, query.segments, untrained, said))
        return 200, out if query.segments else out[-1]

    async def _body(self, request: Request) -> bytes:
        """The body, refused (413) as soon as it passes the limit, whatever it declared."""
        limit, parts, size = self.options.limits.max_body_bytes, [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(self.options.limits)
            parts.append(chunk)
        return b"".join(parts)

    def _segments(self, body: bytes, kind: str, query: Query) -> list[Any]:
        """The request's audio, decoded, checked and cut as emo-predict cuts a file."""
        window = self.window if query.window is None else self.front.window(query.window)
        if kind == "raw":
            samples = raw_samples(body, query)
            self._check_duration(samples.shape[0] / (query.rate or 1))
            _, blocks = self.front.recording_blocks(samples, query.rate)
            return list(self.front.cut(ARRAY_NAME, blocks, window))
        if not body:
            raise RequestError(422, "empty-file", "the request body is empty")
        fd, spooled = tempfile.mkstemp(dir=self.spool)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
            frames, rate = read_header(spooled)
            self._check_duration(frames / rate)
            blocks = _bounded(self.front.read_blocks(spooled), self.options.limits,
                              self.front.sample_rate)
            return list(self.front.cut(spooled, blocks, window))
        finally:
            os.unlink(spooled)

    def _check_duration(self, seconds: float) -> None:
        limit = self.options.limits.max_duration_s
        if seconds > limit:
            raise TooLongAudioError(ARRAY_NAME, f"{seconds:.1f} s is longer than the "
                                    f"{limit:g} s a request may hold (emo-serve --max-duration)")

    async def _logits(self, clips: list[np.ndarray]) -> list[np.ndarray | str]:
        gate = asyncio.Semaphore(2 * self.options.max_batch_size)  # a long recording's share

        async def one(clip: np.ndarray) -> np.ndarray | str:
            async with gate:
                for attempt in range(self.options.retries + 1):
                    try:
                        return await self.model.logits.remote(clip)
                    except (RayActorError, DeploymentUnavailableError) as e:
                        if attempt == self.options.retries:
                            raise _Unavailable(f"no model replica answered after "
                                               f"{attempt + 1} tries ({type(e).__name__})") from e
                        await asyncio.sleep(0.25 * 2 ** attempt)  # the controller replaces it
            raise AssertionError("unreachable")

        return list(await asyncio.gather(*(one(c) for c in clips)))


ROUTES = {"/predict": "POST", "/healthz": "GET", "/readyz": "GET", "/info": "GET"}


class _Unavailable(Exception):
    """No model replica answered a segment."""


def _bounded(blocks: Iterable[np.ndarray], limits: Limits, rate: int) -> Iterator[np.ndarray]:
    """Blocks until more than the request's longest duration was decoded (a header that
    understates its frames)."""
    total = 0
    for block in blocks:
        total += block.size
        if total > limits.max_duration_s * rate:
            raise TooLongAudioError(ARRAY_NAME, f"the audio decodes to more than the "
                                    f"{limits.max_duration_s:g} s a request may hold")
        yield block


def build_app(open_model: Callable[[], Recognizer], options: ServeOptions) -> Any:
    """The bound application: `serve.run(build_app(...), name=APP_NAME)`."""
    actor: dict[str, Any] = {"num_cpus": options.cpus_per_replica}
    if options.gpus_per_replica:
        actor["num_gpus"] = options.gpus_per_replica
    model = serve.deployment(ModelReplica, name="Model").options(
        num_replicas=options.replicas, ray_actor_options=actor,
        max_ongoing_requests=max(16, 2 * options.max_batch_size))
    ingress = serve.deployment(Ingress, name="Ingress").options(
        num_replicas=1, ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
    return ingress.bind(model.bind(open_model, options), options)
