"""Training of the head on cached features: Adam, early stopping on validation UA, resumable.

Determinism: each epoch's shuffle and dropout draw from generators seeded by
(seed, epoch), so no RNG state has to survive a restart, and a resumed run
repeats exactly what an uninterrupted one does. A checkpoint (model, optimiser,
early-stopping state, history) is written atomically after every epoch.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from toolkit.feature_dataset import CachedFeatures, pad_batch
from toolkit.head import EmotionHead, HeadConfig
from toolkit.io import atomic_write_bytes
from toolkit.metrics import classification_metrics

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Adam 1e-3, batch 16, up to 50 epochs: the notebook's values; the rest is new."""

    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    patience: int = 10            # epochs without a better validation UA before stopping
    val_fraction: float = 0.15    # of the training clips (whole speakers when known)
    class_weighted: bool = False
    grad_clip: float = 5.0        # max gradient norm; 0 turns clipping off
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0, got {self.grad_clip}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
    resumed_from_epoch: int


def class_weights(labels: list[int], num_labels: int) -> torch.Tensor:
    """Inverse class frequency, normalised to mean 1 over the classes present."""
    counts = np.bincount(labels, minlength=num_labels).astype(float)
    w = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    w *= (counts > 0).sum() / w.sum()
    return torch.tensor(w, dtype=torch.float32)


def evaluate(head: EmotionHead, data: CachedFeatures, batch_size: int, device: torch.device,
             weights: torch.Tensor | None = None) -> Evaluation:
    """Eval-mode predictions and mean loss; serves validation and test alike."""
    head.eval()
    loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device),
                                  reduction="sum")
    y_true: list[int] = []
    probs: list[np.ndarray] = []
    total = 0.0
    loader = DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=pad_batch)
    with torch.inference_mode():
        for feats, lengths, labels in loader:
            logits = head(feats.to(device), lengths)
            total += float(loss_fn(logits, labels.to(device)))
            probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
            y_true += labels.tolist()
    p = np.concatenate(probs)
    return Evaluation(y_true, p.argmax(axis=1).tolist(), p, total / len(y_true))


def train_head(head_config: HeadConfig, train_data: CachedFeatures, val_data: CachedFeatures,
               labels: list[str], config: TrainConfig, checkpoint: Path | None = None, *,
               progress: bool = True, tag: str = "",
               on_epoch_end: Callable[[int], None] | None = None) -> TrainResult:
    """Train with early stopping on validation UA; resume from `checkpoint` if it exists."""
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    head = EmotionHead(head_config).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.lr)
    weights = class_weights(train_data.labels, head_config.num_labels).to(device) \
        if config.class_weighted else None
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    state = {"epoch": 0, "best_val_ua": -1.0, "best_epoch": 0, "stale": 0, "history": [],
             "best_head": None}
    if checkpoint is not None and checkpoint.is_file():
        state = _load_checkpoint(checkpoint, head, optimizer)
        _log.info("%sresuming after epoch %d", tag, state["epoch"])
    resumed_from = state["epoch"]
    bar = tqdm(total=config.epochs, initial=state["epoch"], desc=f"{tag}training", unit="epoch",
               disable=not progress)
    while state["epoch"] < config.epochs and state["stale"] < config.patience:
        epoch = state["epoch"] + 1
        train_loss, train_ua = _run_epoch(head, train_data, optimizer, loss_fn, config, epoch,
                                          labels, device)
        val = evaluate(head, val_data, config.batch_size, device, weights)
        val_ua = classification_metrics(val.y_true, val.y_pred, labels)["ua"]
        state["history"].append({"epoch": epoch, "train_loss": train_loss, "train_ua": train_ua,
                                 "val_loss": val.loss, "val_ua": val_ua})
        if val_ua > state["best_val_ua"]:
            state.update(best_val_ua=val_ua, best_epoch=epoch, stale=0,
                         best_head={k: v.detach().clone() for k, v in head.state_dict().items()})
        else:
            state["stale"] += 1
        state["epoch"] = epoch
        if checkpoint is not None:
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
    head.load_state_dict(state["best_head"])
    head.eval()
    return TrainResult(head, state["history"], state["best_epoch"], state["best_val_ua"],
                       resumed_from)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _run_epoch(head: EmotionHead, data: CachedFeatures, optimizer: torch.optim.Optimizer,
               loss_fn: nn.Module, config: TrainConfig, epoch: int, labels: list[str],
               device: torch.device) -> tuple[float, float]:
    head.train()
    torch.manual_seed(_epoch_seed(config.seed, epoch))  # dropout
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(
        _epoch_seed(config.seed, epoch))).tolist()
    batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    total, y_true, y_pred = 0.0, [], []
    for feats, lengths, targets in DataLoader(data, batch_sampler=batches, collate_fn=pad_batch):
        optimizer.zero_grad()
        logits = head(feats.to(device), lengths)
        loss = loss_fn(logits, targets.to(device))
        loss.backward()
        if config.grad_clip > 0:
            nn.utils.clip_grad_norm_(head.parameters(), config.grad_clip)
        optimizer.step()
        total += loss.item() * len(targets)
        y_true += targets.tolist()
        y_pred += logits.argmax(dim=1).tolist()
    return total / len(y_true), classification_metrics(y_true, y_pred, labels)["ua"]


def _save_checkpoint(path: Path, head: EmotionHead, optimizer: torch.optim.Optimizer,
                     state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save({**state, "head": head.state_dict(), "optimizer": optimizer.state_dict()}, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load_checkpoint(path: Path, head: EmotionHead,
                     optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    head.load_state_dict(saved.pop("head"))
    optimizer.load_state_dict(saved.pop("optimizer"))
    return saved
