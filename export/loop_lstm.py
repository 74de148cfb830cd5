"""An LSTM whose time loop torch.export keeps symbolic, for length-generic pt2 packages.

`nn.LSTM` specialises the sequence length when exported with torch.export
(torch 2.14: "You marked t as dynamic but your code specialized it"), and a
`scan`-based loop exports but fails in AOTInductor. A `while_loop` over time
exports and compiles with a dynamic length. Inference only; unidirectional.
"""

from __future__ import annotations

import torch
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
            return (i + 1, *weights.step(step, h, c, running))

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
    def of(cls, lstm: nn.LSTM) -> LSTMWeights:
        layers = range(lstm.num_layers)
        return cls([getattr(lstm, f"weight_ih_l{k}") for k in layers],
                   [getattr(lstm, f"weight_hh_l{k}") for k in layers],
                   [getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
                    for k in layers])

    def project_input(self, x: Tensor) -> Tensor:
        """The first layer's input term for every step at once: (B, T, C) -> (B, T, 4H)."""
        return x @ self.w_ih[0].t() + self.bias[0]

    def step(self, projected: Tensor, h: Tensor, c: Tensor,
             running: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """projected (B, 4H): project_input at one step; h, c (layers, B, H) -> the next h, c.
        `running` (B, 1) 1.0/0.0: rows at 0 keep their states (past their end). The blend
        is exact for 0 and 1 (the states are finite), and, unlike a where(), arithmetic
        that every delegate runs."""
        below = None
        hs, cs = [], []
        for k in range(len(self.w_ih)):
            g = projected if k == 0 else below @ self.w_ih[k].t() + self.bias[k]
            g = g + h[k] @ self.w_hh[k].t()
            gi, gf, gg, go = g.chunk(4, dim=-1)
            c_k = torch.sigmoid(gf) * c[k] + torch.sigmoid(gi) * torch.tanh(gg)
            h_k = torch.sigmoid(go) * torch.tanh(c_k)
            if running is not None:
                c_k = c_k * running + c[k] * (1 - running)
                h_k = h_k * running + h[k] * (1 - running)
            hs.append(h_k)
            cs.append(c_k)
            below = h_k
        return torch.stack(hs), torch.stack(cs)
