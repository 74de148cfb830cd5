"""PNG figures of a run: confusion matrix and training curves (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from emo_toolkit.runtime.io import atomic_write_bytes


def save_figure(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path,
                   title: str) -> Path:
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.8 * n))
    counts = [list(row) for row in confusion]
    totals = [max(1, sum(row)) for row in counts]
    shares = [[c / t for c in row] for row, t in zip(counts, totals, strict=True)]
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i][j]), ha="center", va="center",
                    color="white" if shares[i][j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def plot_curves(history: Sequence[dict[str, float]], best_epoch: int, path: Path,
                title: str) -> Path:
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, ua_ax) = plt.subplots(1, 2, figsize=(9, 3.2))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.legend()
    ua_ax.plot(epochs, [h["train_ua"] for h in history], label="train UA")
    ua_ax.plot(epochs, [h["val_ua"] for h in history], label="validation UA")
    ua_ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
    ua_ax.set_xlabel("epoch")
    ua_ax.set_ylim(0, 1)
    ua_ax.legend()
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def plot_timeline(starts: Sequence[float], ends: Sequence[float],
                  probabilities: Sequence[Sequence[float]], labels: Sequence[str], path: Path,
                  title: str) -> Path:
    """Each label's probability over a recording, one step per segment."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    edges = [*starts, ends[-1]]
    for k, label in enumerate(labels):
        values = [row[k] for row in probabilities]
        ax.stairs(values, edges, label=label, linewidth=1.6)
    for boundary in starts[1:]:
        ax.axvline(boundary, color="grey", linewidth=0.4, alpha=0.5)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
