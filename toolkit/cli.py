"""Command-line entry points of the toolkit: `emo-data` (corpora) and `emo-train`.

Thin on purpose: parse options, call one library function, print its result.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from toolkit.audio import AUDIO_EXTENSIONS
from toolkit.cli_support import (
    DEVICE,
    FiniteFloat,
    GuardedCommand,
    GuardedGroup,
    common_options,
    configure_logging,
    speaker_regex,
    user_errors,
)
from toolkit.datasets import LAYOUTS, load_dataset
from toolkit.demo_corpus import DemoCorpusConfig, make_demo_corpus
from toolkit.io import atomic_write_json
from toolkit.scan import format_summary, scan_dataset, write_report
from toolkit.splits import PROTOCOLS, make_splits
from toolkit.ssl_models import DEFAULT_EXTRACTOR, EXTRACTOR_NAMES, PRECISIONS

DEFAULT_CACHE = Path(os.environ.get("EMO_TOOLKIT_CACHE",
                                    Path.home() / ".cache" / "emo-toolkit" / "features"))
SEED = click.IntRange(0, 2**32 - 1)


def dataset_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--speaker-regex", default=None, metavar="REGEX", callback=speaker_regex,
                     help="folders layout: read the speaker from file names with this regex, "
                          "which must have a (?P<speaker>...) group. Default: the sub-folder "
                          "under each label folder, if any.")(f)
    f = click.option("--layout", type=click.Choice(LAYOUTS), default="auto", show_default=True,
                     help="how labels and speakers are found: one folder per label, a CSV "
                          "manifest (path,label[,speaker][,session]), or a public corpus's "
                          "file names; auto detects it.")(f)
    return click.argument("source", type=click.Path(exists=True, path_type=Path))(f)


def _with_options(f: Callable[..., Any], options: list[Callable[..., Any]]) -> Callable[..., Any]:
    for option in reversed(options):
        f = option(f)
    return f


def split_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return _with_options(f, [
        click.option("--protocol", type=click.Choice(PROTOCOLS), default="holdout",
                     show_default=True,
                     help="notebook: the original shuffle into 5 parts, part 5 held out; "
                          "holdout: whole speakers (or sessions) held out for test; loso: "
                          "leave-speaker-out cross-validation"),
        click.option("--group-by", type=click.Choice(["speaker", "session"]), default="speaker",
                     show_default=True, help="what holdout and loso keep apart"),
        click.option("--folds", type=click.IntRange(2, 10_000), default=None,
                     help="loso: number of folds [default: one per speaker/session]"),
        click.option("--test-fraction", type=FiniteFloat(0, 1, low_open=True, high_open=True),
                     default=0.2, show_default=True,
                     help="holdout: hold out whole groups until this share of clips is in test"),
        click.option("--test-speakers", default=None, metavar="A,B",
                     help="holdout: exactly these speakers/sessions in test"),
        click.option("--allow-speaker-overlap", is_flag=True,
                     help="let one speaker sit in train and test (refused by default)"),
    ])


def cache_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return _with_options(f, [
        click.option("--cache", "cache_root", type=click.Path(file_okay=False, path_type=Path),
                     default=DEFAULT_CACHE, show_default=True,
                     help="feature cache folder (or set EMO_TOOLKIT_CACHE)"),
        click.option("--storage", type=click.Choice(["fp16", "fp32"]), default="fp16",
                     show_default=True, help="dtype of cached features"),
        click.option("--max-batch", type=click.IntRange(1, 4096), default=None,
                     help="clips per extraction batch [default: 1 on cpu, 16 on cuda]"),
        click.option("--workers", type=click.IntRange(0, 64), default=1, show_default=True,
                     help="DataLoader processes decoding audio while the model runs (0: none)"),
    ])


def extractor_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--extractor", type=click.Choice(EXTRACTOR_NAMES), default=DEFAULT_EXTRACTOR,
                     show_default=True, help="self-supervised model whose layers are the features"),
        click.option("--extractor-weights", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="local checkpoint in torchaudio's state-dict format "
                     "(.pt/.pth, loaded with weights_only=True, or .safetensors) [default: the "
                     "pretrained weights from the torch hub cache, downloaded if missing]"),
        click.option("--untrained", is_flag=True,
                     help="random weights: for smoke runs and tests only; labelled UNTRAINED"),
        click.option("--device", type=DEVICE, default="cpu", show_default=True,
                     help="cpu or cuda[:N]"),
        click.option("--precision", type=click.Choice(PRECISIONS), default="fp32",
                     show_default=True, help="fp16/bf16: CUDA autocast"),
    ]
    return _with_options(f, options)


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
def data_cli() -> None:
    """Corpora for emo-toolkit: make the demo corpus, check a dataset, preview splits."""


@data_cli.command("demo")
@common_options
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=SEED, default=0, show_default=True, help="same seed, same bytes")
@click.option("--speakers", type=click.IntRange(1, 8), default=8, show_default=True,
              help="synthetic speakers (1-8)")
@click.option("--clips-per-emotion", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="clips per speaker and emotion")
@click.option("--force", is_flag=True, help="replace OUT_DIR if it holds something else")
def demo_cmd(out_dir: Path, seed: int, speakers: int, clips_per_emotion: int, force: bool) -> None:
    """Write the synthetic demo corpus (5 emotions, 16 kHz WAV) to OUT_DIR.

    It is for smoke runs and tests, not a benchmark of emotion recognition.
    An existing corpus made with the same settings is reused.
    """
    with user_errors():
        try:
            config = DemoCorpusConfig(seed, speakers, clips_per_emotion)
        except ValueError as e:
            raise click.BadParameter(str(e)) from e
        root = make_demo_corpus(out_dir, config, force=force)
    n = speakers * clips_per_emotion * 5
    click.echo(f"demo corpus: {root} ({n} clips, {speakers} speakers, seed {seed}; synthetic, "
               "for smoke runs only)")


@data_cli.command("scan")
@common_options
@dataset_options
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="also write the summary, with every skipped file, as JSON here")
def scan_cmd(source: Path, layout: str, speaker_regex: str | None, report: Path | None) -> None:
    """Decode every clip under SOURCE and summarise the corpus.

    Prints clips per label and speaker, durations, and the files skipped with
    their reason. Bad files are skipped, never fatal.
    """
    with user_errors():
        summary = scan_dataset(source, layout, speaker_regex)
        click.echo(format_summary(summary))
        if report is not None:
            write_report(summary, report)
            click.echo(f"report: {report}")


@data_cli.command("split")
@common_options
@dataset_options
@split_options
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the splits (file lists) as JSON here")
def split_cmd(source: Path, layout: str, speaker_regex: str | None, protocol: str, group_by: str,
              folds: int | None, test_fraction: float, test_speakers: str | None, seed: int,
              allow_speaker_overlap: bool, out: Path | None) -> None:
    """Show how SOURCE would be split into train and test."""
    with user_errors():
        ds = scan_dataset(source, layout, speaker_regex, progress=False).dataset
        groups = [s.strip() for s in test_speakers.split(",")] if test_speakers else None
        splits = make_splits(protocol, ds.clips, seed=seed, group_by=group_by,  # type: ignore[arg-type]
                             folds=folds, test_fraction=test_fraction, test_groups=groups,
                             allow_speaker_overlap=allow_speaker_overlap)
        for s in splits:
            held = f"  held out: {', '.join(s.held_out)}" if s.held_out else ""
            click.echo(f"{s.name:14s} train {len(s.train):5d}  test {len(s.test):5d}{held}")
        if out is not None:
            atomic_write_json(out, {
                "source": str(source), "layout": ds.layout, "protocol": protocol,
                "seed": seed, "labels": list(ds.labels),
                "splits": [s.to_json(ds.clips, ds.root) for s in splits],
            })
            click.echo(f"splits: {out}")


@data_cli.command("features")
@common_options
@dataset_options
@extractor_options
@cache_options
@click.option("--batch-seconds", type=FiniteFloat(0, 3600, low_open=True), default=64.0,
              show_default=True, help="padded audio per extraction batch")
def features_cmd(source: Path, layout: str, speaker_regex: str | None, extractor: str,
                 extractor_weights: Path | None, untrained: bool, device: str, precision: str,
                 cache_root: Path, storage: str, batch_seconds: float, max_batch: int | None,
                 workers: int) -> None:
    """Extract every layer's features of the clips under SOURCE into the cache.

    Clips already cached (same audio bytes, extractor, weights and settings)
    are reused; a rerun computes only what is missing. Bad files are skipped.
    Under `torchrun --nproc-per-node N` the N processes share the work: each
    computes its own share of the missing entries into the same cache.
    """
    from toolkit import distributed
    from toolkit.extractor import open_extractor
    from toolkit.featurize import cache_for, extract_to_cache

    ranks = distributed.init(device)  # under torchrun, each rank extracts its share
    configure_logging(ranks.is_main)
    with user_errors():
        ds = load_dataset(source, layout, speaker_regex)
        model = open_extractor(extractor, weights=extractor_weights, untrained=untrained,
                               device=distributed.local_device(device, ranks))
        cache = cache_for(model, cache_root, precision=precision, storage=storage)
        report = extract_to_cache([c.path for c in ds.clips], model, cache, precision=precision,
                                  batch_seconds=batch_seconds, max_batch=max_batch,
                                  num_workers=workers, progress=ranks.is_main, ranks=ranks)
        distributed.finish(ranks)
        if not ranks.is_main:
            return
        if ranks.distributed:
            click.echo(f"{ranks.world_size} processes, each extracting its share", err=True)
        for s in [*ds.skipped, *report.skipped]:
            click.echo(f"skipped [{s.reason}] {s.path}: {s.message}", err=True)
        click.echo(report.summary())


def _ints(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError as e:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from e


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                     "max_content_width": 100})
@common_options
@dataset_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="run directory to create; rerunning the same command resumes an unfinished "
                   "run there, and a finished run is never overwritten")
@split_options
@extractor_options
@cache_options
@click.option("--overwrite", is_flag=True,
              help="replace the run already in --out (complete, unfinished or failed); never "
                   "replaces a folder that is not a run directory")
@click.option("--epochs", default=50, show_default=True, help="at most this many epochs")
@click.option("--batch-size", default=16, show_default=True,
              help="clips per optimiser step; under torchrun the global batch, shared by the "
                   "processes (so a multiple of their number)")
@click.option("--lr", type=FiniteFloat(0, 10, low_open=True), default=1e-3, show_default=True,
              help="Adam learning rate")
@click.option("--patience", default=10, show_default=True,
              help="stop after this many epochs without a better validation UA")
@click.option("--val-fraction", type=FiniteFloat(0, 1, low_open=True, high_open=True),
              default=0.15, show_default=True,
              help="share of the training clips held out for validation (whole speakers when "
                   "known)")
@click.option("--class-weighted", is_flag=True, help="weight the loss by inverse class frequency")
@click.option("--grad-clip", type=FiniteFloat(0, 1e6), default=5.0, show_default=True,
              help="max gradient norm (0: off)")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="same seed, same results on cpu")
@click.option("--embed-dim", default=128, show_default=True, help="head: Linear D -> this")
@click.option("--conv-channels", default=128, show_default=True, help="head: channels per conv")
@click.option("--kernel-sizes", default="3,5,7", show_default=True,
              callback=lambda ctx, param, value: _ints(value),
              help="head: the parallel convs' kernel sizes")
@click.option("--lstm-hidden", default=512, show_default=True, help="head: LSTM hidden size")
@click.option("--lstm-layers", default=2, show_default=True, help="head: LSTM layers")
@click.option("--bidirectional", is_flag=True, help="head: bidirectional LSTM")
@click.option("--lstm-dropout", type=FiniteFloat(0, 1, high_open=True), default=0.0,
              show_default=True, help="head: between LSTM layers")
def train_cli(source: Path, layout: str, speaker_regex: str | None, out_dir: Path, protocol: str,
              group_by: str, folds: int | None, test_fraction: float, test_speakers: str | None,
              allow_speaker_overlap: bool, extractor: str, extractor_weights: Path | None,
              untrained: bool, device: str, precision: str, cache_root: Path, storage: str,
              max_batch: int | None, workers: int, overwrite: bool, epochs: int,
              batch_size: int, lr: float,
              patience: int, val_fraction: float, class_weighted: bool, grad_clip: float,
              seed: int, embed_dim: int, conv_channels: int, kernel_sizes: tuple[int, ...],
              lstm_hidden: int, lstm_layers: int, bidirectional: bool,
              lstm_dropout: float) -> None:
    """Train the 3CNN+LSTM emotion head on SSL features of the clips under SOURCE.

    Writes a self-describing run directory (config, labels, metrics, plots,
    head weights, extractor identity, splits, library versions) to --out.

    Several processes: `torchrun --nproc-per-node N --no-python emo-train ...`
    shares feature extraction and trains the head with DistributedDataParallel
    (gloo on cpu, nccl on cuda, one GPU per process). --batch-size stays the
    global batch, so N processes train the model one process trains, up to
    float rounding; rank 0 alone writes the run directory.
    """
    from toolkit import distributed
    from toolkit.run import run_training
    from toolkit.run_config import (
        DataOptions,
        ExtractorOptions,
        HeadOptions,
        RunConfig,
        SplitOptions,
    )
    from toolkit.train import TrainConfig, check_global_batch

    ranks = distributed.ranks_from_env()
    configure_logging(ranks.is_main)
    with user_errors():
        try:  # every option is checked here, before anything is created
            config = RunConfig(
                data=DataOptions(source=str(source), layout=layout, speaker_regex=speaker_regex),
                split=SplitOptions(
                    protocol=protocol, group_by=group_by, folds=folds,
                    test_fraction=test_fraction,
                    test_speakers=tuple(s.strip() for s in test_speakers.split(","))
                    if test_speakers else None, allow_speaker_overlap=allow_speaker_overlap),
                extractor=ExtractorOptions(
                    name=extractor, weights=str(extractor_weights) if extractor_weights else None,
                    untrained=untrained, precision=precision, storage=storage,
                    cache=str(cache_root), max_batch=max_batch, workers=workers),
                head=HeadOptions(
                    embed_dim=embed_dim, conv_channels=conv_channels, kernel_sizes=kernel_sizes,
                    lstm_hidden=lstm_hidden, lstm_layers=lstm_layers,
                    bidirectional=bidirectional, lstm_dropout=lstm_dropout),
                train=TrainConfig(
                    epochs=epochs, batch_size=batch_size, lr=lr, patience=patience,
                    val_fraction=val_fraction, class_weighted=class_weighted,
                    grad_clip=grad_clip, seed=seed, device=device),
            )
            check_global_batch(batch_size, ranks.world_size)
        except ValueError as e:
            raise click.UsageError(str(e)) from e
        metrics = run_training(config, out_dir, overwrite=overwrite)
        distributed.finish(ranks)
    if ranks.is_main:
        click.echo(format_metrics(metrics, out_dir))


def format_metrics(metrics: dict[str, Any], out_dir: Path) -> str:
    lines = ["", f"{'split':22s} {'WA':>6s} {'UA':>6s} {'F1':>6s} {'best epoch':>10s} "
             f"{'test clips':>10s}"]
    for name, m in metrics["splits"].items():
        lines.append(f"{name:22s} {m['wa']:6.3f} {m['ua']:6.3f} {m['macro_f1']:6.3f} "
                     f"{m['best_epoch']:10d} {m['num_clips']:10d}")
    if len(metrics["splits"]) > 1:
        ms = metrics["mean_std"]
        lines.append(f"{'mean ± std':22s} " + " ".join(
            f"{ms[k]['mean']:.3f}±{ms[k]['std']:.3f}" for k in ("wa", "ua", "macro_f1")))
    lines.append(f"chance UA {metrics['chance_ua']:.3f} ({len(metrics['labels'])} labels); "
                 f"run directory: {out_dir}")
    if metrics["untrained_extractor"]:
        lines.append("NOTE: the extractor had UNTRAINED (random) weights: these figures are a "
                     "smoke test, not a result.")
    return "\n".join(lines)


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--split", default=None, help="which split's head (cross-validation runs have one "
              "per fold) [default: the run's only head]")
@click.option("--device", type=DEVICE, default="cpu", show_default=True)
def predict_cli(run_dir: Path, paths: tuple[Path, ...], split: str | None, device: str) -> None:
    """Classify audio files (or every audio file under folders) with a trained run.

    Prints one JSON line per file: file, label and probabilities by label, or
    error and message. Bad files do not stop the others; the exit status is 1
    when any file failed (a folder without audio files counts as one).
    """
    from toolkit.datasets import list_audio_files
    from toolkit.inference import load_run, predict_files
    from toolkit.io import to_json

    with user_errors():
        loaded = load_run(run_dir, split, device)
        if not loaded.recognizer.extractor.identity.trained:
            click.secho("warning: this run's extractor has UNTRAINED weights: predictions are "
                        "for smoke tests only", err=True, fg="yellow")
        files, empty = [], []
        for p in paths:
            found = list_audio_files(p) if p.is_dir() else [p]
            files += found
            empty += [] if found else [p]
        for folder in empty:
            click.echo(to_json({"file": str(folder), "error": "no-audio", "message": "no audio "
                                f"files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder"},
                               indent=None))
        failed = len(empty)
        for result in predict_files(loaded.recognizer, files):
            failed += "error" in result
            click.echo(to_json(result, indent=None))
    if failed:
        click.echo(f"{failed} of {len(files) + len(empty)} file(s) failed", err=True)
        raise SystemExit(1)
