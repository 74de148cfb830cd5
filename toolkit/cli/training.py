"""Command-line entry points of the toolkit: `emo-data` (corpora) and `emo-train`
(emo-predict, the runtime's, is toolkit/cli/predict.py).

Thin on purpose: parse options, call one library function, print its result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from emo_toolkit.cli.support import (
    DEVICE,
    FiniteFloat,
    GuardedCommand,
    GuardedGroup,
    build,
    common_options,
    configure_logging,
    dataclass_options,
    info,
    usage_check,
)
from emo_toolkit.data.datasets import load_dataset, skipped_reasons
from emo_toolkit.data.demo_corpus import DemoCorpusConfig, make_demo_corpus
from emo_toolkit.data.scan import format_summary, scan_dataset, write_report
from emo_toolkit.runtime.checks import check_float
from emo_toolkit.runtime.errors import DatasetError
from emo_toolkit.runtime.io import atomic_write_json
from emo_toolkit.train.run_config import (
    DataOptions,
    ExtractorOptions,
    HeadOptions,
    RunConfig,
    SplitOptions,
    TrainConfig,
)

SEED = click.IntRange(0, 2**32 - 1)


def dataset_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = dataclass_options(DataOptions, skip=("source",))(f)
    return click.argument("source", type=click.Path(exists=True, path_type=Path))(f)


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
def scan_cmd(source: Path, report: Path | None, **options: Any) -> None:
    """Decode every clip under SOURCE and summarise the corpus.

    Prints clips per label and speaker, durations, and the files skipped with
    their reason. Bad files are skipped, never fatal.
    """
    data = build(DataOptions, options, source=str(source))
    summary = scan_dataset(source, data.layout, data.speaker_regex)
    click.echo(format_summary(summary))
    if report is not None:
        write_report(summary, report)
        click.echo(f"report: {report}")
    if not summary.infos:  # a corpus nothing can be trained on is a failure, not a summary
        raise DatasetError(f"{source}: no usable clips; {skipped_reasons(summary.skipped)}")


@data_cli.command("split")
@common_options
@dataset_options
@dataclass_options(SplitOptions)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the splits (file lists) as JSON here")
def split_cmd(source: Path, seed: int, out: Path | None, **options: Any) -> None:
    """Show how SOURCE would be split into train and test."""
    data = build(DataOptions, options, source=str(source))
    sp = build(SplitOptions, options)
    ds = scan_dataset(source, data.layout, data.speaker_regex, progress=False).dataset
    splits = sp.make(ds.clips, seed)
    for s in splits:
        held = f"  held out: {', '.join(s.held_out)}" if s.held_out else ""
        click.echo(f"{s.name:14s} train {len(s.train):5d}  test {len(s.test):5d}{held}")
    if out is not None:
        atomic_write_json(out, {
            "source": str(source), "layout": ds.layout, "protocol": sp.protocol,
            "seed": seed, "labels": list(ds.labels),
            "splits": [s.to_json(ds.clips, ds.root) for s in splits],
        })
        click.echo(f"splits: {out}")


@data_cli.command("features")
@common_options
@dataset_options
@dataclass_options(ExtractorOptions)
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="cpu or cuda[:N]")
@click.option("--batch-seconds", type=FiniteFloat(), default=64.0,
              show_default=True, help="padded audio per extraction batch")
def features_cmd(source: Path, device: str, batch_seconds: float, **options: Any) -> None:
    """Extract every layer's features of the clips under SOURCE into the cache.

    Clips already cached (same audio bytes, extractor, weights and settings)
    are reused; a rerun computes only what is missing. Bad files are skipped.
    Under `torchrun --nproc-per-node N` the N processes share the work: each
    computes its own share of the missing entries into the same cache.
    """
    data = build(DataOptions, options, source=str(source))
    x = build(ExtractorOptions, options)
    usage_check(lambda: check_float("--batch-seconds", batch_seconds, 0, 3600, low_open=True))
    from emo_toolkit.features import distributed
    from emo_toolkit.features.extractor import open_extractor
    from emo_toolkit.features.featurize import cache_for, extract_to_cache

    ranks = distributed.init(device)  # under torchrun, each rank extracts its share
    configure_logging(ranks.is_main)
    ds = load_dataset(source, data.layout, data.speaker_regex)
    model = open_extractor(x.name, weights=x.weights, untrained=x.untrained,
                           device=distributed.local_device(device, ranks))
    cache = cache_for(model, x.cache, precision=x.precision, storage=x.storage)  # type: ignore[arg-type]
    report = extract_to_cache([c.path for c in ds.clips], model, cache,
                              precision=x.precision, batch_seconds=batch_seconds,
                              max_batch=x.max_batch, num_workers=x.workers,
                              progress=ranks.is_main, ranks=ranks)
    distributed.finish(ranks)
    if not ranks.is_main:
        return
    if ranks.distributed:
        info(f"{ranks.world_size} processes, each extracting its share")
    for s in [*ds.skipped, *report.skipped]:
        click.echo(f"skipped [{s.reason}] {s.path}: {s.message}", err=True)
    click.echo(report.summary())


@click.command(cls=GuardedCommand, context_settings={"help_option_names": ["-h", "--help"],
                                                     "max_content_width": 100})
@common_options
@dataset_options
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="run directory to create; rerunning the same command resumes an unfinished "
                   "run there, and a finished run is never overwritten")
@click.option("--overwrite", is_flag=True,
              help="replace the run already in --out (complete, unfinished or failed); never "
                   "replaces a folder that is not a run directory")
@dataclass_options(SplitOptions)
@dataclass_options(ExtractorOptions)
@dataclass_options(TrainConfig)
@dataclass_options(HeadOptions)
def train_cli(source: Path, out_dir: Path, overwrite: bool, **options: Any) -> None:
    """Train the 3CNN+LSTM emotion head on SSL features of the clips under SOURCE.

    Writes a self-describing run directory (config, labels, metrics, plots,
    head weights, extractor identity, splits, library versions) to --out.

    Several processes: `torchrun --nproc-per-node N --no-python emo-train ...`
    shares feature extraction and trains the head with DistributedDataParallel
    (gloo on cpu, nccl on cuda, one GPU per process). --batch-size stays the
    global batch, so N processes train the model one process trains, up to
    float rounding; rank 0 alone writes the run directory.
    """
    # every option is checked here, before anything is created (or torch is imported)
    config = RunConfig(data=build(DataOptions, options, source=str(source)),
                       split=build(SplitOptions, options),
                       extractor=build(ExtractorOptions, options),
                       head=build(HeadOptions, options), train=build(TrainConfig, options))
    from emo_toolkit.features import distributed
    from emo_toolkit.train.loop import check_global_batch
    from emo_toolkit.train.run import run_training

    ranks = distributed.ranks_from_env()
    configure_logging(ranks.is_main)
    usage_check(lambda: check_global_batch(config.train.batch_size, ranks.world_size))
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
