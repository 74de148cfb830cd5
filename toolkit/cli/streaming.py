"""emo-predict --stream / --mic: live audio in, one JSON line per window out, each printed
and flushed as soon as its window is classified (toolkit/runtime/live.py runs it)."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import click
import numpy as np

from emo_toolkit.cli.support import info
from emo_toolkit.runtime.io import to_json
from emo_toolkit.runtime.live import microphone_feed, pipe_feed, run_live, stop_on_signals
from emo_toolkit.runtime.pcm import PcmFormat
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.runtime.stream import WindowPrediction
from emo_toolkit.runtime.windows import Window

WAV = "wav"
STREAM_FORMATS = (WAV, "s16le", "s24le", "s32le", "f32le")


@dataclass(frozen=True)
class StreamOptions:
    source: Path | None        # a FIFO or file; None: stdin ("-" too)
    mic: bool
    encoding: str              # WAV or a raw encoding (pcm.RAW_FORMATS)
    rate: int | None
    channels: int | None
    window: Window | None      # resolved by the command (announce_window); None: the default
    hop: float | None
    smoothing: float | None
    max_delay: float | None    # None: every window is classified, however late (and for a
                               # regular file, which is not live)


def check_stream_options(o: StreamOptions) -> None:
    """click.UsageError for options that do not fit together."""
    raw = o.encoding != WAV
    if o.mic and o.source is not None:
        raise click.UsageError("--mic reads the microphone; give no input path with it")
    if o.mic and raw:
        raise click.UsageError("--format is for piped input; --mic takes float32 samples")
    if raw and not o.mic and o.rate is None:
        raise click.UsageError(f"--format {o.encoding} needs --rate (and --channels unless "
                               "mono): raw samples carry no header")
    if not raw and not o.mic and (o.rate is not None or o.channels is not None):
        raise click.UsageError("--rate and --channels are for raw input (--format s16le...) "
                               "and --mic; a WAV stream's header gives them")


def predict_stream(recognizer: Recognizer, o: StreamOptions) -> None:
    """Run the stream until its input ends or SIGINT/SIGTERM; exit 1 after a bad block."""
    stop = threading.Event()
    with stop_on_signals(stop) as stopped_by:
        if o.mic:
            feed, device = microphone_feed(o.rate, o.channels or 1)
        else:
            fd = _open_input(o.source)
            if stat.S_ISREG(os.fstat(fd).st_mode):  # a file is not live: every window counts
                o = replace(o, max_delay=None)
            fmt = None if o.encoding == WAV else PcmFormat(o.encoding, o.rate or 0,
                                                             o.channels or 1)
            feed, device = pipe_feed(fd, fmt, bounded=o.max_delay is None), None
        stream = recognizer.stream(feed.format.rate, o.window, o.hop,
                                   channels=feed.format.channels, smoothing=o.smoothing)
        # a first call pays for the runtime's lazy set-up: here, not in the first window
        recognizer.logits(np.zeros((1, stream.window), np.float32))
        info(f"streaming: {feed.format.rate} Hz, {feed.format.channels} channel(s); "
             f"a {stream.window_s:g} s window every {stream.hop_s:g} s")

        def emit(result: WindowPrediction) -> None:
            sys.stdout.write(to_json(result.to_json(), indent=None) + "\n")  # as RowWriter
            sys.stdout.flush()

        def skipped(count: int, at: float) -> None:
            click.echo(f"skipped {count} window(s) from {at:.2f} s: the model is slower than "
                       "the audio arrives (see --max-delay)", err=True)

        with device if device is not None else contextlib.nullcontext():
            summary = run_live(stream, feed, emit, max_delay=o.max_delay, stop=stop,
                               on_skip=skipped)
    end = f"stopped ({stopped_by[0]})" if summary.stopped else "end of input"
    info(f"{end}: {summary.windows} window(s) of {summary.seconds:.2f} s of audio, "
         f"{summary.skipped} skipped")


def _open_input(source: Path | None) -> int:
    if source is None or str(source) == "-":
        return sys.stdin.buffer.fileno()
    try:
        return os.open(source, os.O_RDONLY)  # a FIFO blocks here until a writer opens it
    except OSError as e:
        raise click.UsageError(f"{source}: cannot be read ({e.strerror})") from e
