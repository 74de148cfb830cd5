"""MODEL as emo-predict and emo-serve take it: an exported artifact, a run directory or
emo-bench's choice file, with the options that open it, resolved once into a `ModelSpec`
that opens the same Recognizer wherever it is called (emo-serve's replicas open it in
their own processes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from emo_toolkit.cli.support import info
from emo_toolkit.runtime.choice import is_choice_file, read_choice
from emo_toolkit.runtime.errors import require_extra
from emo_toolkit.runtime.recognizer import Recognizer
from emo_toolkit.runtime.windows import Window


@dataclass(frozen=True)
class ModelSpec:
    """What to open and how: `Recognizer.open`'s arguments, or a run's split."""

    path: Path
    split: str | None = None
    device: str = "cpu"
    runtime: str | None = None
    precision: str | None = None
    threads: int | None = None

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
