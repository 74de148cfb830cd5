"""`emo-predict`: classify audio with an exported artifact or a trained run, in three modes,
each a subcommand with its own --help:

    emo-predict [files] MODEL PATHS...    files and folders, one row per file
    emo-predict ray MODEL PATHS... -o DIR an archive on a Ray cluster, resumable
    emo-predict stream MODEL [PATH]       live audio (stdin, a FIFO, a file or --mic)

`files` is the default, so `emo-predict MODEL PATHS...` works as before; the spellings
before the subcommands (`--ray`, `--stream`, `--mic`) still work, with a one-line note.
Thin on purpose: the work is the library's (Recognizer.predict_files,
toolkit/scoring/archive.py, toolkit/runtime/live.py); every option comes from the dataclass
it sets (ModelSpec, WindowOption, ScoringOptions, StreamOptions), or is this module's own.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from emo_toolkit.cli.models import ModelSpec, WindowOption, announce_window, warn_if_untrained
from emo_toolkit.cli.streaming import StreamOptions, check_stream_options, predict_stream
from emo_toolkit.cli.support import (
    GuardedCommand,
    GuardedGroup,
    build,
    common_options,
    dataclass_options,
    info,
    take,
    usage_check,
)
from emo_toolkit.data.datasets import (
    SkippedFile,
    iter_audio_files,
    iter_listed_files,
    list_audio_files,
)
from emo_toolkit.runtime.audio import AUDIO_EXTENSIONS
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.runtime.output import RowWriter, output_format, rows
from emo_toolkit.runtime.progress import progress_bar
from emo_toolkit.runtime.recognizer import (
    FileError,
    Recognizer,
    RecordingPrediction,
)
from emo_toolkit.scoring.archive import (
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

SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
FILES = "files"
LEGACY_MODES = {"--ray": "ray", "--stream": "stream", "--mic": "stream"}
"""The spellings before subcommands: the flag, and the subcommand it stands for."""
COMMON_FLAGS = ("-q", "--quiet", "--debug")


class PredictCommands(GuardedGroup):
    """emo-predict's subcommands, `files` by default; the older spellings are routed to the
    subcommand they mean, and an option of another subcommand is named in one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if a not in COMMON_FLAGS), None)
        if first is not None and first not in self.commands and first not in (
                "-h", "--help", "--version"):
            mode = next((LEGACY_MODES[a] for a in args if a in LEGACY_MODES), FILES)
            flag = next((a for a in args if a in LEGACY_MODES), None)
            if flag is not None and not set(args) & {"-q", "--quiet"}:
                click.echo(f"note: `emo-predict MODEL ... {flag}` is `emo-predict {mode} MODEL "
                           f"...` now; the old spelling still works", err=True)
            rest = [a for a in args if a not in ("--ray", "--stream")]
            args = [mode, *rest]
        if args and args[0] in self.commands:
            self._refuse_foreign_options(args[0], args[1:])
        return super().parse_args(ctx, args)

    def _refuse_foreign_options(self, mode: str, args: list[str]) -> None:
        mine = {o for p in self.commands[mode].params for o in getattr(p, "opts", ())}
        for arg in args:
            name = arg.split("=", 1)[0]
            if not name.startswith("-") or name in mine or name in ("-", "--"):
                continue
            others = [m for m, c in self.commands.items()
                      if name in {o for p in c.params for o in getattr(p, "opts", ())}]
            if others:
                raise click.UsageError(f"{name} is for " + " and ".join(
                    f"`emo-predict {m}`" for m in others) + f", not `emo-predict {mode}`")


@click.group(cls=PredictCommands, context_settings=SETTINGS)
@common_options
def main() -> None:
    """Classify audio with MODEL: an exported artifact (model.onnx needs only `pip install
    'emo-toolkit[cpu]'`; .torchscript.pt, .pt2 and .aoti.pt2 need torch; .pte needs the
    [edge] extra), a run directory (needs the [train] extra), or emo-bench's choice.json
    (the artifact, runtime and precision it found fastest on this machine; options given
    override it). Every row says whether the model is UNTRAINED.

    `emo-predict MODEL PATHS...` is `emo-predict files MODEL PATHS...`. The older
    `--ray`, `--stream` and `--mic` still work and say which subcommand they are.
    """


model_argument = click.argument("model", type=click.Path(exists=True, path_type=Path))
files_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
files_from_option = click.option(
    "--files-from", type=click.File("r", encoding="utf-8"), default=None,
    help="also the files listed in this file: one path per line (- reads stdin), or a CSV "
         "manifest (.csv, its path column, relative to its folder); read as the job goes, "
         "so lists of millions of files are fine")


def model_options(command: Any) -> Any:
    """MODEL and the options every mode opens it with."""
    for decorate in (dataclass_options(WindowOption), dataclass_options(ModelSpec),
                     model_argument, common_options):
        command = decorate(command)
    return command


@main.command(FILES, cls=GuardedCommand, context_settings=SETTINGS)
@model_options
@files_argument
@files_from_option
@dataclass_options(ScoringOptions, only=("batch_size", "segments"))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="write the rows to this file instead of stdout: JSON lines (.jsonl, .json) "
                   "or CSV (.csv), chosen by the name's ending")
@click.option("--timeline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="draw each label's probability over time to this PNG (one input file only)")
def files_command(model: Path, paths: tuple[Path, ...], files_from: Any, output: Path | None,
                  timeline: Path | None, **options: Any) -> None:
    """Classify audio files (or every audio file under folders): one JSON line per file
    (label, probabilities by label, the mean over its segments weighted by duration,
    duration and segment count, or error and message).

    Files longer than --window are cut at pauses and each segment is classified. Bad files
    do not stop the others; the exit status is 1 when any file failed (a folder without
    audio files, or one that cannot be listed, counts as one). Progress goes to stderr.
    """
    if not paths and files_from is None:
        raise click.UsageError("give the files or folders to classify (PATHS), or --files-from")
    spec = ModelSpec.resolve(model, **take(ModelSpec, options))
    window = build(WindowOption, options).window
    scoring = build(ScoringOptions, options)
    batch_size, segments = scoring.batch_size, scoring.segments
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



@main.command("ray", cls=GuardedCommand, context_settings=SETTINGS)
@model_options
@files_argument
@files_from_option
@dataclass_options(ScoringOptions)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="the folder of shards (required): one per block of files, each written "
                   "atomically")
@click.option("--merge", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write every row, in input order, to this file (.jsonl or .csv), as "
                   "`emo-predict files -o FILE` writes them")
@click.option("--address", default=None,
              help="the running Ray cluster to use (`ray start --head`'s address, or auto) "
                   "[default: a local cluster for this run]")
def ray_command(model: Path, paths: tuple[Path, ...], files_from: Any, output: Path | None,
                merge: Path | None, address: str | None, **options: Any) -> None:
    """Score an archive on a Ray cluster (the [serve] extra): the files go to --workers
    actors a block of --block-files at a time, each block's rows to a shard in the -o
    folder (and all of them in order to --merge FILE); the same command after a crash or
    Ctrl-C scores only the blocks that have no shard yet (docs/serving.md).
    """
    if not paths and files_from is None:
        raise click.UsageError("give the files or folders to classify (PATHS), or --files-from")
    spec = ModelSpec.resolve(model, **take(ModelSpec, options))
    window = build(WindowOption, options).window
    _score_on_ray(spec, paths, files_from, output, address, merge,
                  build(ScoringOptions, options), window)


@main.command("stream", cls=GuardedCommand, context_settings=SETTINGS)
@model_options
@click.argument("source", required=False, type=click.Path(path_type=Path))
@dataclass_options(StreamOptions)
def stream_command(model: Path, source: Path | None, **options: Any) -> None:
    """Classify live audio window by window as it arrives, from stdin, or from SOURCE (a
    FIFO or a file), or with --mic the default input device: one JSON line per window of
    --window seconds every --hop seconds, printed as soon as it is ready, e.g.
    `arecord -f S16_LE -r 16000 | emo-predict stream model.onnx` (docs/streaming.md).
    """
    stream = build(StreamOptions, options, source=source)
    check_stream_options(stream)
    spec = ModelSpec.resolve(model, **take(ModelSpec, options))
    window = build(WindowOption, options).window
    recognizer = spec.open()
    warn_if_untrained(recognizer)
    predict_stream(recognizer, replace(stream, window=announce_window(recognizer, window)))


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
                  output: Path | None, address: str | None, merge_to: Path | None,
                  options: ScoringOptions, window: float | None) -> None:
    """ray: plan the blocks, score them on the cluster, merge if asked (scoring/archive.py)."""
    require_extra("ray", "serve", "emo-predict ray")
    if output is None:
        raise click.UsageError("emo-predict ray writes a shard per block of files into a "
                               "folder: give it with -o DIR")
    merge_fmt = usage_check(lambda: output_format(merge_to)) if merge_to else None
    recognizer = spec.open()  # here first: a model that cannot be opened is one line
    said = spec.computed_precision(recognizer)
    warn_if_untrained(recognizer)
    options = replace(options, precision_said=said is not None,
                      window=announce_window(recognizer, window))
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
