"""An LSTM whose time loop torch.export keeps symbolic, for length-generic pt2 packages.

`nn.LSTM` specialises the sequence length when exported with torch.export
(torch 2.14: "You marked t as dynamic but your code specialized it"), and a
`scan`-based loop exports but fails in AOTInductor. A `while_loop` over time
exports and compiles with a dynamic length. Inference only; unidirectional.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._higher_order_ops.while_loop import while_loop


class LoopLSTM(nn.Module):
    """Same weights and outputs as the wrapped batch-first `nn.LSTM` (final states only).

    With `lengths` (B,), each row's states stop at its last valid step: the final states
    are those at each clip's end, what EmotionHead reads from a padded batch."""

    takes_lengths = True

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if lstm.bidirectional or not lstm.batch_first or lstm.proj_size:
            raise ValueError("LoopLSTM covers unidirectional, batch-first LSTMs without projection")
        self.lstm = lstm

    def forward(self, x: Tensor, lengths: Tensor | None = None
                ) -> tuple[None, tuple[Tensor, Tensor]]:
        """All layers advance together, one time step per iteration: the loop carries only
        the step index and the (layers, B, H) states, so each step costs the same at any
        length. (Carrying the output sequence or the input projection made every step copy
        a (B, T, .) tensor: quadratic in T.)"""
        lstm = self.lstm
        batch = x.shape[0]
        weights = LSTMWeights.of(lstm)
        projected = weights.project_input(x)  # the first layer's input term, all steps at once

        def cond(i, h, c):
            return i < projected.shape[1]

        def body(i, h, c):
            step = projected.index_select(1, i.reshape(1)).squeeze(1)
            running = None if lengths is None else (i < lengths)[:, None].to(x.dtype)
            hs, cs = weights.step(step, list(h.unbind(0)), list(c.unbind(0)), running)
            return i + 1, torch.stack(hs), torch.stack(cs)

        start = torch.zeros((), dtype=torch.int64, device=x.device)
        zeros = x.new_zeros(lstm.num_layers, batch, lstm.hidden_size)
        _, h, c = while_loop(cond, body, (start, zeros, zeros.clone()))
        return None, (h, c)


class LSTMWeights:
    """One time step of a unidirectional multi-layer nn.LSTM, written out (PyTorch's gate
    order i, f, g, o): what LoopLSTM's while_loop and the ExecuTorch program's step method
    both run."""

    def __init__(self, w_ih: list[Tensor], w_hh: list[Tensor], bias: list[Tensor]):
        self.w_ih, self.w_hh, self.bias = w_ih, w_hh, bias

    @classmethod
    def of(cls, lstm: nn.LSTM, bias: list[Tensor] | None = None) -> LSTMWeights:
        """`lstm`'s weights; `bias`: each layer's b_ih + b_hh already summed (default: summed
        here, in the graph)."""
        layers = range(lstm.num_layers)
        if bias is None:
            bias = [getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
                    for k in layers]
        return cls([getattr(lstm, f"weight_ih_l{k}") for k in layers],
                   [getattr(lstm, f"weight_hh_l{k}") for k in layers], bias)

    def project_input(self, x: Tensor) -> Tensor:
        """The first layer's input term for every step at once: (B, T, C) -> (B, T, 4H)."""
        return F.linear(x, self.w_ih[0], self.bias[0])

    def cell(self, layer: int, gates: Tensor, h: Tensor, c: Tensor,
             running: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step of one layer: gates (B, 4H), the input term of `layer` at this step
        (bias included), and its h, c (B, H) -> the next h, c. `running` (B, 1) 1.0/0.0:
        rows at 0 keep their states (past their end). The blend is exact for 0 and 1 (the
        states are finite), and, unlike a where(), arithmetic that every delegate runs.

        Written for XNNPACK's partitioner too (the ExecuTorch program): linear() with the
        weight as it is (a matmul with a transposed weight stayed on portable kernels)
        and slices instead of chunk() (not delegated)."""
        size = h.shape[-1]
        g = gates + F.linear(h, self.w_hh[layer])
        gi, gf, gg, go = (g[..., i * size:(i + 1) * size] for i in range(4))
        c_next = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
        h_next = torch.sigmoid(go) * torch.tanh(c_next)
        if running is not None:
            c_next = c_next * running + c * (1 - running)
            h_next = h_next * running + h * (1 - running)
        return h_next, c_next

    def step(self, projected: Tensor, h: list[Tensor], c: list[Tensor],
             running: Tensor | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """One time step of every layer: projected (B, 4H), project_input at this step; h, c:
        each layer's (B, H) -> the next h, c."""
        hs, cs = [], []
        below = projected
        for k, (h_k, c_k) in enumerate(zip(h, c, strict=True)):
            gates = below if k == 0 else F.linear(below, self.w_ih[k], self.bias[k])
            h_k, c_k = self.cell(k, gates, h_k, c_k, running)
            hs.append(h_k)
            cs.append(c_k)
            below = h_k
        return hs, cs

    def window(self, projected: Tensor, h: list[Tensor], c: list[Tensor], running: Tensor
               ) -> tuple[list[Tensor], list[Tensor]]:
        """K time steps of one sequence, layer after layer: projected (K, 4H), h, c: each
        layer's (1, H), running (K,). A layer's input term for all K steps is one matrix
        product, so its input weights are read once per window, not once per step (the
        recurrence is bound by reading weights)."""
        hs, cs = [], []
        below = projected
        for k, (h_k, c_k) in enumerate(zip(h, c, strict=True)):
            gates = below if k == 0 else F.linear(below, self.w_ih[k], self.bias[k])
            outputs = []
            for t in range(projected.shape[0]):
                h_k, c_k = self.cell(k, gates[t:t + 1], h_k, c_k, running[t:t + 1])
                outputs.append(h_k)
            hs.append(h_k)
            cs.append(c_k)
            below = torch.cat(outputs)
        return hs, cs
