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
from emo_toolkit.runtime.audio import MAX_CHANNELS, MAX_RATE, MAX_SECONDS, MIN_RATE
from emo_toolkit.runtime.io import to_json
from emo_toolkit.runtime.live import microphone_feed, pipe_feed, run_live, stop_on_signals
from emo_toolkit.runtime.pcm import PcmFormat
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.runtime.settings import setting
from emo_toolkit.runtime.stream import WindowPrediction
from emo_toolkit.runtime.windows import Window

WAV = "wav"
STREAM_FORMATS = (WAV, "s16le", "s24le", "s32le", "f32le")


@dataclass(frozen=True)
class StreamOptions:
    """What `emo-predict stream` reads and how it keeps up; its options are made from these
    fields."""

    source: Path | None = None  # a FIFO or file; None: stdin ("-" too)
    mic: bool = setting(False, "read the default input device instead of stdin or PATH "
                        "(needs the sounddevice package)")
    encoding: str = setting(WAV, "the input: a WAV stream, or raw little-endian samples (then "
                            "--rate and --channels)", option="format", choices=STREAM_FORMATS)
    rate: int | None = setting(None, "raw input's sample rate (Hz); --mic: the device's "
                               "default", range=(MIN_RATE, MAX_RATE))
    channels: int | None = setting(None, "raw input's and --mic's channels (default 1)",
                                   range=(1, MAX_CHANNELS))
    window: Window | None = None  # resolved by the command (announce_window); None: the default
    hop: float | None = setting(None, "seconds from one window's start to the next (default: "
                                "half the window)", range=(0.01, MAX_SECONDS))
    smoothing: float | None = setting(None, "also give each window's exponentially smoothed "
                                      "probabilities, this weight on the newest window",
                                      range=(0.01, 1.0))
    max_delay: float = setting(2.0, "from a pipe, FIFO or --mic: when more than this many "
                               "seconds of complete windows wait, skip to the newest (and say "
                               "so); 0 classifies every window, however late (a regular file "
                               "always gets every window)", range=(0.0, 3600.0))


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
                o = replace(o, max_delay=0.0)
            fmt = None if o.encoding == WAV else PcmFormat(o.encoding, o.rate or 0,
                                                             o.channels or 1)
            feed, device = pipe_feed(fd, fmt, bounded=not o.max_delay), None
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
            summary = run_live(stream, feed, emit, max_delay=o.max_delay or None, stop=stop,
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
