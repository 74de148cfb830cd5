"""Training of the head on cached features: Adam, early stopping on validation UA, resumable.

Determinism: each epoch's shuffle and dropout draw from generators seeded by
(seed, epoch), so no RNG state has to survive a restart, and a resumed run
repeats exactly what an uninterrupted one does. A checkpoint (model, optimiser,
early-stopping state, history) is written atomically after every epoch.

Several processes (torchrun): the head is wrapped in DistributedDataParallel and
each epoch's order comes from a DistributedSampler seeded as the one-process
shuffle, so the N processes together take exactly the batches one process takes:
`batch_size` is the global batch (the clips per optimiser step), each process
holding batch_size / N of it. The loss is normalised by the global batch, the
BatchNorm statistics are summed across processes (EmotionHead.sync_statistics),
and the clips DistributedSampler repeats to even out the shares count for
nothing. N processes therefore train the model one process trains, up to the
order of floating-point sums. Validation and test are split across the processes
and their predictions gathered, so every metric covers every clip and every
process takes the same early-stopping decision. Only rank 0 writes checkpoints.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from emo_toolkit.features import distributed
from emo_toolkit.features.distributed import ONE_PROCESS, Ranks
from emo_toolkit.features.feature_dataset import CachedFeatures, pad_batch
from emo_toolkit.runtime.errors import NonFiniteError
from emo_toolkit.runtime.io import atomic_write_bytes
from emo_toolkit.runtime.progress import progress_bar
from emo_toolkit.train.head import EmotionHead, HeadConfig
from emo_toolkit.train.metrics import classification_metrics
from emo_toolkit.train.run_config import TrainConfig

_log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    y_true: list[int]
    y_pred: list[int]
    probs: np.ndarray
    loss: float


@dataclass
class TrainResult:
    head: EmotionHead
    history: list[dict[str, float]]
    best_epoch: int
    best_val_ua: float


def class_weights(labels: list[int], num_labels: int) -> torch.Tensor:
    """Inverse class frequency, normalised to mean 1 over the classes present."""
    counts = np.bincount(labels, minlength=num_labels).astype(float)
    w = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    w *= (counts > 0).sum() / w.sum()
    return torch.tensor(w, dtype=torch.float32)


def evaluate(head: EmotionHead, data: CachedFeatures, batch_size: int, device: torch.device,
             weights: torch.Tensor | None = None, ranks: Ranks = ONE_PROCESS) -> Evaluation:
    """Eval-mode predictions and mean loss; serves validation and test alike.

    Under several processes each evaluates every N-th clip and all of them get the
    whole result, in `data`'s order."""
    mine = distributed.shard(range(len(data)), ranks)
    local = _predict(head, Subset(data, mine), batch_size, device, weights)
    parts = distributed.gather((mine, *local), ranks)
    order = np.argsort(np.concatenate([p[0] for p in parts]).astype(int), kind="stable")
    y_true = np.concatenate([p[1] for p in parts]).astype(int)[order]
    probs = np.concatenate([p[2] for p in parts])[order]
    loss = sum(p[3] for p in parts) / max(1, len(y_true))
    if not np.isfinite(loss) or not np.isfinite(probs).all():
        raise NonFiniteError("evaluation gave NaN or infinite losses or probabilities; the run "
                             "stops rather than report them")
    return Evaluation(y_true.tolist(), probs.argmax(axis=1).tolist(), probs, loss)


def _predict(head: EmotionHead, data: Subset, batch_size: int, device: torch.device,
             weights: torch.Tensor | None) -> tuple[list[int], np.ndarray, float]:
    """Labels, probabilities and summed loss of `data` (which may be empty)."""
    head.eval()
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device),
                                  reduction="sum")
    y_true: list[int] = []
    probs = [np.zeros((0, head.config.num_labels), dtype=np.float32)]
    total = 0.0
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=pad_batch)
    with torch.inference_mode():
        for feats, lengths, labels in loader:
            logits = head(feats.to(device), lengths)
            total += float(loss_fn(logits, labels.to(device)))
            probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
            y_true += labels.tolist()
    return y_true, np.concatenate(probs), total


def train_head(head_config: HeadConfig, train_data: CachedFeatures, val_data: CachedFeatures,
               labels: list[str], config: TrainConfig, checkpoint: Path | None = None, *,
               progress: bool = True, tag: str = "",
               on_epoch_end: Callable[[int], None] | None = None,
               ranks: Ranks = ONE_PROCESS) -> TrainResult:
    """Train with early stopping on validation UA; resume from `checkpoint` if it exists.

    Under several processes (`ranks`, process group initialised) every process
    calls this with the same arguments; all return the same head."""
    check_global_batch(config.batch_size, ranks.world_size)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    head = EmotionHead(head_config).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    weights = class_weights(train_data.labels, head_config.num_labels).to(device) \
        if config.class_weighted else None
    state = {"epoch": 0, "best_val_ua": -1.0, "best_epoch": 0, "stale": 0, "history": [],
             "best_head": None}
    if checkpoint is not None and checkpoint.is_file():
        try:
            state = _load_checkpoint(checkpoint, head, optimizer)
            _log.info("%sresuming after epoch %d", tag, state["epoch"])
        except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError,
                pickle.UnpicklingError) as e:  # damaged on disk: train this split from scratch
            _log.warning("%s%s is damaged (%s); training from the first epoch", tag, checkpoint,
                         str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
            torch.manual_seed(config.seed)
            head = EmotionHead(head_config).to(device)
            optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    distributed.barrier(ranks)  # no process may read a checkpoint that rank 0 rewrites
    model: nn.Module = head
    if ranks.distributed:
        head.sync_statistics = True
        # Buffers (BatchNorm's running statistics) agree without syncing: every process
        # updates them from the same summed statistics.
        model = DistributedDataParallel(head, device_ids=[device] if device.type == "cuda"
                                        else None, forward_sync_buffers=False)
    bar = progress_bar(config.epochs, f"{tag}training", "epoch", enabled=progress,
                       initial=state["epoch"])
    while state["epoch"] < config.epochs and state["stale"] < config.patience:
        epoch = state["epoch"] + 1
        train_loss, train_ua = _run_epoch(model, train_data, optimizer, weights, config, epoch,
                                          labels, device, ranks)
        val = evaluate(head, val_data, config.batch_size, device, weights, ranks)
        val_ua = classification_metrics(val.y_true, val.y_pred, labels)["ua"]
        state["history"].append({"epoch": epoch, "train_loss": train_loss, "train_ua": train_ua,
                                 "val_loss": val.loss, "val_ua": val_ua})
        if val_ua > state["best_val_ua"]:
            state.update(best_val_ua=val_ua, best_epoch=epoch, stale=0,
                         best_head={k: v.detach().clone() for k, v in head.state_dict().items()})
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        if checkpoint is not None and ranks.is_main:
            _save_checkpoint(checkpoint, head, optimizer, state)
        bar.update(1)
        bar.set_postfix_str(f"loss {train_loss:.3f} val UA {val_ua:.3f} "
                            f"best {state['best_val_ua']:.3f}@{state['best_epoch']}")
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    bar.close()
    if state["stale"] >= config.patience:
        _log.info("%searly stop after epoch %d: no better validation UA for %d epochs", tag,
                  state["epoch"], config.patience)
    head.sync_statistics = False
    head.load_state_dict(state["best_head"])
    head.eval()
    return TrainResult(head, state["history"], state["best_epoch"], state["best_val_ua"])


def check_global_batch(batch_size: int, world_size: int) -> None:
    if batch_size % world_size:
        raise ValueError(
            f"--batch-size {batch_size} is the global batch, shared by the {world_size} "
            f"processes; make it a multiple of {world_size} (e.g. "
            f"{max(1, round(batch_size / world_size)) * world_size})")


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def epoch_batches(n: int, config: TrainConfig, epoch: int,
                  ranks: Ranks) -> list[tuple[list[int], list[bool]]]:
    """This process's batches of one epoch: (clip indices, which of them count).

    DistributedSampler shuffles with seed + epoch, as the one-process order does,
    and deals the i-th clip of that order to process i mod N; per-process batches
    of batch_size / N therefore make up the one-process batches exactly. Its
    padding (the first clips repeated, so every process gets as many) counts for
    nothing."""
    sampler = DistributedSampler(range(n), num_replicas=ranks.world_size, rank=ranks.rank,
                                 shuffle=True, seed=_epoch_seed(config.seed, 0))
    sampler.set_epoch(epoch)
    mine = list(sampler)
    counts = [ranks.rank + ranks.world_size * j < n for j in range(len(mine))]
    size = config.batch_size // ranks.world_size
    return [(mine[i:i + size], counts[i:i + size]) for i in range(0, len(mine), size)]


def _run_epoch(model: nn.Module, data: CachedFeatures, optimizer: torch.optim.Optimizer,
               weights: torch.Tensor | None, config: TrainConfig, epoch: int, labels: list[str],
               device: torch.device, ranks: Ranks) -> tuple[float, float]:
    model.train()
    torch.manual_seed(_epoch_seed(config.seed, epoch))  # dropout
    batches = epoch_batches(len(data), config, epoch, ranks)
    loader = DataLoader(data, batch_sampler=[b for b, _ in batches], collate_fn=pad_batch)
    params = list(model.parameters())
    total, y_true, y_pred = 0.0, [], []
    for (feats, lengths, targets), (batch, counts) in zip(loader, batches, strict=True):
        counted = torch.tensor(counts, device=device)
        targets = targets.to(device)
        optimizer.zero_grad()
        logits = model(feats.to(device), lengths,
                       stats_mask=counted if ranks.distributed else None)
        per_clip = F.cross_entropy(logits, targets, weight=weights, reduction="none")
        clip_weight = (weights[targets] if weights is not None else 1.0) * counted
        bad = ~torch.isfinite(per_clip) & counted
        # The global batch's loss is its weighted mean (nn.CrossEntropyLoss's); DDP averages
        # the processes' gradients, so each process scales its part of the sum by N. The
        # count of non-finite losses travels along, so every process stops together.
        norm = torch.stack([clip_weight.sum(), counted.sum().to(clip_weight.dtype),
                            bad.sum().to(clip_weight.dtype)])
        if ranks.distributed:
            dist.all_reduce(norm)
        weight_sum, clips, bad_clips = norm.tolist()
        if bad_clips:
            named = [data.names[i] for i, b in zip(batch, bad.cpu().tolist(), strict=True) if b]
            raise NonFiniteError(
                f"epoch {epoch}: the training loss is NaN or infinite for "
                f"{', '.join(named[:5]) or 'a clip of another process'}"
                f"{' ...' if len(named) > 5 else ''}; the run stops rather than train a broken "
                "model (check those files, or lower --lr)")
        summed = (per_clip * counted).sum()
        loss = summed / weight_sum * ranks.world_size
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise NonFiniteError(f"epoch {epoch}: the head's weights became NaN or infinite "
                                 "after an optimiser step; the run stops (lower --lr, or keep "
                                 "--grad-clip on)")
        total += summed.detach().item() / weight_sum * clips
        keep = counted.cpu()
        y_true += targets.cpu()[keep].tolist()
        y_pred += logits.argmax(dim=1).cpu()[keep].tolist()
    parts = distributed.gather((total, y_true, y_pred), ranks)
    y_true = [y for p in parts for y in p[1]]
    y_pred = [y for p in parts for y in p[2]]
    return (sum(p[0] for p in parts) / len(y_true),
            classification_metrics(y_true, y_pred, labels)["ua"])


def _save_checkpoint(path: Path, head: EmotionHead, optimizer: torch.optim.Optimizer,
                     state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({**state, "head": head.state_dict(), "optimizer": optimizer.state_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, head: EmotionHead,
                     optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or not {"epoch", "history", "head", "optimizer"} <= set(saved):
        raise ValueError("not a checkpoint of this toolkit")
    head.load_state_dict(saved.pop("head"))
    optimizer.load_state_dict(saved.pop("optimizer"))
    return saved
