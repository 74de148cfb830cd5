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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


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
        for name in ("num_layers", "feature_dim", "embed_dim", "conv_channels", "lstm_hidden",
                     "lstm_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.num_labels < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {self.num_labels}")
        if not self.kernel_sizes or any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel sizes must be odd and positive, got {self.kernel_sizes}")
        if not 0.0 <= self.lstm_dropout < 1.0:
            raise ValueError(f"lstm_dropout must be in [0, 1), got {self.lstm_dropout}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernel_sizes"] = list(self.kernel_sizes)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HeadConfig:
        return cls(**{**d, "kernel_sizes": tuple(d["kernel_sizes"])})


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

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """features (B, L, T, D), zero-padded when `lengths` (B,) is given -> logits (B, C)."""
        b, _, t, _ = features.shape
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
        x = torch.relu(self._batch_norm(x, valid))
        if lengths is None:
            _, (h, _) = self.lstm(x)
            return self.classifier(self._final_state(h))
        if self.config.bidirectional:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)
            return self.classifier(self._final_state(h))
        out, _ = self.lstm(x)
        return self.classifier(out[torch.arange(b, device=x.device), lengths - 1])

    def _batch_norm(self, x: Tensor, valid: Tensor | None) -> Tensor:
        """BatchNorm over frames (B, T, C); with a mask, statistics use valid frames only."""
        if valid is None:
            return self.norm(x.transpose(1, 2)).transpose(1, 2)
        out = torch.zeros_like(x)
        out[valid] = self.norm(x[valid])
        return out

    def _final_state(self, h: Tensor) -> Tensor:
        return torch.cat([h[-2], h[-1]], dim=1) if self.config.bidirectional else h[-1]
