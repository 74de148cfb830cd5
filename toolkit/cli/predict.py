"""`emo-predict`: classify audio files with an exported artifact or a trained run.

Thin on purpose: the work is `emo_toolkit.runtime.recognizer.Recognizer.predict_files`; the
rows it prints are defined in toolkit/runtime/output.py. Needs only the
runtime install for ONNX artifacts.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import click

from emo_toolkit.cli.models import ModelSpec
from emo_toolkit.cli.support import (
    DEVICE,
    FiniteFloat,
    GuardedCommand,
    common_options,
    info,
    usage_check,
)
from emo_toolkit.data.datasets import list_audio_files
from emo_toolkit.runtime.audio import AUDIO_EXTENSIONS, MAX_SECONDS
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.runtime.formats import RUNTIME_PRECISIONS, RUNTIMES
from emo_toolkit.runtime.output import RowWriter, output_format, rows
from emo_toolkit.runtime.progress import progress_bar
from emo_toolkit.runtime.recognizer import (
    DEFAULT_WINDOW_S,
    FileError,
    Recognizer,
    RecordingPrediction,
)


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                     "max_content_width": 100})
@common_options
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
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
@click.option("--window", type=FiniteFloat(1.0, MAX_SECONDS), default=DEFAULT_WINDOW_S,
              show_default=True, help="longest segment in seconds: longer files are cut at "
                                      "pauses into segments of at most this length")
@click.option("--segments", is_flag=True,
              help="also write one row per segment (start, end, label, probabilities)")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the rows to this file instead of stdout: JSON lines (.jsonl, .json) "
                   "or CSV (.csv), chosen by the name's ending")
@click.option("--timeline", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="draw each label's probability over time to this PNG (one input file only)")
def main(model: Path, paths: tuple[Path, ...], split: str | None, device: str,
         runtime: str | None, precision: str | None, threads: int | None, batch_size: int,
         window: float, segments: bool, output: Path | None, timeline: Path | None) -> None:
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
    """
    fmt = usage_check(lambda: output_format(output)) if output else "jsonl"
    spec = ModelSpec.resolve(model, split, device, runtime, precision, threads)
    files, empty, unlisted = [], [], []
    for p in paths:  # a path the OS refuses (too long, say) becomes that file's error row
        found, refused = list_audio_files(p) if _is_dir(p) else ([p], [])
        files += found
        unlisted += refused
        empty += [] if found or refused else [p]
    if timeline is not None and (len(files) != 1 or empty):
        raise click.UsageError(f"--timeline draws one file; {len(files)} were given")
    if timeline is not None:
        require_extra("matplotlib", "plot", "--timeline")
    recognizer = spec.open()
    said = spec.computed_precision(recognizer)
    if recognizer.info.untrained:
        click.secho("warning: this model's extractor has UNTRAINED weights: predictions are "
                    "for smoke tests only", err=True, fg="yellow")
    not_run = [(folder, FileError("no-audio", "no audio files "
                                  f"({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder"))
               for folder in empty] + [(s.path, FileError(s.reason, s.message)) for s in unlisted]
    failed, drawn = len(not_run), None
    with _rows_out(output) as stream:
        writer = RowWriter(stream, fmt, recognizer.labels, precision=said is not None)
        for path, error in not_run:
            for row in rows(path, error, segments, recognizer.info.untrained, said):
                writer.write(row)
        bar = _SecondsBar(_total_seconds(files))
        try:
            for path, result in recognizer.predict_files(files, window, batch_size,
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

