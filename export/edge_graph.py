"""The export graph cut into the methods of an ExecuTorch program.

ExecuTorch runs no `while_loop` (the pt2 graph's LSTM), and XNNPACK lowers a
graph with one dynamic dimension only, so the program has two methods and the
host drives the recurrence, as LLM runners drive decoding steps:

    features(waveform (1, S))            -> the LSTM's first-layer input term (1, T, 4H)
    lstm_steps(inputs (K, 4H), running (K,), h (layers, H), c (layers, H))
                                         -> h, c, logits (1, C), probs (1, C)

`features` is everything but the recurrence: [resampler] -> SSL layers -> head
up to the LSTM, and the first layer's input projection for all frames at once.
`lstm_steps` advances both LSTM layers K frames; `running[k]` 0.0 leaves the
states as they are (the last call is padded to K frames). Its logits are those
of the last state, so the final call's are the clip's. K frames per call run
layer after layer (LSTMWeights.window): each layer's input weights are read once
per call. Both methods are exact rewrites of the eager graph (the parity gate
checks them like any other format).

Rewrites for the XNNPACK delegate (what it does not take stays on ExecuTorch's
portable CPU kernels, with copies at every boundary): attention as 3-D matmul +
softmax instead of scaled_dot_product_attention, whose masking ops (eq/any/where)
are not delegated; layer norms and the per-channel group norm as mean/rsqrt
arithmetic (MeanNorm); the LSTM as linear() with constant biases and slices
(export/loop_lstm.py).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torchaudio.models.wav2vec2.components import SelfAttention

from emo_toolkit.export.graph import ExportGraph
from emo_toolkit.export.loop_lstm import LSTMWeights
from emo_toolkit.runtime.errors import ExportError

STEPS_PER_CALL = 8


class ExplicitAttention(nn.Module):
    """torchaudio's SelfAttention with the same weights, its SDPA call written out."""

    def __init__(self, attention: SelfAttention):
        super().__init__()
        self.q_proj, self.k_proj = attention.q_proj, attention.k_proj
        self.v_proj, self.out_proj = attention.v_proj, attention.out_proj
        self.num_heads, self.head_dim = attention.num_heads, attention.head_dim
        self.scaling = attention.head_dim ** -0.5

    def forward(self, x: Tensor, attention_mask: Tensor | None = None,
                position_bias: Tensor | None = None, key_padding_mask: Tensor | None = None
                ) -> tuple[Tensor, None]:
        batch, length, dim = x.shape
        heads = batch * self.num_heads

        def split(y: Tensor) -> Tensor:  # (B, T, D) -> (B * heads, T, head_dim)
            y = y.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
            return y.reshape(heads, length, self.head_dim)

        q, k, v = split(self.q_proj(x) * self.scaling), split(self.k_proj(x)), \
            split(self.v_proj(x))
        scores = torch.bmm(q, k.transpose(1, 2))  # 3-D: no broadcast copies around it
        if attention_mask is not None:
            scores = scores + attention_mask.expand(batch, self.num_heads, length, length
                                                    ).reshape(heads, length, length)
        out = torch.bmm(torch.softmax(scores, dim=-1), v)
        out = out.view(batch, self.num_heads, length, self.head_dim).transpose(1, 2)
        return self.out_proj(out.reshape(batch, length, dim)), None


class MeanNorm(nn.Module):
    """LayerNorm over the last dimension, or a GroupNorm with one channel per group (over
    time), written as arithmetic XNNPACK delegates: its mean runs on 4-D tensors over the
    two innermost dimensions only, and the native norms stay on portable kernels."""

    def __init__(self, norm: nn.LayerNorm | nn.GroupNorm):
        super().__init__()
        self.per_channel = isinstance(norm, nn.GroupNorm)
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        rows = x.reshape(shape[0], shape[1], 1, -1) if self.per_channel else \
            x.reshape(1, -1, 1, shape[-1])  # (batch 1) frames x features
        mean = rows.mean(dim=(2, 3), keepdim=True)
        centred = rows - mean
        var = (centred * centred).mean(dim=(2, 3), keepdim=True)
        y = (centred * torch.rsqrt(var + self.eps)).reshape(shape)
        if self.weight is None:
            return y
        if self.per_channel:
            return y * self.weight[:, None] + self.bias[:, None]
        return y * self.weight + self.bias


def delegable_norms(module: nn.Module) -> None:
    """Swap every LayerNorm, and every GroupNorm with a group per channel, for MeanNorm."""
    for name, child in module.named_children():
        if (isinstance(child, nn.LayerNorm) and len(child.normalized_shape) == 1) or \
                (isinstance(child, nn.GroupNorm) and child.num_groups == child.num_channels):
            setattr(module, name, MeanNorm(child))
        else:
            delegable_norms(child)


class Features(nn.Module):
    """waveform (1, S) -> the LSTM's first-layer input term (1, T, 4H)."""

    def __init__(self, graph: ExportGraph):
        super().__init__()
        self.source = copy.deepcopy(graph).eval()  # ("graph" would clash with fx)
        for layer in self.source.recognizer.extractor.model.encoder.transformer.layers:
            if isinstance(layer.attention, SelfAttention):
                layer.attention = ExplicitAttention(layer.attention)
        delegable_norms(self.source.recognizer.extractor.model)

    def forward(self, waveform: Tensor) -> Tensor:
        if self.source.resample is not None:
            waveform = self.source.resample(waveform)
        recognizer = self.source.recognizer
        layers, _ = recognizer.extractor(waveform)
        x, _ = recognizer.head.lstm_input(layers.transpose(0, 1))
        return LSTMWeights.of(recognizer.head.lstm).project_input(x)


class LSTMSteps(nn.Module):
    """K frames of the head's LSTM, then its classifier on the last state."""

    def __init__(self, graph: ExportGraph, steps: int = STEPS_PER_CALL):
        super().__init__()
        head = copy.deepcopy(graph.recognizer.head).eval()
        self.lstm, self.classifier, self.steps = head.lstm, head.classifier, steps
        # b_ih + b_hh summed once, as buffers: XNNPACK delegates a linear layer whose bias
        # is a constant, not one computed in the graph
        for k, bias in enumerate(LSTMWeights.of(self.lstm).bias):
            self.register_buffer(f"bias_{k}", bias.detach().clone())

    def forward(self, inputs: Tensor, running: Tensor, h: Tensor, c: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        layers = range(self.lstm.num_layers)
        weights = LSTMWeights.of(self.lstm, [getattr(self, f"bias_{k}") for k in layers])
        # slices, not selects: XNNPACK delegates slices (a select splits the partition)
        hs, cs = [h[k:k + 1] for k in layers], [c[k:k + 1] for k in layers]
        hs, cs = weights.window(inputs, hs, cs, running)
        logits = self.classifier(hs[-1])
        return torch.cat(hs), torch.cat(cs), logits, torch.softmax(logits, dim=-1)

    def example_inputs(self) -> tuple[Tensor, ...]:
        layers, hidden = self.lstm.num_layers, self.lstm.hidden_size
        state = torch.zeros(layers, hidden)
        return (torch.zeros(self.steps, 4 * hidden), torch.ones(self.steps), state,
                state.clone())


def edge_modules(graph: ExportGraph, steps: int = STEPS_PER_CALL) -> tuple[Features, LSTMSteps]:
    if graph.takes_lengths:
        raise ExportError("an ExecuTorch program runs one whole clip per call (batch 1): "
                         "export it without --ragged")
    if graph.recognizer.head.config.bidirectional:
        raise ExportError("ExecuTorch export covers unidirectional heads; this head is "
                         "bidirectional")
    if graph.compute_dtype is not None:
        raise ExportError("ExecuTorch programs are fp32 or int8")
    return Features(graph).eval(), LSTMSteps(graph, steps).eval()
