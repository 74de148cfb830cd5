"""emo-train's job: dataset -> splits -> cached features -> head per split -> run directory.

The run directory's layout is toolkit/train/rundir.py's; a split's checkpoint.pt is
removed when the split is done.

Under torchrun every process runs run_training with the same configuration:
rank 0 alone creates the run directory, scans the corpus and writes every file;
feature extraction and head training are shared (see toolkit/train/loop.py), and all
ranks end with the same metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from safetensors.torch import save as safetensors_bytes

from emo_toolkit.data.datasets import Clip
from emo_toolkit.data.scan import scan_dataset
from emo_toolkit.data.splits import Split, carve_validation
from emo_toolkit.features import distributed
from emo_toolkit.features.cache import FeatureCache
from emo_toolkit.features.distributed import Ranks
from emo_toolkit.features.extractor import open_extractor
from emo_toolkit.features.feature_dataset import CachedFeatures
from emo_toolkit.features.featurize import cache_for, extract_to_cache
from emo_toolkit.runtime.errors import DatasetError, EmoToolkitError, RankZeroFailed
from emo_toolkit.runtime.windows import TRAINING_DURATIONS, ClipDurations
from emo_toolkit.train import rundir as rd
from emo_toolkit.train.head import HeadConfig
from emo_toolkit.train.loop import Evaluation, TrainResult, check_global_batch, evaluate, train_head
from emo_toolkit.train.metrics import classification_metrics, mean_std
from emo_toolkit.train.run_config import RunConfig
from emo_toolkit.train.rundir import RunDir

_log = logging.getLogger(__name__)
SUMMARY_KEYS = ("wa", "ua", "macro_f1")


def run_training(config: RunConfig, out: str | Path, *, progress: bool = True,
                 on_epoch_end: Callable[[int], None] | None = None,
                 overwrite: bool = False) -> dict[str, Any]:
    """Train (or resume) the run in `out`; returns the content of its metrics.json.

    Rank 0 holds the run directory's lock throughout; an error marks the run failed."""
    ranks = distributed.ranks_from_env()
    check_global_batch(config.train.batch_size, ranks.world_size)  # before any work
    ranks = distributed.init(config.train.device)
    run = RunDir(out)
    with ExitStack() as stack:
        def start() -> bool:
            stack.enter_context(run.lock())
            return run.start(config, overwrite=overwrite)

        resumed = distributed.on_main(start, ranks)
        try:
            return _run(run, config, resumed, ranks, progress, on_epoch_end)
        except Exception as e:
            if ranks.is_main and not isinstance(e, RankZeroFailed):
                with suppress(EmoToolkitError):  # the error that stopped the run matters more
                    run.fail(str(e))
            raise


def _run(run: RunDir, config: RunConfig, resumed: bool, ranks: Ranks, progress: bool,
         on_epoch_end: Callable[[int], None] | None) -> dict[str, Any]:
    progress = progress and ranks.is_main
    device = distributed.local_device(config.train.device, ranks)  # cuda -> cuda:LOCAL_RANK
    config = replace(config, train=replace(config.train, device=device))
    if resumed:
        _log.info("resuming the unfinished run in %s", run.root)
    if ranks.distributed:
        _log.info("%d processes: each trains on %d of every %d clips of a batch",
                  ranks.world_size, config.train.batch_size // ranks.world_size,
                  config.train.batch_size)
    d, x = config.data, config.extractor
    summary = distributed.on_main(
        lambda: scan_dataset(d.source, d.layout, d.speaker_regex, progress=progress), ranks)
    ds = summary.dataset
    labels = list(ds.labels)
    if len(labels) < 2:  # before any feature is computed
        raise DatasetError(f"{ds.root}: a classifier needs at least 2 labels; the usable clips "
                           f"have {len(labels)} ({', '.join(labels)})")
    if ranks.is_main:
        run.write_json(rd.DATASET, {**summary.to_json(),
                                    **run.corpus_fields(rd.source_root(config))})
        run.write_json(rd.LABELS, labels)
    splits = config.split.make(ds.clips, config.train.seed)
    duration_of = {info.clip.path: info.duration for info in summary.infos}

    extractor = open_extractor(x.name, weights=x.weights, untrained=x.untrained, device=device)
    identity = extractor.identity
    if ranks.is_main:
        run.write_json(rd.EXTRACTOR, {
            **identity.to_json(), "num_layers": extractor.num_layers, "dim": extractor.dim,
            "sample_rate": extractor.sample_rate, "min_samples": extractor.min_samples})
    cache = cache_for(extractor, x.cache, precision=x.precision, storage=x.storage)  # type: ignore[arg-type]
    report = extract_to_cache([c.path for c in ds.clips], extractor, cache,
                              precision=x.precision, max_batch=x.max_batch,
                              num_workers=x.workers, progress=progress, ranks=ranks)
    head_config = HeadConfig(extractor.num_layers, extractor.dim, len(labels),
                             **asdict(config.head))
    del extractor  # the head trains on cached features; free the SSL model's memory

    results = {}
    for split in splits:
        results[split.name] = _train_split(run, split, ds.clips, report.audio_sha256, cache, labels,
                                           head_config, config, progress, on_epoch_end,
                                           identity.describe(), ranks, duration_of)
    metrics = {
        "protocol": config.split.protocol,
        "labels": labels,
        "chance_ua": 1.0 / len(labels),
        "extractor": {**identity.to_json(), "description": identity.describe()},
        "untrained_extractor": not identity.trained,
        "splits": {name: {k: r[k] for k in (*SUMMARY_KEYS, "best_epoch", "num_clips")}
                   for name, r in results.items()},
        "mean_std": {k: mean_std([r[k] for r in results.values()]) for k in SUMMARY_KEYS},
    }
    if ranks.is_main:
        run.write_json(rd.METRICS, metrics)
        if len(splits) == 1:
            run.write_json(rd.MODEL, {"split": splits[0].name})
        run.complete()
    distributed.barrier(ranks)  # the run is complete on disk when any rank returns
    return metrics


def _train_split(run: RunDir, split: Split, clips: list[Clip], sha_of: dict[Path, str],
                 cache: FeatureCache, labels: list[str], head_config: HeadConfig,
                 config: RunConfig, progress: bool,
                 on_epoch_end: Callable[[int], None] | None, extractor_text: str,
                 ranks: Ranks, duration_of: dict[Path, float]) -> dict[str, Any]:
    def file(name: str) -> str:
        return rd.in_split(split.name, name)

    distributed.barrier(ranks)  # every rank sees the same finished splits
    if run.exists(file(rd.METRICS)):
        _log.info("split %s is already done; keeping its results", split.name)
        if ranks.is_main:  # a kill can come between the split's last write and this delete
            run.path(file(rd.CHECKPOINT)).unlink(missing_ok=True)
        return run.read_json(file(rd.METRICS))
    usable = [i for i in split.train if clips[i].path in sha_of]
    train, val, how = carve_validation(clips, usable, config.train.val_fraction,
                                       config.train.seed)
    test = [i for i in split.test if clips[i].path in sha_of]
    root = rd.source_root(config)

    def names(idx: tuple[int, ...] | list[int]) -> list[str]:
        return [_relative(clips[i].path, root) for i in idx]

    if ranks.is_main:
        run.write_json(file(rd.SPLIT), {
            "name": split.name, "held_out": list(split.held_out), "validation": how,
            "train": names(train), "val": names(val), "test": names(test),
            # what recordings' and streams' default window comes from (runtime/windows.py)
            TRAINING_DURATIONS: ClipDurations.of(
                duration_of[clips[i].path] for i in train).to_json() if train else None})
    index = {label: i for i, label in enumerate(labels)}

    def part(idx: tuple[int, ...] | list[int]) -> CachedFeatures:
        return CachedFeatures(cache, [sha_of[clips[i].path] for i in idx],
                              [index[clips[i].label] for i in idx],
                              [_relative(clips[i].path, root) for i in idx])

    result = train_head(head_config, part(train), part(val), labels, config.train,
                        run.path(file(rd.CHECKPOINT)), progress=progress,
                        tag=f"[{split.name}] ", on_epoch_end=on_epoch_end, ranks=ranks)
    device = next(result.head.parameters()).device
    ev = evaluate(result.head, part(test), config.train.batch_size, device, ranks=ranks)
    metrics = {**classification_metrics(ev.y_true, ev.y_pred, labels),
               "best_epoch": result.best_epoch, "best_val_ua": result.best_val_ua,
               "epochs_run": len(result.history), "split": split.name,
               "held_out": list(split.held_out), "extractor": extractor_text}
    if ranks.is_main:
        _write_split(run, split.name, result, head_config, metrics, names(test), ev, labels,
                     extractor_text)
    return metrics


def _write_split(run: RunDir, split: str, result: TrainResult, head_config: HeadConfig,
                 metrics: dict[str, Any], test_files: list[str], ev: Evaluation,
                 labels: list[str], extractor_text: str) -> None:
    from emo_toolkit.runtime.plots import (  # matplotlib: only when plotting
        plot_confusion,
        plot_curves,
    )

    def file(name: str) -> str:
        return rd.in_split(split, name)

    state = {k: v.detach().cpu().contiguous() for k, v in result.head.state_dict().items()}
    run.write_bytes(file(rd.HEAD_WEIGHTS), safetensors_bytes(state))
    run.write_json(file(rd.HEAD_CONFIG), head_config.to_json())
    run.write_json(file(rd.HISTORY), result.history)
    run.write_json(file(rd.TEST_PREDICTIONS), [
        {"file": f, "true": labels[t], "predicted": labels[p]}
        for f, t, p in zip(test_files, ev.y_true, ev.y_pred, strict=True)])
    title = f"{metrics['split']}: UA {metrics['ua']:.3f}, WA {metrics['wa']:.3f} ({extractor_text})"
    plot_confusion(metrics["confusion"], labels, run.path(file(rd.CONFUSION)), title)
    plot_curves(result.history, result.best_epoch, run.path(file(rd.CURVES)), title)
    run.write_json(file(rd.METRICS), metrics)  # last: marks the split as done
    run.path(file(rd.CHECKPOINT)).unlink(missing_ok=True)


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
