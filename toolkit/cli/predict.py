"""`emo-predict`: classify audio files with an exported artifact or a trained run.

Thin on purpose: the work is `emo_toolkit.runtime.recognizer.Recognizer.predict_files`; the
rows it prints are defined in toolkit/runtime/output.py. Needs only the
runtime install for ONNX artifacts.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from emo_toolkit.cli.models import ModelSpec, announce_window, warn_if_untrained
from emo_toolkit.cli.streaming import (
    STREAM_FORMATS,
    StreamOptions,
    check_stream_options,
    predict_stream,
)
from emo_toolkit.cli.support import (
    DEVICE,
    FiniteFloat,
    GuardedCommand,
    common_options,
    info,
    usage_check,
)
from emo_toolkit.data.datasets import (
    SkippedFile,
    iter_audio_files,
    iter_listed_files,
    list_audio_files,
)
from emo_toolkit.runtime.audio import (
    AUDIO_EXTENSIONS,
    MAX_CHANNELS,
    MAX_RATE,
    MAX_SECONDS,
    MIN_RATE,
)
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.runtime.formats import RUNTIME_PRECISIONS, RUNTIMES
from emo_toolkit.runtime.output import RowWriter, output_format, rows
from emo_toolkit.runtime.progress import progress_bar
from emo_toolkit.runtime.recognizer import (
    FileError,
    Recognizer,
    RecordingPrediction,
)
from emo_toolkit.runtime.windows import MIN_WINDOW_S
from emo_toolkit.serve.scoring import (
    DEFAULT_BLOCK_FILES,
    ScoringOptions,
    ScoringSummary,
    count_failed,
    merge_shards,
    plan_blocks,
    prepare_folder,
    record_job,
    score_on_ray,
    write_listing,
)


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                     "max_content_width": 100})
@common_options
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--files-from", type=click.File("r", encoding="utf-8"), default=None,
              help="also the files listed in this file: one path per line (- reads stdin), or "
                   "a CSV manifest (.csv, its path column, relative to its folder); read as "
                   "the job goes, so lists of millions of files are fine")
@click.option("--split", default=None, help="run directories only: which split's head "
              "(cross-validation runs have one per fold) [default: the run's only head]")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu or cuda[:N]")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="what runs the artifact: a .onnx runs on onnxruntime (the default) or "
                   "openvino (pip install 'emo-toolkit[openvino]'); other formats on their "
                   "own runtime")
@click.option("--precision", type=click.Choice(RUNTIME_PRECISIONS), default=None,
              help="what to compute in [default: the precision the artifact was exported "
                   "in]; bf16 and fp16 compute an fp32 .onnx on --runtime openvino, on CPUs "
                   "with those units (AVX512-BF16/AMX, AVX512-FP16); rows then say "
                   "\"precision\"")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="the runtime's threads [default: every core it sees]; for onnxruntime and "
                   "openvino this model's, for torch and executorch the process's")
@click.option("--batch-size", type=click.IntRange(1, 256), default=1, show_default=True,
              help="segments run together, up to this many: of any lengths when the model "
                   "takes lengths (exports with --ragged, runs), else of equal length only "
                   "(padding without lengths would change the result)")
@click.option("--window", type=FiniteFloat(MIN_WINDOW_S, MAX_SECONDS), default=None,
              help="longest segment in seconds: longer files are cut at pauses into segments "
                   "of at most this length; with --stream, each window's length. Default: "
                   "the 90th percentile of the training clips' durations, which the model "
                   "records (10 s for artifacts that record none); stderr says which")
@click.option("--segments", is_flag=True,
              help="also write one row per segment (start, end, label, probabilities)")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="write the rows to this file instead of stdout: JSON lines (.jsonl, .json) "
                   "or CSV (.csv), chosen by the name's ending; with --ray, the folder of "
                   "shards")
@click.option("--timeline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="draw each label's probability over time to this PNG (one input file only)")
@click.option("--ray", "on_ray", is_flag=True,
              help="score on a Ray cluster (the [serve] extra): blocks of files go to a pool "
                   "of actors, each block's rows to a shard in the -o folder; the same "
                   "command again resumes (see docs/serving.md)")
@click.option("--address", default=None,
              help="with --ray: the running Ray cluster to use (`ray start --head`'s address, "
                   "or auto) [default: a local cluster for this run]")
@click.option("--workers", type=click.IntRange(1, 4096), default=1, show_default=True,
              help="with --ray: actors scoring at once, each with its own model")
@click.option("--cpus-per-worker", type=FiniteFloat(0.0, 1024.0), default=1.0,
              show_default=True, help="with --ray: CPUs Ray reserves for each actor")
@click.option("--gpus-per-worker", type=FiniteFloat(0.0, 64.0), default=0.0,
              show_default=True, help="with --ray: GPUs Ray reserves for each actor")
@click.option("--block-files", type=click.IntRange(1, 100_000), default=DEFAULT_BLOCK_FILES,
              show_default=True, help="with --ray: files per block (a shard, the unit of "
                                      "work and of resuming)")
@click.option("--merge", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="with --ray: also write every row, in input order, to this file (.jsonl "
                   "or .csv), as -o FILE writes them without --ray")
@click.option("--stream", "live", is_flag=True,
              help="classify live audio from stdin, or from the one PATH given (a FIFO or a "
                   "file), in windows of --window seconds every --hop seconds: one JSON line "
                   "per window, printed as soon as it is ready")
@click.option("--mic", is_flag=True, help="like --stream, from the default input device "
              "(needs the sounddevice package)")
@click.option("--format", "encoding", type=click.Choice(STREAM_FORMATS), default="wav",
              show_default=True, help="--stream input: a WAV stream, or raw little-endian "
              "samples (then --rate and --channels)")
@click.option("--rate", type=click.IntRange(MIN_RATE, MAX_RATE), default=None,
              help="raw --stream input's sample rate (Hz); --mic: the device's default")
@click.option("--channels", type=click.IntRange(1, MAX_CHANNELS), default=None,
              help="raw --stream input's and --mic's channels (default 1)")
@click.option("--hop", type=FiniteFloat(0.01, MAX_SECONDS), default=None,
              help="--stream: seconds from one window's start to the next (default: half "
                   "the window)")
@click.option("--smoothing", type=FiniteFloat(0.01, 1.0), default=None,
              help="--stream: also give each window's exponentially smoothed probabilities, "
                   "this weight on the newest window")
@click.option("--max-delay", type=FiniteFloat(0.0, 3600.0), default=2.0, show_default=True,
              help="--stream from a pipe, FIFO or --mic: when more than this many seconds "
                   "of complete windows wait, skip to the newest (and say so); 0 classifies "
                   "every window, however late (a regular file always gets every window)")
def main(model: Path, paths: tuple[Path, ...], files_from: Any, split: str | None, device: str,
         runtime: str | None, precision: str | None, threads: int | None, batch_size: int,
         window: float | None, segments: bool, output: Path | None, timeline: Path | None,
         on_ray: bool, address: str | None, workers: int, cpus_per_worker: float,
         gpus_per_worker: float, block_files: int, merge: Path | None, live: bool,
         mic: bool, encoding: str, rate: int | None, channels: int | None, hop: float | None,
         smoothing: float | None, max_delay: float) -> None:
    """Classify audio files (or every audio file under folders) with MODEL: an exported
    artifact (model.onnx needs only `pip install 'emo-toolkit[cpu]'`; .torchscript.pt,
    .pt2 and .aoti.pt2 need torch; .pte needs the [edge] extra), a run directory (needs
    the [train] extra), or emo-bench's choice.json (the artifact, runtime and precision
    it found fastest on this machine; options given here override it).

    Prints one JSON line per file: label, probabilities by label (the mean over its
    segments, weighted by duration), duration and segment count, or error and message.
    Files longer than --window are cut at pauses and each segment is classified.
    Bad files do not stop the others; the exit status is 1 when any file failed (a
    folder without audio files, or one that cannot be listed, counts as one). Every row
    says whether the model is UNTRAINED. Progress goes to stderr.

    With --ray, the files are scored on a Ray cluster by --workers actors, a block of
    --block-files at a time, each block's rows written to a shard in the -o folder (and
    all of them in order to --merge FILE); the same command after a crash or Ctrl-C
    scores only the blocks that have no shard yet (docs/serving.md).

    With --stream (or --mic), live audio is classified window by window as it arrives:
    `arecord -f S16_LE -r 16000 | emo-predict model.onnx --stream` (docs/streaming.md).
    """
    if live or mic:
        _predict_stream(model, paths, split, device, runtime, precision, threads, window,
                        StreamOptions(None, mic, encoding, rate, channels, None, hop,
                                      smoothing, max_delay or None),
                        files_from is not None or on_ray or output is not None or segments
                        or timeline is not None)
        return
    if (encoding, rate, channels, hop, smoothing) != ("wav", None, None, None, None):
        raise click.UsageError("--format, --rate, --channels, --hop and --smoothing are for "
                               "--stream and --mic")
    if not paths and files_from is None:
        raise click.UsageError("give the files or folders to classify (PATHS), or --files-from")
    spec = ModelSpec.resolve(model, split, device, runtime, precision, threads)
    if on_ray:
        _score_on_ray(spec, paths, files_from, output, timeline, address, merge,
                      ScoringOptions(window, batch_size, segments, False, workers,
                                     cpus_per_worker, gpus_per_worker, block_files))
        return
    if address or merge or workers != 1:
        raise click.UsageError("--address, --workers and --merge are for --ray")
    if output is not None and output.is_dir():
        raise click.UsageError(f"-o {output}: is a folder; the rows go to a file (folders "
                               "of shards are for --ray)")
    fmt = usage_check(lambda: output_format(output)) if output else "jsonl"
    files, empty, unlisted = [], [], []
    for p in paths:  # a path the OS refuses (too long, say) becomes that file's error row
        found, refused = list_audio_files(p) if _is_dir(p) else ([p], [])
        files += found
        unlisted += refused
        empty += [] if found or refused else [p]
    files += list(_listed(files_from))
    if timeline is not None and (len(files) != 1 or empty):
        raise click.UsageError(f"--timeline draws one file; {len(files)} were given")
    if timeline is not None:
        require_extra("matplotlib", "plot", "--timeline")
    recognizer = spec.open()
    said = spec.computed_precision(recognizer)
    warn_if_untrained(recognizer)
    resolved = announce_window(recognizer, window)
    not_run = [(folder, _no_audio()) for folder in empty] + \
        [(s.path, FileError(s.reason, s.message)) for s in unlisted]
    failed, drawn = len(not_run), None
    with _rows_out(output) as stream:
        writer = RowWriter(stream, fmt, recognizer.labels, precision=said is not None)
        for path, error in not_run:
            for row in rows(path, error, segments, recognizer.info.untrained, said):
                writer.write(row)
        bar = _SecondsBar(_total_seconds(files))
        try:
            for path, result in recognizer.predict_files(files, resolved, batch_size,
                                                         progress=bar.update):
                failed += isinstance(result, FileError)
                for row in rows(path, result, segments, recognizer.info.untrained, said):
                    writer.write(row)
                if timeline is not None and isinstance(result, RecordingPrediction):
                    drawn = (result, path)
        finally:
            bar.close()
    if output is not None:
        info(f"{len(files) + len(not_run)} file(s): {output}")
    if drawn is not None:  # after the rows are written: a failed drawing never loses them
        result, path = drawn
        _draw(result, recognizer, path, timeline)
    if failed:
        click.echo(f"{failed} of {len(files) + len(not_run)} file(s) failed", err=True)
        raise SystemExit(1)


def _predict_stream(model: Path, paths: tuple[Path, ...], split: str | None, device: str,
                    runtime: str | None, precision: str | None, threads: int | None,
                    window: float | None, options: StreamOptions, file_options: bool) -> None:
    if file_options:
        raise click.UsageError("--files-from, --ray, -o, --segments and --timeline are for "
                               "files; --stream writes one JSON line per window to stdout")
    if len(paths) > 1:
        raise click.UsageError("--stream reads one input: stdin, or one FIFO or file")
    options = replace(options, source=paths[0] if paths else None)
    check_stream_options(options)
    spec = ModelSpec.resolve(model, split, device, runtime, precision, threads)
    recognizer = spec.open()
    warn_if_untrained(recognizer)
    predict_stream(recognizer, replace(options, window=announce_window(recognizer, window)))


@contextlib.contextmanager
def _rows_out(output: Path | None) -> Any:
    """stdout, or the output file written atomically (a killed run leaves the old one)."""
    if output is None:
        yield sys.stdout
        return
    from emo_toolkit.runtime.io import atomic_open

    with atomic_open(output, text=True) as fh:
        yield fh


class _SecondsBar:
    """A progress bar counted in whole seconds of audio."""

    def __init__(self, total: float):
        self.bar = progress_bar(int(total) or None, "predicting", "s of audio")
        self.done = 0.0

    def update(self, seconds: float) -> None:
        shown = int(self.done)
        self.done += seconds
        self.bar.update(int(self.done) - shown)

    def close(self) -> None:
        self.bar.close()


def _total_seconds(files: list[Path]) -> float:
    """Audio seconds to process, from the headers (a file that cannot be read counts 0)."""
    import soundfile as sf

    total = 0.0
    for f in files:
        with contextlib.suppress(Exception):
            if f.is_file():  # never open a FIFO or device here: it could block
                total += sf.info(str(f)).duration
    return total


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # Path.is_dir raises for ENAMETOOLONG, EACCES and the like
        return False


def _draw(result: RecordingPrediction, recognizer: Recognizer, path: Path,
          timeline: Path) -> None:
    from emo_toolkit.runtime.plots import plot_timeline

    parts, labels = result.segments, recognizer.labels
    untrained = " (UNTRAINED extractor: a smoke test)" if recognizer.info.untrained else ""
    plot_timeline([s.start for s in parts], [s.end for s in parts],
                  [[s.prediction.probabilities[k] for k in labels] for s in parts], labels,
                  timeline, f"{path.name}: {result.label} over {result.duration:.1f} s "
                            f"({len(parts)} segments){untrained}")
    info(f"timeline: {timeline}")



def _inputs(paths: tuple[Path, ...], files_from: Any,
            not_run: list[tuple[Path, FileError]]) -> Iterator[Path]:
    """The inputs in emo-predict's order, found as they are needed; folders without audio
    and folders that cannot be listed go to `not_run`."""
    for p in paths:
        if not _is_dir(p):
            yield p
            continue
        found = 0
        refused: list[SkippedFile] = []
        for f in iter_audio_files(p, refused.append):
            found += 1
            yield f
        not_run += [(s.path, FileError(s.reason, s.message)) for s in refused]
        if not found and not refused:
            not_run.append((p, _no_audio()))
    yield from _listed(files_from)


def _listed(files_from: Any) -> Iterator[Path]:
    if files_from is not None:
        yield from iter_listed_files(files_from, files_from.name)


def _no_audio() -> FileError:
    return FileError("no-audio", "no audio files "
                     f"({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder")


def _score_on_ray(spec: ModelSpec, paths: tuple[Path, ...], files_from: Any,
                  output: Path | None, timeline: Path | None, address: str | None,
                  merge_to: Path | None, options: ScoringOptions) -> None:
    """--ray: plan the blocks, score them on the cluster, merge if asked (scoring.py)."""
    require_extra("ray", "serve", "emo-predict --ray")
    if output is None:
        raise click.UsageError("--ray writes a shard per block of files into a folder: give "
                               "it with -o DIR")
    if timeline is not None:
        raise click.UsageError("--timeline draws one file; it is not for --ray")
    merge_fmt = usage_check(lambda: output_format(merge_to)) if merge_to else None
    recognizer = spec.open()  # here first: a model that cannot be opened is one line
    said = spec.computed_precision(recognizer)
    warn_if_untrained(recognizer)
    options = replace(options, precision_said=said is not None,
                      window=announce_window(recognizer, options.window))
    prepare_folder(output)
    not_run: list[tuple[Path, FileError]] = []
    total, blocks, todo = plan_blocks(_inputs(paths, files_from, not_run), output,
                                      options.block_files)
    write_listing(output, not_run, recognizer.info.untrained, said)
    info(f"{total} file(s) in {blocks} block(s); {total - todo} already scored in {output}")
    bar = progress_bar(todo or None, "scoring", "files")
    try:
        run = score_on_ray(spec.open, output, options, address, bar.update)
    finally:
        bar.close()
    if merge_to is None:
        failed = count_failed(output)
    else:  # one pass over the shards: merging counts the failures
        with _rows_out(merge_to) as fh:
            failed = merge_shards(output, fh, merge_fmt or "jsonl", list(recognizer.labels),
                                  said is not None)
        info(f"merged: {merge_to}")
    record_job(output, ScoringSummary(total, todo, failed, blocks, run))
    info(f"{total + len(not_run)} input(s) scored into {blocks} shard(s) in {output}"
         + (f" on {len(run.nodes)} node(s)" if run.nodes else ""))
    if failed:
        click.echo(f"{failed} of {total + len(not_run)} file(s) failed", err=True)
        raise SystemExit(1)
