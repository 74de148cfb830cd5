"""Running a Stream on a live source: a thread reads the source into a queue, the caller's
thread classifies; when the model falls behind, windows are skipped, never queued without
bound.

A source is a pipe or FIFO of WAV or raw PCM (`pipe_feed`) or a microphone
(`microphone_feed`, through the optional sounddevice package). `run_live` takes every
block that has arrived before it classifies, so each result is of the newest audio it
can be; when more than `max_delay` seconds of complete windows wait, all but the newest
are skipped (and reported), so the results stay within about `max_delay` plus one
window's compute time of the audio.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from emo_toolkit.runtime.errors import MissingDependencyError
from emo_toolkit.runtime.pcm import PcmDecoder, PcmError, PcmFormat, read_wav_header
from emo_toolkit.runtime.stream import Stream, WindowPrediction

READ_BYTES = 1 << 14
"""The most bytes one read of a pipe takes: about 0.25 s of 16 kHz stereo s16le, so a
block reaches the stream soon after it was written."""

END = object()
"""What a feed puts on its queue after the last block."""


@dataclass
class LiveSummary:
    windows: int = 0       # results emitted
    skipped: int = 0       # windows skipped to keep up
    seconds: float = 0.0   # seconds of audio taken (at the source's rate)
    stopped: bool = False  # `stop` was set before the source ended


class Feed:
    """Blocks of a source on a queue, read by a daemon thread. `format` says what they are."""

    def __init__(self, fmt: PcmFormat, bounded: bool):
        self.format = fmt
        # bounded: a slow reader holds the writer back (every window computed); unbounded:
        # the source is drained at once, and run_live skips what it cannot compute
        self.queue: queue.Queue[object] = queue.Queue(maxsize=64 if bounded else 0)

    def put(self, item: object) -> None:
        self.queue.put(item)


def read_exactly(fd: int) -> Callable[[int], bytes]:
    """A `read(n)` over a file descriptor that returns n bytes unless the input ends."""
    def read(n: int) -> bytes:
        parts, got = [], 0
        while got < n:
            part = os.read(fd, n - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)
    return read


def pipe_feed(fd: int, fmt: PcmFormat | None, *, bounded: bool) -> Feed:
    """A pipe, FIFO or file of raw PCM in `fmt`, or of WAV (fmt None: its header says)."""
    if fmt is None:
        fmt = read_wav_header(read_exactly(fd))
    feed = Feed(fmt, bounded)

    def pump() -> None:
        decoder = PcmDecoder(fmt)
        try:
            while data := os.read(fd, READ_BYTES):
                frames = decoder.decode(data)
                if frames.size:
                    feed.put(frames)
            if decoder.leftover:
                raise PcmError(f"the input ended inside a frame ({decoder.leftover} of "
                               f"{fmt.frame_bytes} bytes): a truncated stream, or the wrong "
                               "--format or --channels")
        except (OSError, PcmError) as e:
            feed.put(e)
        feed.put(END)

    threading.Thread(target=pump, name="emo-live-reader", daemon=True).start()
    return feed


def microphone_feed(rate: int | None, channels: int, block_s: float = 0.05):
    """The default input device through sounddevice: a Feed and the open input stream (a
    context manager). MissingDependencyError when sounddevice or a device is missing."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: the PortAudio library is missing
        raise MissingDependencyError(f"--mic needs the sounddevice package and PortAudio "
                                     f"(pip install sounddevice): {e}") from e
    try:
        device = sd.query_devices(kind="input")
    except (sd.PortAudioError, ValueError) as e:
        raise MissingDependencyError(f"--mic: this machine has no audio input device ({e})") \
            from e
    rate = rate or int(device["default_samplerate"])
    feed = Feed(PcmFormat("f32le", rate, channels), bounded=False)

    def callback(indata: np.ndarray, frames: int, time: object, status: object) -> None:
        feed.put(indata.copy())

    source = sd.InputStream(samplerate=rate, channels=channels, dtype="float32",
                            blocksize=max(1, round(block_s * rate)), callback=callback)
    return feed, source


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[list[str]]:
    """While inside: SIGINT and SIGTERM set `stop` and add their names to the list given,
    so a long-running command ends its work cleanly; the previous handlers come back on
    leaving. The main thread only (Python's rule for signal handlers)."""
    names: list[str] = []

    def handler(signum: int, _: object) -> None:
        names.append(signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield names
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_live(stream: Stream, feed: Feed, emit: Callable[[WindowPrediction], None], *,
             max_delay: float | None, stop: threading.Event,
             on_skip: Callable[[int, float], None] | None = None) -> LiveSummary:
    """Classify `feed`'s blocks until it ends or `stop` is set; `emit` hears each window's
    result as soon as it is ready. Before each window, every block that has arrived is
    taken, and when more than `max_delay` seconds (None: never skip) of complete windows
    wait, all but the newest are skipped: results stay within about `max_delay` plus one
    window's compute of the audio. `on_skip(count, at_seconds)` hears each skip. A bad
    block (see Stream.accept) or a failed read raises, after the windows before it."""
    summary = LiveSummary()
    ended = False
    while True:
        if stop.is_set():
            summary.stopped = True
            return summary
        wait = not ended and stream.ready == 0  # nothing to do until a block arrives
        try:
            item = feed.queue.get(timeout=0.1) if wait else feed.queue.get_nowait()
        except queue.Empty:
            item = None
        failure = None
        while item is not None:  # everything that has arrived, so results are fresh
            if item is END:
                ended = True
                break
            if isinstance(item, BaseException):
                failure = item
                break
            stream.accept(item)  # type: ignore[arg-type]
            summary.seconds += len(item) / feed.format.rate  # type: ignore[arg-type]
            try:
                item = feed.queue.get_nowait()
            except queue.Empty:
                item = None
        if max_delay is not None and (stream.ready - 1) * stream.hop_s > max_delay:
            at = stream.next_window * stream.hop_s
            count = stream.skip(keep=1)
            summary.skipped += count
            if on_skip is not None:
                on_skip(count, at)
        if failure is not None:  # the windows the blocks before it completed, then the error
            for result in stream.compute():
                emit(result)
                summary.windows += 1
            raise failure
        results = stream.compute(limit=1) if stream.ready else \
            (stream.flush() if ended else [])
        for result in results:
            emit(result)
            summary.windows += 1
        if ended and not stream.ready and stream.closed:
            return summary
