"""The notebook's classifier head (ICASSP3CNN): layer weighting, 3 parallel convs, LSTM, linear.

    features (B, L, T, D)
      -> 1x1 Conv1d over the layer axis (a learned weighting of the L layers) -> (B, T, D)
      -> Linear D -> embed_dim
      -> Conv1d k=3 | k=5 | k=7 (padding 'same'), concatenated -> BatchNorm1d -> ReLU
      -> LSTM (2 layers, hidden 512) -> the last layer's final hidden state
      -> Linear -> logits (B, num_labels)

Padding never changes a clip's logits: padded frames are zeroed after the
embedding, so the 'same' convolutions see at a clip's end the zeros they see
when the clip is alone; BatchNorm statistics come from valid frames only; and
the LSTM state is read at each clip's last valid frame. For a unidirectional
LSTM that output *is* the final hidden state of the packed sequence (the LSTM
is causal), at half the CPU cost of packing; a bidirectional LSTM, whose
backward direction must start at the last valid frame, runs packed sequences.
The inference path (whole clips, equal length) runs the LSTM unpacked.
tests/test_head.py checks packed == gathered == unpacked.

Under multi-process training (toolkit/train/loop.py) the BatchNorm statistics are
summed across the processes, so N processes normalise with the statistics of the
whole global batch, as one process does (nn.SyncBatchNorm would too, but it runs
on GPUs only and knows no frame mask).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from emo_toolkit.features.distributed import sum_across
from emo_toolkit.runtime.checks import check_int
from emo_toolkit.train.run_config import check_head_options


@dataclass(frozen=True)
class HeadConfig:
    """L, D and the label count come from the extractor and the data; the rest default
    to the notebook's values."""

    num_layers: int
    feature_dim: int
    num_labels: int
    embed_dim: int = 128
    conv_channels: int = 128
    kernel_sizes: tuple[int, ...] = field(default=(3, 5, 7))
    lstm_hidden: int = 512
    lstm_layers: int = 2
    bidirectional: bool = False
    lstm_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_int("num_layers", self.num_layers, 1, 1024)
        check_int("feature_dim", self.feature_dim, 1, 65_536)
        if isinstance(self.num_labels, int) and self.num_labels < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {self.num_labels}")
        check_int("num_labels", self.num_labels, 2, 10_000)
        check_head_options(self)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernel_sizes"] = list(self.kernel_sizes)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HeadConfig:
        """From to_json's output; anything else is a ValueError saying what is wrong."""
        if not isinstance(d, dict):
            raise ValueError(f"expected an object, got {type(d).__name__}")
        if not isinstance(d.get("kernel_sizes"), list):
            raise ValueError("kernel_sizes must be a list of integers")
        try:
            return cls(**{**d, "kernel_sizes": tuple(d["kernel_sizes"])})
        except TypeError as e:  # missing or unknown keys
            raise ValueError(str(e).replace("HeadConfig.__init__() ", "")) from e


class EmotionHead(nn.Module):
    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        c = config
        self.layer_weighting = nn.Conv1d(c.num_layers, 1, kernel_size=1)
        self.embed = nn.Linear(c.feature_dim, c.embed_dim)
        self.convs = nn.ModuleList(
            nn.Conv1d(c.embed_dim, c.conv_channels, k, padding="same") for k in c.kernel_sizes)
        width = c.conv_channels * len(c.kernel_sizes)
        self.norm = nn.BatchNorm1d(width)
        self.lstm = nn.LSTM(width, c.lstm_hidden, num_layers=c.lstm_layers, batch_first=True,
                            bidirectional=c.bidirectional,
                            dropout=c.lstm_dropout if c.lstm_layers > 1 else 0.0)
        self.classifier = nn.Linear(c.lstm_hidden * (2 if c.bidirectional else 1), c.num_labels)
        # Set by multi-process training: sum BatchNorm's batch statistics across processes.
        self.sync_statistics = False

    def forward(self, features: Tensor, lengths: Tensor | None = None,
                stats_mask: Tensor | None = None) -> Tensor:
        """features (B, L, T, D), zero-padded when `lengths` (B,) is given -> logits (B, C).

        `stats_mask` (B,) bool, training only: the clips whose frames count towards
        BatchNorm's batch statistics (default all); multi-process training leaves out
        the repeats that DistributedSampler adds to even out the processes' shares."""
        b = features.shape[0]
        x, _ = self.lstm_input(features, lengths, stats_mask)
        if lengths is None:
            _, (h, _) = self.lstm(x)
            return self.classifier(self._final_state(h))
        lengths = lengths.to(x.device)
        if getattr(self.lstm, "takes_lengths", False):  # export/loop_lstm.py's LoopLSTM
            _, (h, _) = self.lstm(x, lengths)
            return self.classifier(h[-1])
        if self.config.bidirectional:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)
            return self.classifier(self._final_state(h))
        out, _ = self.lstm(x)
        return self.classifier(out[torch.arange(b, device=x.device), lengths - 1])

    def lstm_input(self, features: Tensor, lengths: Tensor | None = None,
                   stats_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Everything before the recurrence: features (B, L, T, D) -> the LSTM's input
        (B, T, C), and the valid-frame mask (B, T) when `lengths` is given. (The ExecuTorch
        export runs the recurrence apart, one host-driven step at a time.)"""
        t = features.shape[2]
        features = features.to(self.embed.weight.dtype)  # a head kept in fp32 computes in fp32
        # The 1x1 Conv1d over the layer axis, written as its weighted sum: the same numbers,
        # without reshapes whose symbolic sizes would pin the length in torch.export.
        weights = self.layer_weighting.weight[0, :, 0]
        x = (features * weights[None, :, None, None]).sum(dim=1) + self.layer_weighting.bias
        x = self.embed(x)
        valid = None
        if lengths is not None:
            lengths = lengths.to(x.device)
            valid = torch.arange(t, device=x.device)[None, :] < lengths[:, None]
            x = x * valid[:, :, None].to(x.dtype)
        x = torch.cat([conv(x.transpose(1, 2)) for conv in self.convs], dim=1).transpose(1, 2)
        return torch.relu(self._batch_norm(x, valid, stats_mask)), valid

    def _batch_norm(self, x: Tensor, valid: Tensor | None, stats_mask: Tensor | None) -> Tensor:
        """BatchNorm over frames (B, T, C); with a mask, statistics use valid frames only."""
        if valid is None:
            return self.norm(x.transpose(1, 2)).transpose(1, 2)
        if not self.training:  # per-frame affine: padded frames only need zeroing
            return self.norm(x.transpose(1, 2)).transpose(1, 2) * valid[:, :, None].to(x.dtype)
        out = torch.zeros_like(x)
        if self.sync_statistics or stats_mask is not None:
            counted = valid if stats_mask is None else valid & stats_mask.to(valid.device)[:, None]
            out[valid] = frame_batch_norm(self.norm, x[valid], counted[valid],
                                          sync=self.sync_statistics)
        else:
            out[valid] = self.norm(x[valid])
        return out

    def _final_state(self, h: Tensor) -> Tensor:
        return torch.cat([h[-2], h[-1]], dim=1) if self.config.bidirectional else h[-1]


def frame_batch_norm(norm: nn.BatchNorm1d, frames: Tensor, counted: Tensor, *,
                     sync: bool) -> Tensor:
    """Training-mode BatchNorm of frames (N, C) with statistics from the `counted` (N,)
    frames only, summed across all processes when `sync`; updates `norm`'s running
    statistics as nn.BatchNorm1d does. A process may count no frame at all."""
    weight = counted.to(frames.dtype)[:, None]
    totals = torch.cat([(frames * weight).sum(0), weight.sum(0)])
    if sync:
        totals = sum_across(totals)  # its backward sums the gradients across processes
    count = totals[-1]
    mean = totals[:-1] / count
    centred = frames - mean
    squares = (centred.square() * weight).sum(0)
    if sync:
        squares = sum_across(squares)
    var = squares / count
    if norm.track_running_stats:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
            m = norm.momentum if norm.momentum is not None \
                else 1.0 / float(norm.num_batches_tracked)  # type: ignore[arg-type]
            unbiased = var * (count / (count - 1).clamp(min=1))
            norm.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)  # type: ignore[union-attr]
            norm.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)  # type: ignore[union-attr]
    out = centred * torch.rsqrt(var + norm.eps)
    return out * norm.weight + norm.bias if norm.affine else out
