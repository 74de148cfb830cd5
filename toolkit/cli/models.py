"""MODEL as emo-predict and emo-serve take it: an exported artifact, a run directory or
emo-bench's choice file, with the options that open it, resolved once into a `ModelSpec`
that opens the same Recognizer wherever it is called (emo-serve's replicas open it in
their own processes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from emo_toolkit.cli.support import info
from emo_toolkit.runtime.audio import MAX_SECONDS
from emo_toolkit.runtime.choice import is_choice_file, read_choice
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.runtime.formats import RUNTIME_PRECISIONS, RUNTIMES
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.runtime.settings import setting
from emo_toolkit.runtime.windows import MIN_WINDOW_S, Window


@dataclass(frozen=True)
class ModelSpec:
    """What to open and how: `Recognizer.open`'s arguments, or a run's split. emo-predict's
    and emo-serve's options for them are made from these fields."""

    path: Path
    split: str | None = setting(None, "run directories only: which split's head "
                                "(cross-validation runs have one per fold) [default: the run's "
                                "only head]")
    device: str = setting("cpu", "cpu or cuda[:N]")
    runtime: str | None = setting(None, "what runs the artifact: a .onnx runs on onnxruntime "
                                  "(the default) or openvino (pip install "
                                  "'emo-toolkit[openvino]'); other formats on their own "
                                  "runtime", choices=RUNTIMES)
    precision: str | None = setting(None, "what to compute in [default: the precision the "
                                    "artifact was exported in]; bf16 and fp16 compute an fp32 "
                                    ".onnx on --runtime openvino, on CPUs with those units "
                                    "(AVX512-BF16/AMX-BF16, AVX512-FP16/AMX-FP16); rows then "
                                    "say \"precision\"", choices=RUNTIME_PRECISIONS)
    threads: int | None = setting(None, "the runtime's threads (each replica's, in emo-serve) "
                                  "[default: every core it sees]; for onnxruntime and "
                                  "openvino this model's, for torch and executorch the "
                                  "process's", range=(1, 1024))


    @classmethod
    def resolve(cls, model: Path, split: str | None = None, device: str = "cpu",
                runtime: str | None = None, precision: str | None = None,
                threads: int | None = None) -> ModelSpec:
        """MODEL and its options; a choice file gives its model, runtime, precision, device
        and threads, which options given override. click.UsageError for options that do not
        fit the model."""
        if is_choice_file(model):
            choice = read_choice(model)
            model = choice.model_path(model)
            device = device if device != "cpu" else choice.device
            runtime, precision = runtime or choice.runtime, precision or choice.precision
            threads = threads or choice.threads
        if split is not None and not model.is_dir():
            raise click.UsageError("--split is for run directories; an artifact holds one head")
        if model.is_dir() and (runtime or precision or threads):
            raise click.UsageError("--runtime, --precision and --threads are for artifacts; a "
                                   "run directory runs on torch in fp32")
        return cls(model, split, device, runtime, precision, threads)

    def open(self) -> Recognizer:
        """The Recognizer, in the calling process (emo-serve's and --ray's workers call it
        in theirs)."""
        if not self.path.is_dir():
            return Recognizer.open(self.path, self.device, runtime=self.runtime,
                                   precision=self.precision, threads=self.threads)
        require_extra("torch", "train", "predicting from a run directory (export it to "
                      "ONNX to predict without torch)")
        from emo_toolkit.train.inference import recognizer_from_run

        return recognizer_from_run(self.path, self.split, self.device)

    def computed_precision(self, recognizer: Recognizer) -> str | None:
        """The precision rows say they were computed in: only when one was asked for that
        is not the artifact's own (bf16 on OpenVINO, say)."""
        exported = recognizer.info.metadata.get("precision", "fp32")
        return recognizer.info.precision if self.precision and \
            recognizer.info.precision != exported else None


@dataclass(frozen=True)
class WindowOption:
    """The window a command asks for (None: the model's default); resolved once per model
    into a Window (announce_window)."""

    window: float | None = setting(
        None, "longest segment in seconds: longer audio is cut at pauses into segments of at "
        "most this length (in emo-serve a request may ask another with ?window=; with "
        "--stream, each window's length). Default: the 90th percentile of the training "
        "clips' durations, which the model records (10 s for artifacts that record none); "
        "stderr says which", range=(MIN_WINDOW_S, MAX_SECONDS))


def warn_if_untrained(recognizer: Recognizer) -> None:
    """The one warning every command that predicts gives for an UNTRAINED extractor."""
    if recognizer.info.untrained:
        click.secho("warning: this model's extractor has UNTRAINED weights: predictions are "
                    "for smoke tests only", err=True, fg="yellow")


def announce_window(recognizer: Recognizer, window: float | None) -> Window:
    """The window a command uses (`window`, or the model's default), resolved once and said
    on stderr with where it comes from, and a warning when it is well outside the training
    clips' range. The command passes on this value, never the seconds again."""
    resolved = recognizer.window(window)
    info(f"window: {resolved.describe()}")
    if resolved.warning:
        click.secho(f"warning: {resolved.warning}", err=True, fg="yellow")
    return resolved
