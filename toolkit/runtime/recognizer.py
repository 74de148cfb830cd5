"""The public inference API: a `Recognizer` from an exported artifact (a trained run's own
eager model: emo_toolkit.train.inference.recognizer_from_run, which needs torch).

    from emo_toolkit.runtime.recognizer import Recognizer

    recognizer = Recognizer.open("model.onnx")
    print(recognizer.predict_file("clip.wav").label)
    print(recognizer.predict(samples, sample_rate=44_100).probabilities)
    for part in recognizer.predict_recording("meeting.flac").segments: ...

Every path applies the same rules before the model sees a sample: decode (files),
refuse non-finite or out-of-range samples, mix to mono, resample to the model's
input rate with the toolkit's resampler (a NumPy one: toolkit/runtime/resample.py), and
refuse clips shorter than the model's minimum. Labels, input rate and minimum
length come from the artifact's embedded metadata (or the run's files).

Importing this module and running an ONNX artifact imports neither torch nor
torchaudio: `pip install 'emo-toolkit[cpu]'` is enough. TorchScript, pt2 and
AOTInductor artifacts import torch when opened (and run code from the file: open
only artifacts you trust).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from emo_toolkit.runtime.audio import (
    MAX_CHANNELS,
    MAX_SECONDS,
    AudioStream,
    check_min_samples,
    check_rate,
    check_samples,
    load_audio,
    resample,
    stream_resampler,
    too_long,
)
from emo_toolkit.runtime.checks import check_device, check_int
from emo_toolkit.runtime.choice import read_choice
from emo_toolkit.runtime.errors import (
    ArtifactError,
    AudioError,
    EmoToolkitError,
    InferenceError,
    NonFiniteError,
    TooLongAudioError,
    ZeroLengthAudioError,
    per_file_error,
    require_extra,
)
from emo_toolkit.runtime.formats import format_of
from emo_toolkit.runtime.formats.base import Runner, RunOptions, check_digest
from emo_toolkit.runtime.predictions import (
    FileError,
    ModelInfo,
    Prediction,
    RecordingPrediction,
    SegmentPrediction,
    layout_inputs,
)
from emo_toolkit.runtime.rules import REASON
from emo_toolkit.runtime.segments import Segment, segment
from emo_toolkit.runtime.stream import (
    DECODE_BATCH,
    Smoothing,
    Stream,
    StreamDecodeError,
    WindowPrediction,
    decode_streams,
)
from emo_toolkit.runtime.windows import Window

__all__ = [
    "MAX_PADDING",
    "FileError",
    "ModelInfo",
    "Prediction",
    "Recognizer",
    "RecordingPrediction",
    "Runner",
    "SegmentPrediction",
    "Stream",
    "StreamDecodeError",
    "Window",
    "WindowPrediction",
]


MAX_PADDING = {"cpu": 0.0, "cuda": 0.25}
"""The default `Recognizer.max_padding` per device: the largest share of a padded batch that
may be padding (graphs that take lengths; see batch_plan). Padding is computed like audio:
on a 2-core CPU, 8 clips of 1 to 10 s took 1.23 times as long in batches padding at most
20 % and 2.0 times as long in one padded batch as in one call each (docs/figures/results/batching),
so the CPU batches equal lengths only. On a GPU a call's fixed cost weighs more; 0.25 is
a starting point that no GPU has measured yet."""


def default_max_padding(device: str) -> float:
    return MAX_PADDING["cuda" if device.startswith("cuda") else "cpu"]


ARRAY_NAME = "<array>"
"""How errors name a waveform given as an array."""

_BLOCK_S = 4        # seconds of a file decoded at a time
_QUEUE_WINDOWS = 4  # segments (in windows of audio, per batch slot) queued to form batches


class Recognizer:
    """Waveforms, files and recordings in; typed predictions out. See the module docstring."""

    def __init__(self, runner: Runner, info: ModelInfo, max_padding: float = 0.0):
        self.runner, self.info = runner, info
        self.max_padding = max_padding  # see MAX_PADDING; 1.0 batches any lengths together

    @property
    def labels(self) -> tuple[str, ...]:
        return self.info.labels

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def min_samples(self) -> int:
        return self.info.min_samples

    @classmethod
    def open(cls, path: str | Path, device: str = "cpu", *, runtime: str | None = None,
             precision: str | None = None, threads: int | None = None,
             **options: Any) -> Recognizer:
        """An exported artifact (.onnx, .torchscript.pt, .pt2, .aoti.pt2, .pte) on `device`.

        `runtime`: for .onnx, "onnxruntime" (the default) or "openvino"; other formats run
        on their own (torch, executorch). `precision`: what to compute in, by default the
        precision the artifact was exported in; OpenVINO computes an fp32 .onnx in "bf16"
        or "fp16" on CPUs with those units (refused elsewhere). `threads`: the runtime's
        threads (ONNX Runtime and OpenVINO: this model's; torch and ExecuTorch: the
        process's). `options` go to the loader (ONNX Runtime: `providers`). The precision
        computed in is `info.precision`, the runtime `info.runtime`."""
        check_device(device)
        if threads is not None:
            check_int("threads", threads, 1, 1024)
        path = Path(path)
        fmt = format_of(path)
        if not path.is_file():
            raise ArtifactError(f"{path}: no such artifact file")
        load, requires = fmt.loader(runtime)
        check_digest(path)  # before loading: a torch archive runs code when loaded
        if requires:
            require_extra(*requires, f"a {fmt.name} artifact"
                          + (f" on {runtime}" if runtime not in (None, fmt.runtime) else ""))
        try:
            loaded = load(path, device, run=RunOptions(runtime, precision, threads), **options)
        except EmoToolkitError:
            raise
        except Exception as e:  # whatever the runtime says about a file it cannot load
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            raise ArtifactError(f"{path}: cannot be loaded as an artifact of format {fmt.name} "
                                f"({type(e).__name__}: {first})") from e
        if loaded.metadata is None:
            raise ArtifactError(f"{path}: holds no emo_toolkit metadata; it was not written "
                                "by emo-export")
        info = ModelInfo.from_metadata(loaded.metadata, path, fmt.name)  # before any .get
        computed = loaded.precision or info.precision
        if precision is not None and precision != computed:
            raise ArtifactError(f"{path}: {runtime or fmt.runtime} computes this artifact in "
                                f"the precision it was exported in ({info.precision}), not "
                                f"{precision}; an fp32 .onnx computes in bf16 or fp16 with "
                                "runtime openvino")
        exported_for = str(loaded.metadata.get("device", "cpu")).partition(":")[0]
        if fmt.name == "torchscript" and exported_for != device.partition(":")[0]:
            # a trace pins the devices of the tensors the graph makes (pytorch#31141)
            raise ArtifactError(f"{path}: this TorchScript artifact was traced for "
                                f"{exported_for}; export it with --device {device} to run it "
                                "there")
        info = replace(info, precision=computed, runtime=runtime or fmt.runtime,
                       threads=loaded.threads)
        return cls(loaded.runner, info, default_max_padding(device))

    @classmethod
    def from_choice(cls, path: str | Path) -> Recognizer:
        """The artifact an emo-bench choice file names, opened with its runtime, precision,
        device and threads (toolkit/runtime/choice.py)."""
        path = Path(path)
        choice = read_choice(path)
        model = choice.model_path(path)
        if model.is_dir():
            raise ArtifactError(f"{path}: the choice is the run itself (eager PyTorch), "
                                f"{model}: open it with emo-predict or recognizer_from_run")
        return cls.open(model, **choice.open_options())

    @classmethod
    def front_end(cls, info: ModelInfo) -> Recognizer:
        """A Recognizer for `info` whose model runs in another process (emo-serve's model
        replicas): it decodes, checks, resamples and cuts audio and builds results by the
        same rules; asking it for logits raises InferenceError."""
        return cls(_ModelElsewhere(info.source), info)

    # --- clips ------------------------------------------------------------------------

    def logits(self, batch: np.ndarray, lengths: Sequence[int] | np.ndarray | None = None
               ) -> np.ndarray:
        """The model's logits (B, C) for a (B, S) batch already at `sample_rate`, after the
        shape and length checks; what parity checks and benchmarks call. `lengths` gives
        each row's valid samples (rows zero-padded after them): only a graph that takes
        lengths (`info.takes_lengths`) runs rows of different lengths together."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"a batch must be (batch, samples), got shape {list(x.shape)}")
        n = np.full(x.shape[0], x.shape[1], np.int64) if lengths is None else \
            np.asarray(lengths, dtype=np.int64)
        if n.shape != (x.shape[0],) or n.max() > x.shape[1]:
            raise ValueError(f"lengths must give 1 to {x.shape[1]} samples for each of the "
                             f"{x.shape[0]} rows, got {n.tolist()}")
        check_min_samples(ARRAY_NAME, int(n.min()), self.min_samples, self.sample_rate)
        check_samples(ARRAY_NAME, x)  # non-finite or out-of-range samples never reach a model
        longest = self.info.max_samples
        if longest is not None and x.shape[1] > longest:
            raise ValueError(f"{self.info.source}: takes clips of at most {longest} samples "
                             f"({longest / self.sample_rate:g} s), got {x.shape[1]}; "
                             "predict_recording cuts longer audio into segments")
        if self.info.layout == "clips" and n.min() < x.shape[1]:
            raise ValueError(f"{self.info.source}: this graph takes whole clips only; rows of "
                             "different lengths need an export with --ragged")
        inputs = layout_inputs(self.info.layout, x, n)
        try:
            return np.asarray(self.runner(*inputs))
        except (RuntimeError, MemoryError) as e:
            raise InferenceError(f"the model failed on a {list(x.shape)} batch "
                                 f"({type(e).__name__}: {_first_line(e)})") from e

    def predict(self, waveform: np.ndarray, sample_rate: int) -> Prediction:
        """One clip given as samples: (samples,) or (samples, channels), float, any rate."""
        return self.predict_batch([waveform], sample_rate)[0]

    def predict_batch(self, waveforms: Sequence[np.ndarray], sample_rate: int,
                      batch_size: int = 8) -> list[Prediction]:
        """Several clips at one rate, up to `batch_size` a call. A graph that takes lengths
        (a run, or an export with --ragged) batches clips of any lengths; others batch
        equal lengths only (zero padding without lengths would change the features)."""
        clips = [self._prepare(w, sample_rate, limit=MAX_SECONDS) for w in waveforms]
        return [self.prediction(row) for row in self.logits_of_clips(clips, batch_size)]

    def predict_file(self, path: str | Path) -> Prediction:
        """A whole file as one clip (at most emo_toolkit.runtime.audio.MAX_SECONDS long)."""
        samples = load_audio(path, self.sample_rate, self.min_samples).samples
        return self.prediction(self.logits_of_clips([samples], 1)[0])

    # --- recordings -------------------------------------------------------------------

    def predict_recording(self, source: str | Path | np.ndarray, sample_rate: int | None = None,
                          window: float | Window | None = None,
                          batch_size: int = 1) -> RecordingPrediction:
        """A recording of any length, cut at pauses into segments of at most `window`
        seconds (toolkit/runtime/segments.py; None: `default_window_s`, from the training
        clips' durations); a file is read in blocks, so memory stays flat."""
        name, blocks = self.recording_blocks(source, sample_rate)
        (job,) = self._recordings([(name, lambda: blocks)], window, batch_size)
        if job.exception is not None:
            raise job.exception
        return job.result(self)  # type: ignore[return-value]

    def predict_files(self, paths: Iterable[str | Path], window: float | Window | None = None,
                      batch_size: int = 1, progress: Callable[[float], None] | None = None,
                      ) -> Iterator[tuple[Path, RecordingPrediction | FileError]]:
        """Each file as a recording, in order; a file that fails gets a FileError and never
        stops the others. `progress` hears the seconds of audio each batch adds."""
        if isinstance(paths, (str, bytes, Path)):
            raise TypeError(f"paths must be an iterable of paths, got one path {paths!r}: "
                            "use predict_file, or predict_files([path])")
        sources = ((Path(p), lambda p=p: self.read_blocks(p)) for p in paths)
        for job in self._recordings(sources, window, batch_size, progress):
            yield Path(job.name), job.result(self)

    def recording_blocks(self, source: str | Path | np.ndarray, sample_rate: int | None = None
                         ) -> tuple[str | Path, Iterable[np.ndarray]]:
        """A recording's name (the path, or ARRAY_NAME) and its mono blocks at `sample_rate`:
        a file is decoded lazily, a waveform checked and resampled at once."""
        if not isinstance(source, np.ndarray):
            return source, self.read_blocks(source)
        if sample_rate is None:
            raise ValueError("a waveform needs its sample_rate")
        return ARRAY_NAME, [self._prepare(source, sample_rate, limit=None)]

    @property
    def default_window_s(self) -> float:
        """The window (seconds) of recordings and streams unless told: the training clips'
        90th percentile duration, capped by the longest input the artifact takes
        (toolkit/runtime/windows.py)."""
        return self.info.default_window_s

    def window(self, window: float | Window | None = None) -> Window:
        """A window in seconds (None: the default) resolved for this model: its samples,
        at most what the artifact takes, and where they come from. Every method that takes
        a window takes this value too, so a command resolves it once."""
        return self.info.window(window)

    def cut(self, name: str | Path, blocks: Iterable[np.ndarray], window: float | Window | None
            = None) -> Iterator[Segment]:
        """A recording's segments (toolkit/runtime/segments.py), each checked as a clip;
        ZeroLengthAudioError when it holds no samples."""
        any_segment = False
        samples = self.window(window).samples
        for seg in segment(blocks, self.sample_rate, samples, self.min_samples):
            # only a recording shorter than the minimum has a shorter segment
            check_min_samples(name, seg.length, self.min_samples, self.sample_rate)
            any_segment = True
            yield seg
        if not any_segment:
            raise ZeroLengthAudioError(name, "no audio samples")

    def recording(self, spans: Sequence[tuple[int, int]], logits: Sequence[np.ndarray]
                  ) -> RecordingPrediction:
        """A recording's result from its segments' [start, end) samples and their logits."""
        rate = self.sample_rate
        parts = [SegmentPrediction(a / rate, b / rate, self.prediction(z))
                 for (a, b), z in zip(spans, logits, strict=True)]
        return RecordingPrediction.from_segments(parts, self.labels)

    def stream(self, sample_rate: int, window: float | Window | None = None,
               hop: float | None = None,
               *, channels: int = 1, smoothing: float | None = None) -> Stream:
        """Live audio at `sample_rate` Hz with `channels` channels, classified in windows of
        `window` seconds (None: `default_window_s`) every `hop` seconds (None: half a
        window); `smoothing`: the weight of the newest window in an exponential smoothing
        of the probabilities (None: none). See toolkit/runtime/stream.py."""
        return Stream(self, whole_rate(sample_rate), window, hop, channels=channels,
                      smoothing=None if smoothing is None else Smoothing(smoothing))

    def read_blocks(self, path: str | Path) -> Iterator[np.ndarray]:
        """A file of any length as mono blocks at `sample_rate`, decoded and resampled a block
        at a time."""
        with AudioStream(path, max_seconds=None) as stream:
            resampler = stream_resampler(stream.sample_rate, self.sample_rate)
            for block in stream.blocks(frames=_BLOCK_S * stream.sample_rate):
                out = resampler.push(block)
                if out.size:
                    yield out
            yield resampler.flush()

    # --- internals --------------------------------------------------------------------

    def _prepare(self, waveform: np.ndarray, sample_rate: int, limit: float | None) -> np.ndarray:
        """The rules for samples given as an array: float, mono mix, finite and in range,
        a supported rate, at most `limit` seconds, resampled, at least min_samples."""
        x = np.asarray(waveform)
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"waveform samples must be float in [-1, 1], got {x.dtype}")
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or not 1 <= x.shape[1] <= MAX_CHANNELS:
            raise ValueError(f"a waveform must be (samples,) or (samples, channels) with at "
                             f"most {MAX_CHANNELS} channels, got shape {list(np.shape(waveform))}"
                             "; for (channels, samples) pass waveform.T")
        sample_rate = whole_rate(sample_rate)
        check_rate(ARRAY_NAME, sample_rate)
        if limit is not None and x.shape[0] > limit * sample_rate:
            raise TooLongAudioError(ARRAY_NAME, f"{too_long(x.shape[0] / sample_rate, limit)} "
                                    "one clip may be; use predict_recording, which cuts it "
                                    "into segments")
        check_samples(ARRAY_NAME, x)
        mono = x.astype(np.float32).mean(axis=1, dtype=np.float32)
        samples = resample(mono, sample_rate, self.sample_rate)
        check_min_samples(ARRAY_NAME, samples.size, self.min_samples, self.sample_rate)
        return samples

    def logits_of_clips(self, clips: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
        """Logits per clip (1-D arrays at `sample_rate`), up to `batch_size` clips a call
        (batch_plan: through a graph that takes lengths, clips of similar lengths share a
        zero-padded batch, at most `max_padding` of it padding; others, equal lengths)."""
        out: list[np.ndarray] = [np.empty(0)] * len(clips)
        padding = self.max_padding if self.info.takes_lengths else 0.0
        for chunk in batch_plan([c.size for c in clips], batch_size, padding):
            batch, lengths = pad_clips([clips[i] for i in chunk])
            logits = self.logits(batch, lengths)
            if logits.shape != (len(chunk), len(self.labels)):
                raise InferenceError(f"the model returned logits of shape "
                                     f"{list(logits.shape)}; its metadata promises "
                                     f"[{len(chunk)}, {len(self.labels)}]")
            for i, row in zip(chunk, logits, strict=True):
                out[i] = row
        return out

    def logits_or_failures(self, clips: Sequence[np.ndarray], batch_size: int
                           ) -> list[np.ndarray | EmoToolkitError]:
        """`logits_of_clips`, and after a failed batch each clip alone, so one bad clip fails
        only itself: per clip, its logits or the error it got. The one retry rule of
        recordings, streams (decode_streams) and emo-serve's replicas."""
        try:
            return list(self.logits_of_clips(clips, batch_size))
        except (InferenceError, AudioError) as e:
            if len(clips) == 1:
                return [e]
        out: list[np.ndarray | EmoToolkitError] = []
        for clip in clips:
            try:
                out.append(self.logits_of_clips([clip], 1)[0])
            except (InferenceError, AudioError) as e:
                out.append(e)
        return out

    def decode_streams(self, streams: Sequence[Stream], limit: int | None = None,
                       batch_size: int = DECODE_BATCH) -> list[list[WindowPrediction]]:
        """The ready windows (at most `limit` per stream) of several streams of this
        recognizer, equal-length windows sharing batches of up to `batch_size`: per stream,
        its windows, as decoding each alone gives them (toolkit/runtime/stream.py)."""
        return decode_streams(self, streams, limit, batch_size)

    def prediction(self, logits: np.ndarray) -> Prediction:
        """One clip's prediction from its logits; NonFiniteError for NaN or infinite ones."""
        if not np.isfinite(logits).all():
            raise NonFiniteError("the model's outputs for this clip are NaN or infinite")
        return Prediction.from_logits(logits, self.labels, self.info.untrained)

    def _recordings(self, sources: Iterable[tuple[str | Path, Callable[[], Iterable[np.ndarray]]]],
                    window: float | Window | None, batch_size: int,
                    progress: Callable[[float], None] | None = None,
                    ) -> Iterator[_Job]:
        """Segments of every source, queued so that equal-length segments (of one file or
        several) share batches; results come back in source order."""
        resolved = self.window(window)
        queue = _SegmentQueue(self, batch_size, _QUEUE_WINDOWS * max(1, batch_size) *
                              resolved.samples)
        for name, blocks in sources:
            job = queue.open(name)
            try:
                for seg in self.cut(name, blocks(), resolved):
                    queue.add(job, seg)
            except Exception as e:  # one bad file never stops the others
                error = per_file_error(name, e)
                job.fail(FileError(error.reason, error.problem), e)
            job.closed = True
            yield from queue.finished(progress)
        queue.run()
        yield from queue.finished(progress)


class _ModelElsewhere:
    """The runner of a front-end Recognizer: its model runs in another process."""

    def __init__(self, source: str):
        self.source = source

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        raise InferenceError(f"{self.source}: this recognizer's model runs in another process")


class _Job:
    """One source's segments and, as batches run, their logits."""

    def __init__(self, name: str | Path):
        self.name = name
        self.segments: list[tuple[int, int]] = []
        self.logits: list[np.ndarray | None] = []
        self.error: FileError | None = None
        self.exception: Exception | None = None  # what the API raises for `error`
        self.closed = False

    def fail(self, error: FileError, exception: Exception) -> None:
        if self.error is None:
            self.error, self.exception = error, exception

    @property
    def complete(self) -> bool:
        return self.closed and (self.error is not None or all(x is not None for x in self.logits))

    def result(self, recognizer: Recognizer) -> RecordingPrediction | FileError:
        if self.error is not None:
            return self.error
        return recognizer.recording(self.segments, self.logits)  # type: ignore[arg-type]


class _SegmentQueue:
    """Segments waiting for a batch; runs them when `capacity` samples are queued."""

    def __init__(self, recognizer: Recognizer, batch_size: int, capacity: int):
        self.recognizer, self.batch_size, self.capacity = recognizer, batch_size, capacity
        self.jobs: collections.deque[_Job] = collections.deque()
        self.items: list[tuple[_Job, int, Segment]] = []
        self.queued = 0
        self.seconds_done = 0.0

    def open(self, name: str | Path) -> _Job:
        self.jobs.append(_Job(name))
        return self.jobs[-1]

    def add(self, job: _Job, seg: Segment) -> None:
        job.segments.append((seg.start, seg.end))
        job.logits.append(None)
        self.items.append((job, len(job.segments) - 1, seg))
        self.queued += seg.length
        if self.batch_size <= 1 or self.queued >= self.capacity:
            self.run()

    def run(self) -> None:
        items, self.items, self.queued = self.items, [], 0
        items = [(job, i, seg) for job, i, seg in items if job.error is None]
        if not items:
            return
        rows = self.recognizer.logits_or_failures([seg.samples for _, _, seg in items],
                                                  self.batch_size)
        for (job, i, seg), row in zip(items, rows, strict=True):
            self.seconds_done += seg.length / self.recognizer.sample_rate
            if not isinstance(row, np.ndarray):
                job.fail(FileError(REASON["inference_failed"], str(row)), row)
                continue
            if not np.isfinite(row).all():
                message = (f"the model's outputs for the segment at "
                           f"{seg.start / self.recognizer.sample_rate:.2f} s are NaN or infinite")
                job.fail(FileError(REASON["non_finite_output"], message), NonFiniteError(message))
            job.logits[i] = row

    def finished(self, progress: Callable[[float], None] | None) -> Iterator[_Job]:
        """The jobs at the front whose every segment has run, in order."""
        if progress is not None and self.seconds_done:
            progress(self.seconds_done)
            self.seconds_done = 0.0
        while self.jobs and self.jobs[0].complete:
            yield self.jobs.popleft()


def whole_rate(value: Any) -> int:
    """A sample rate given as a whole number of Hz (16000, 16000.0, numpy integers)."""
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float, np.number)) \
            or not np.isfinite(value) or int(value) != value:
        raise ValueError(f"sample_rate must be a whole number of Hz, got {value!r}")
    return int(value)


def pad_clips(clips: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """1-D clips as one float32 (B, longest) batch, zero-padded after each clip, and their
    lengths: what `Recognizer.logits` takes."""
    lengths = [c.size for c in clips]
    batch = np.zeros((len(clips), max(lengths)), np.float32)
    for row, clip in enumerate(clips):
        batch[row, :clip.size] = clip
    return batch, lengths


def batch_plan(lengths: Sequence[int], batch_size: int, max_padding: float) -> list[list[int]]:
    """Indices of clips grouped into batches of at most `batch_size`: longest first, a clip
    joins the batch while padding to the batch's longest clip stays at most `max_padding`
    of the batch's samples (0.0: equal lengths only)."""
    size = max(1, batch_size)
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
        batch = batches[-1] if batches else None
        if batch and len(batch) < size:
            samples = sum(lengths[k] for k in batch) + lengths[i]
            if 1 - samples / (lengths[batch[0]] * (len(batch) + 1)) <= max_padding + 1e-12:
                batch.append(i)
                continue
        batches.append([i])
    return batches


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else ""
