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
        layers, hidden = lstm.num_layers, lstm.hidden_size
        w_ih = [getattr(lstm, f"weight_ih_l{k}") for k in range(layers)]
        w_hh = [getattr(lstm, f"weight_hh_l{k}") for k in range(layers)]
        bias = [getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
                for k in range(layers)]
        projected = x @ w_ih[0].t() + bias[0]  # the first layer's input term, all steps at once

        def cond(i, h, c):
            return i < projected.shape[1]

        def body(i, h, c):
            below = None
            hs, cs = [], []
            for k in range(layers):
                if k == 0:
                    g = projected.index_select(1, i.reshape(1)).squeeze(1)
                else:
                    g = below @ w_ih[k].t() + bias[k]
                g = g + h[k] @ w_hh[k].t()
                gi, gf, gg, go = g.chunk(4, dim=-1)
                c_k = torch.sigmoid(gf) * c[k] + torch.sigmoid(gi) * torch.tanh(gg)
                h_k = torch.sigmoid(go) * torch.tanh(c_k)
                if lengths is not None:  # rows past their end keep their last states
                    running = (i < lengths)[:, None]
                    c_k = torch.where(running, c_k, c[k])
                    h_k = torch.where(running, h_k, h[k])
                hs.append(h_k)
                cs.append(c_k)
                below = h_k
            return i + 1, torch.stack(hs), torch.stack(cs)

        start = torch.zeros((), dtype=torch.int64, device=x.device)
        zeros = x.new_zeros(layers, batch, hidden)
        _, h, c = while_loop(cond, body, (start, zeros, zeros.clone()))
        return None, (h, c)
