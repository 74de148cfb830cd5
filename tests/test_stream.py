"""Live audio: Recognizer.stream (windows equal offline predictions, any block sizes, bounded
memory, per-block checks, smoothing), run_live's skipping, and emo-predict --stream on
pipes, FIFOs and files written by the tests (real time included)."""

from __future__ import annotations

import json
import os
import queue
import signal
import struct
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emo_toolkit.data.demo_corpus import speech_like
from emo_toolkit.runtime.errors import InferenceError, NonFiniteAudioError, OutOfRangeAudioError
from emo_toolkit.runtime.live import END, Feed, run_live
from emo_toolkit.runtime.pcm import (
    PcmDecoder,
    PcmError,
    PcmFormat,
    read_wav_header,
    s16le_bytes,
    wav_stream_header,
)
from emo_toolkit.runtime.recognizer import Recognizer, StreamDecodeError
from emo_toolkit.runtime.resample import resample
from tests.faults import BIN

RATE = 16_000


@pytest.fixture(scope="module")
def recognizer(tiny_onnx: Path) -> Recognizer:
    return Recognizer.open(tiny_onnx)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """7.3 s of speech-like audio with pauses, at 16 kHz."""
    return np.concatenate([speech_like(s, i) for i, s in enumerate((2.1, 1.4, 2.6, 1.2))])


def run_blocks(recognizer: Recognizer, x: np.ndarray, block: int, rate: int = RATE,
               **options) -> list:
    stream = recognizer.stream(rate, **options)
    out = []
    for i in range(0, len(x), block):
        out += stream.push(x[i:i + block])
    return out + stream.flush()


def offline(recognizer: Recognizer, x: np.ndarray, start: float, end: float) -> np.ndarray:
    clip = x[round(start * RATE):round(end * RATE)]
    return np.array(recognizer.predict(clip, RATE).logits)


def test_blocks_of_any_size_give_identical_windows(recognizer: Recognizer, speech: np.ndarray):
    runs = [run_blocks(recognizer, speech, block, window=2.0, hop=0.5)
            for block in (1, 37, RATE // 10, 10 * RATE)]
    reference = [(w.index, w.start, w.end, w.prediction.logits) for w in runs[0]]
    for run in runs[1:]:
        assert [(w.index, w.start, w.end, w.prediction.logits) for w in run] == reference
    # windows every 0.5 s while 2 s fit, then the last 2 s of the stream
    assert [w.start for w in runs[0][:-1]] == [0.5 * k for k in range(len(runs[0]) - 1)]
    assert runs[0][-2].end < runs[0][-1].end == pytest.approx(len(speech) / RATE)
    assert runs[0][-1].end - runs[0][-1].start == pytest.approx(2.0)


def test_each_window_equals_predicting_its_samples_offline(recognizer: Recognizer,
                                                           speech: np.ndarray):
    windows = run_blocks(recognizer, speech, 1234, window=1.5, hop=0.4)
    assert len(windows) == 1 + int((len(speech) / RATE - 1.5) / 0.4) + 1
    for w in windows:
        np.testing.assert_allclose(w.prediction.logits, offline(recognizer, speech, w.start,
                                                                w.end), atol=1e-5, rtol=0)


def test_a_stream_at_another_rate_is_resampled_as_a_whole(recognizer: Recognizer,
                                                          speech: np.ndarray):
    """Stereo 22.05 kHz in blocks: each window equals its part of the whole recording
    resampled at once (the stream's resampler is exact across blocks)."""
    at_22k = resample(speech, RATE, 22_050)
    stereo = np.stack([at_22k, 0.5 * at_22k], axis=1)
    windows = []
    stream = recognizer.stream(22_050, 2.0, 1.0, channels=2)
    for i in range(0, len(stereo), 3001):
        windows += stream.push(stereo[i:i + 3001])
    windows += stream.flush()
    whole = resample(stereo.astype(np.float32).mean(axis=1, dtype=np.float32), 22_050, RATE)
    assert len(windows) >= 5
    for w in windows:
        clip = whole[round(w.start * RATE):round(w.end * RATE)]
        np.testing.assert_allclose(w.prediction.logits,
                                   recognizer.predict(clip, RATE).logits, atol=1e-5, rtol=0)


def test_memory_stays_bounded_on_a_long_stream(recognizer: Recognizer):
    stream = recognizer.stream(RATE, window=1.0, hop=1.0)
    block = np.zeros(RATE // 2, np.float32)
    block[::97] = 0.1  # not silence, not that it matters
    largest = 0
    for _ in range(1200):  # 10 minutes
        stream.push(block)
        largest = max(largest, stream.buffer.size)
    assert stream.next_window == 600
    assert largest <= stream.window + block.size


def test_a_bad_block_names_itself_and_the_stream_goes_on(recognizer: Recognizer,
                                                        speech: np.ndarray):
    stream = recognizer.stream(RATE, window=1.0, hop=0.5)
    stream.push(speech[:RATE])
    nan = speech[RATE:2 * RATE].copy()
    nan[100] = np.nan
    with pytest.raises(NonFiniteAudioError, match=r"<stream> block 2: 1 sample\(s\) are NaN "
                                                  r"or infinite \(first at frame 16100\)"):
        stream.push(nan)
    with pytest.raises(OutOfRangeAudioError, match="<stream> block 2: sample magnitude 1e"):
        stream.push(np.full(10, 1e9, np.float32))
    with pytest.raises(ValueError, match=r"<stream> block 2: samples must be float32 or "
                                         r"float64 .* got int16"):
        stream.push((speech[:100] * 30000).astype(np.int16))
    with pytest.raises(ValueError, match=r"<stream> block 2: expected \(frames,\) samples, got "
                                         r"shape \[100, 2\]"):
        stream.push(np.zeros((100, 2), np.float32))
    # none of them was taken: the stream equals one that never saw them
    rest = stream.push(speech[RATE:3 * RATE]) + stream.flush()
    clean = run_blocks(recognizer, speech[:3 * RATE], RATE, window=1.0, hop=0.5)
    assert [w.prediction.logits for w in rest] == [w.prediction.logits for w in clean[1:]]


def test_stream_options_are_checked(recognizer: Recognizer):
    with pytest.raises(ValueError, match="hop must be in"):
        recognizer.stream(RATE, window=1.0, hop=2.0)
    with pytest.raises(ValueError, match="window must be in"):
        recognizer.stream(RATE, window=0.0)
    with pytest.raises(ValueError, match=r"a window of 0.01 s is shorter than the model's "
                                         r"shortest input \(0.025 s\)"):
        recognizer.stream(RATE, window=0.01)
    with pytest.raises(ValueError, match="sample rate 100 Hz is outside"):
        recognizer.stream(100)
    with pytest.raises(ValueError, match="smoothing alpha must be in"):
        recognizer.stream(RATE, smoothing=1.5)
    stream = recognizer.stream(RATE, window=1.0)
    assert (stream.window, stream.hop) == (RATE, RATE // 2)  # the hop: half the window
    stream.push(np.zeros(100, np.float32))
    assert stream.flush() == []  # shorter than the model's minimum: no window
    with pytest.raises(ValueError, match="the stream was flushed"):
        stream.push(np.zeros(100, np.float32))


def test_smoothing_is_exponential_and_stated(recognizer: Recognizer, speech: np.ndarray):
    windows = run_blocks(recognizer, speech, 4000, window=1.0, hop=0.5, smoothing=0.25)
    labels = recognizer.labels
    smoothed = None
    for w in windows:
        p = np.array([w.prediction.probabilities[k] for k in labels])
        smoothed = p if smoothed is None else 0.25 * p + 0.75 * smoothed
        np.testing.assert_allclose([w.smoothed[k] for k in labels], smoothed, atol=1e-12)
        row = w.to_json()
        assert row["smoothed"]["method"] == "exponential" and row["smoothed"]["alpha"] == 0.25
        assert row["smoothed"]["label"] == labels[int(np.argmax(smoothed))]
    assert "smoothed" not in run_blocks(recognizer, speech, 4000, window=1.0)[0].to_json()


# (stream options, block size, seconds, seed): streams of one recognizer unlike each other
STREAMS = [
    (dict(sample_rate=RATE, window=1.0, hop=0.5), 4000, 5.3, 1),
    (dict(sample_rate=RATE, window=1.0, hop=0.5, smoothing=0.4), 1234, 4.1, 2),
    (dict(sample_rate=44_100, window=1.0, hop=0.25, channels=2), 7000, 3.7, 3),
    (dict(sample_rate=RATE, window=2.0), RATE, 6.2, 4),
    (dict(sample_rate=8_000), 999, 2.5, 5),  # the default window: one last window only
]


def _source(options: dict, seconds: float, seed: int) -> np.ndarray:
    x = resample(speech_like(seconds, seed), RATE, options["sample_rate"])
    return np.stack([x, 0.5 * x], axis=1) if options.get("channels") == 2 else x


def test_decode_streams_equals_decoding_each_alone(recognizer: Recognizer):
    """Five streams (rates, windows, hops, channels, smoothing, block sizes of their own) fed
    in turns and decoded together: each stream's windows are the ones it gives alone, with
    logits and smoothed probabilities within 1e-5; equal-length windows of different streams
    shared batches."""
    alone = []
    for options, block, seconds, seed in STREAMS:
        x = _source(options, seconds, seed)
        alone.append(_alone(recognizer, x, block, options))
    batches: list[int] = []
    runner = recognizer.runner
    recognizer.runner = lambda *inputs: (batches.append(len(inputs[0])), runner(*inputs))[1]
    try:
        streams = [recognizer.stream(**options) for options, *_ in STREAMS]
        sources = [_source(o, sec, seed) for o, _, sec, seed in STREAMS]
        together: list[list] = [[] for _ in STREAMS]
        position = [0] * len(STREAMS)
        while any(p < len(x) for p, x in zip(position, sources, strict=True)):
            for k, (stream, x, (_, block, *_)) in enumerate(zip(streams, sources, STREAMS,
                                                                strict=True)):
                if position[k] < len(x):
                    stream.accept(x[position[k]:position[k] + block])
                    position[k] += block
            for k, windows in enumerate(recognizer.decode_streams(streams)):
                together[k] += windows
        for stream in streams:
            stream.input_finished()
        assert sum(s.ready for s in streams) >= len(streams)  # each has its last window
        for k, windows in enumerate(recognizer.decode_streams(streams)):
            together[k] += windows
        assert not any(s.ready for s in streams)
    finally:
        recognizer.runner = runner
    assert max(batches) > 1  # windows of several streams shared a call
    for k, (mine, reference) in enumerate(zip(together, alone, strict=True)):
        assert [(w.index, w.start, w.end) for w in mine] == \
            [(w.index, w.start, w.end) for w in reference], k
        assert len(mine) >= (1 if k == len(STREAMS) - 1 else 4), k
        for a, b in zip(mine, reference, strict=True):
            np.testing.assert_allclose(a.prediction.logits, b.prediction.logits, atol=1e-5,
                                       rtol=0)
            if b.smoothed is not None:
                np.testing.assert_allclose(list(a.smoothed.values()),
                                           list(b.smoothed.values()), atol=1e-5, rtol=0)


def _alone(recognizer: Recognizer, x: np.ndarray, block: int, options: dict) -> list:
    stream = recognizer.stream(**options)
    out = []
    for i in range(0, len(x), block):
        out += stream.push(x[i:i + block])
    return out + stream.flush()


def test_decode_streams_limits_refuses_and_fails_without_changing_any_stream(
        recognizer: Recognizer, tiny_onnx: Path):
    x = speech_like(4.0, 7)
    streams = [recognizer.stream(RATE, window=1.0, hop=0.5) for _ in range(3)]
    for stream in streams:
        stream.accept(x)
    ready = [s.ready for s in streams]
    assert ready == [7, 7, 7]
    assert [len(w) for w in recognizer.decode_streams(streams, limit=2)] == [2, 2, 2]
    assert [s.ready for s in streams] == [5, 5, 5]
    with pytest.raises(ValueError, match="stream 1 is given twice"):
        recognizer.decode_streams([streams[0], streams[0]])
    with pytest.raises(ValueError, match="stream 1 belongs to another recognizer"):
        recognizer.decode_streams([streams[0], Recognizer.open(tiny_onnx).stream(RATE)])
    # a model that fails on stream 2's windows (alone too): nothing is taken from any stream
    loud = recognizer.stream(RATE, window=1.0, hop=0.5)
    loud.accept(0.9 * np.sign(x))
    runner = recognizer.runner

    def failing(*inputs: np.ndarray) -> np.ndarray:
        if (np.abs(inputs[0]).max(axis=1) > 0.85).any():
            raise RuntimeError("the runtime gave up")
        return runner(*inputs)

    recognizer.runner = failing
    try:
        before = [(s.next_window, s.ready, s.buffer_start, s.buffer.size)
                  for s in [*streams, loud]]
        with pytest.raises(StreamDecodeError, match="stream 3: the model failed on a") as e:
            recognizer.decode_streams([*streams, loud])
        assert e.value.stream == 3
        assert [(s.next_window, s.ready, s.buffer_start, s.buffer.size)
                for s in [*streams, loud]] == before
        with pytest.raises(InferenceError, match="the runtime gave up"):
            loud.compute()
        assert [len(w) for w in recognizer.decode_streams(streams)] == [5, 5, 5]
    finally:
        recognizer.runner = runner


def test_run_live_skips_to_the_newest_window_when_behind(recognizer: Recognizer,
                                                        speech: np.ndarray):
    """60 s arrive at once: more than max_delay of windows wait, so all but the newest are
    skipped (and reported), and the results stay in order."""
    feed = Feed(PcmFormat("f32le", RATE, 1), bounded=False)
    for _ in range(8):
        for i in range(0, len(speech), RATE // 4):
            feed.put(speech[i:i + RATE // 4, None])
    feed.put(END)
    stream = recognizer.stream(RATE, window=1.0, hop=0.5)
    got, skips = [], []
    summary = run_live(stream, feed, got.append, max_delay=1.0, stop=threading.Event(),
                       on_skip=lambda n, at: skips.append(n))
    assert summary.skipped == sum(skips) > 100 and len(got) == summary.windows
    indices = [w.index for w in got]
    assert indices == sorted(indices) and summary.windows + summary.skipped == indices[-1] + 1
    every = run_live(recognizer.stream(RATE, window=1.0, hop=0.5), _feed_of(speech), lambda w:
                     None, max_delay=None, stop=threading.Event())
    assert every.skipped == 0 and every.windows == len(run_blocks(recognizer, speech, RATE,
                                                                   window=1.0, hop=0.5))


def _feed_of(x: np.ndarray) -> Feed:
    feed = Feed(PcmFormat("f32le", RATE, 1), bounded=False)
    feed.put(x[:, None])
    feed.put(END)
    return feed


# --- PCM and WAV streams ---------------------------------------------------------------


def test_wav_stream_headers_and_raw_decoding():
    data = iter([wav_stream_header(22_050, 2, extra_chunk=b"LIST" + struct.pack("<I", 5) +
                            b"hello\0")])
    buffer = bytearray(next(data))

    def read(n: int) -> bytes:
        out = bytes(buffer[:n])
        del buffer[:n]
        return out

    assert read_wav_header(read) == PcmFormat("s16le", 22_050, 2)
    with pytest.raises(PcmError, match="not a WAV stream"):
        read_wav_header(lambda n: b"\0" * n)
    buffer[:] = wav_stream_header(16_000, 1, bits=8)
    with pytest.raises(PcmError, match="sample format 1 with 8 bits is not supported"):
        read_wav_header(read)
    decoder = PcmDecoder(PcmFormat("s24le", RATE, 2))
    values = np.array([[-8388608, 8388607], [1, -1]])
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values.ravel())
    first = decoder.decode(raw[:5])  # a partial frame waits for the rest
    assert first.shape == (0, 2) and decoder.leftover == 5
    np.testing.assert_array_equal(decoder.decode(raw[5:]), values / 8388608.0)


def emo_predict(*args: str, **kw) -> subprocess.Popen:
    """emo-predict with binary pipes (communicate returns bytes)."""
    return subprocess.Popen([str(BIN / "emo-predict"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def rows_of(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines()]


def test_cli_stream_from_a_pipe_at_real_time(tiny_onnx: Path, recognizer: Recognizer,
                                             speech: np.ndarray):
    """A writer feeds 0.1 s blocks at real-time speed: every window comes out in order, equal
    to the library's, and the first arrives long before the input ends."""
    proc = emo_predict(str(tiny_onnx), "--stream", "--window", "1", "--hop", "0.5",
                       stdin=subprocess.PIPE)
    lines: queue.Queue[tuple[float, bytes]] = queue.Queue()
    threading.Thread(target=lambda: [lines.put((time.monotonic(), line))
                                     for line in proc.stdout], daemon=True).start()
    assert proc.stdin is not None
    proc.stdin.write(wav_stream_header(RATE, 1))
    start = time.monotonic()
    x = speech[:RATE * 5]
    for i in range(0, len(x), RATE // 10):
        proc.stdin.write(s16le_bytes(x[i:i + RATE // 10]))
        proc.stdin.flush()
        time.sleep(max(0.0, start + (i + RATE // 10) / RATE - time.monotonic()))
    written = time.monotonic()
    proc.stdin.close()
    assert proc.wait(60) == 0, proc.stderr.read()
    time.sleep(0.5)  # the reader thread's last lines
    got = []
    while not lines.empty():
        got.append(lines.get())
    rows = [json.loads(line) for _, line in got]
    assert [r["window"] for r in rows] == list(range(len(rows))) and len(rows) == 9
    assert got[0][0] < written - 2.0  # window 0 (ends at 1 s) long before the 5 s input ends
    quantised = (np.frombuffer(s16le_bytes(x), "<i2").astype(np.float32) / 32768.0)
    expected = run_blocks(recognizer, quantised, RATE, window=1.0, hop=0.5)
    assert rows == [w.to_json() for w in expected]
    assert b"end of input: 9 window(s) of 5.00 s of audio, 0 skipped" in proc.stderr.read()


def test_cli_stream_raw_formats_fifo_and_file_agree(tiny_onnx: Path, tmp_path: Path,
                                                    speech: np.ndarray):
    x = speech[:RATE * 3]
    stereo = np.stack([x, x], axis=1)
    (tmp_path / "s16.raw").write_bytes(s16le_bytes(stereo))
    (tmp_path / "f32.raw").write_bytes(stereo.astype("<f4").tobytes())
    common = [str(tiny_onnx), "--stream", "--window", "1", "--hop", "0.5", "-q"]
    from_s16 = emo_predict(*common, "--format", "s16le", "--rate", "16000", "--channels", "2",
                           str(tmp_path / "s16.raw")).communicate(timeout=60)[0]
    with open(tmp_path / "f32.raw", "rb") as f:  # stdin redirected from a file
        from_f32 = emo_predict(*common, "--format", "f32le", "--rate", "16000", "--channels",
                               "2", stdin=f).communicate(timeout=60)[0]
    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    proc = emo_predict(*common, str(fifo))
    with open(fifo, "wb") as w:
        w.write(wav_stream_header(RATE, 2))
        w.write(s16le_bytes(stereo))
    from_fifo = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0
    assert from_fifo == from_s16 and len(rows_of(from_s16)) == 5
    for a, b in zip(rows_of(from_s16), rows_of(from_f32), strict=True):
        assert a["window"] == b["window"]
        for k, p in a["probabilities"].items():
            assert abs(p - b["probabilities"][k]) < 2e-3  # 16-bit against float samples


def test_cli_stream_ends_cleanly(tiny_onnx: Path, speech: np.ndarray):
    """SIGTERM and SIGINT mid-stream end with exit 0 and a summary; so does a writer that
    closes its end; a stream cut inside a frame prints its windows, then one error line."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        proc = emo_predict(str(tiny_onnx), "--stream", "--window", "1", stdin=subprocess.PIPE)
        proc.stdin.write(wav_stream_header(RATE, 1) + s16le_bytes(speech[:2 * RATE]))  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        assert proc.stdout.readline().startswith(b'{"window": 0')  # type: ignore[union-attr]
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert f"stopped ({signal.Signals(signum).name})".encode() in err
        assert b"Traceback" not in err
    proc = emo_predict(str(tiny_onnx), "--stream", "--window", "1", "--format", "s16le",
                       "--rate", "16000", stdin=subprocess.PIPE)
    out, err = proc.communicate(s16le_bytes(speech[:2 * RATE]) + b"x", timeout=60)
    assert proc.returncode == 1 and len(rows_of(out)) == 3
    assert err.decode().strip().splitlines()[-1] == (
        "Error: the input ended inside a frame (1 of 2 bytes): a truncated stream, or the "
        "wrong --format or --channels")


def test_cli_stream_refusals_are_one_line(tiny_onnx: Path, tmp_path: Path):
    model = str(tiny_onnx)
    cases = [
        (["stream", model, "--format", "s16le"], "--format s16le needs --rate"),
        (["stream", model, "--rate", "16000"], "--rate and --channels are for raw input"),
        (["stream", model, "-o", str(tmp_path / "x.jsonl")],
         "-o is for `emo-predict files` and `emo-predict ray`, not `emo-predict stream`"),
        (["stream", model, "a", "b"], "unexpected extra argument (b)"),
        ([model, "--hop", "1", str(tmp_path)],
         "--hop is for `emo-predict stream`, not `emo-predict files`"),
        (["stream", model, "--mic", "--format", "s16le"], "--format is for piped input"),
        (["stream", model, str(tmp_path / "missing.fifo")], "missing.fifo: cannot be read"),
        ([model, "--stream", "-o", "x.jsonl"], "-o is for `emo-predict files` and"),
    ]
    for args, message in cases:
        proc = emo_predict(*args, stdin=subprocess.DEVNULL)
        err = proc.communicate(timeout=60)[1].decode()
        assert proc.returncode == 2 and message in err and "Traceback" not in err, (args, err)
    proc = emo_predict(str(tiny_onnx), "--stream", stdin=subprocess.PIPE)
    err = proc.communicate(b"not a wav header", timeout=60)[1].decode()
    assert proc.returncode == 1 and err.strip().splitlines()[-1].startswith(
        "Error: not a WAV stream (no RIFF/WAVE header)")


def test_cli_mic_without_sounddevice_or_device_says_what_is_missing(tiny_onnx: Path):
    proc = emo_predict(str(tiny_onnx), "--mic", stdin=subprocess.DEVNULL)
    out, raw = proc.communicate(timeout=60)
    err = raw.decode()
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 1 and out == b"" and "Traceback" not in err
    assert last.startswith("Error: --mic") and ("sounddevice" in last or "no audio input "
                                                "device" in last)


FAKE_SOUNDDEVICE = '''
"""A stand-in for the sounddevice package: an input device that plays a file's samples
through the callback in 50 ms blocks at real time (the test's microphone)."""
import threading, time
import numpy as np

class PortAudioError(Exception):
    pass

def query_devices(kind=None):
    return {"name": "test microphone", "default_samplerate": 16000.0}

class InputStream:
    def __init__(self, samplerate, channels, dtype, blocksize, callback):
        self.samples = np.load(__file__.replace("sounddevice.py", "mic.npy"))
        self.rate, self.block, self.callback = samplerate, blocksize, callback
        assert channels == 2 and dtype == "float32"

    def _play(self):
        for i in range(0, len(self.samples), self.block):
            time.sleep(self.block / self.rate)
            self.callback(self.samples[i:i + self.block], self.block, None, None)

    def __enter__(self):
        threading.Thread(target=self._play, daemon=True).start()
        return self

    def __exit__(self, *exc):
        return False
'''


def test_cli_mic_reads_the_default_input_device_through_sounddevice(
        tiny_onnx: Path, recognizer: Recognizer, speech: np.ndarray, tmp_path: Path):
    """--mic through a stand-in sounddevice whose device plays stereo samples at real time:
    the windows are the library's on the same samples, and SIGTERM stops it cleanly."""
    (tmp_path / "sounddevice.py").write_text(FAKE_SOUNDDEVICE)
    stereo = np.stack([speech, 0.5 * speech], axis=1).astype(np.float32)
    np.save(tmp_path / "mic.npy", stereo)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = emo_predict(str(tiny_onnx), "--mic", "--channels", "2", "--window", "1",
                       "--hop", "0.5", stdin=subprocess.DEVNULL, env=env)
    lines = [proc.stdout.readline() for _ in range(6)]  # type: ignore[union-attr]
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"streaming: 16000 Hz, 2 channel(s); a 1 s window every 0.5 s" in err
    assert b"stopped (SIGTERM)" in err
    rows = rows_of(b"".join(lines) + rest)
    expected = run_blocks(recognizer, stereo, 800, window=1.0, hop=0.5, channels=2)
    assert len(rows) >= 6
    assert rows == [w.to_json() for w in expected[:len(rows)]]
