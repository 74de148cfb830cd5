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
    """Same weights and outputs as the wrapped batch-first `nn.LSTM` (final states only)."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if lstm.bidirectional or not lstm.batch_first or lstm.proj_size:
            raise ValueError("LoopLSTM covers unidirectional, batch-first LSTMs without projection")
        self.lstm = lstm

    def forward(self, x: Tensor) -> tuple[None, tuple[Tensor, Tensor]]:
        batch, steps, _ = x.shape
        hs, cs, inputs = [], [], x
        for layer in range(self.lstm.num_layers):
            w_ih = getattr(self.lstm, f"weight_ih_l{layer}")
            w_hh = getattr(self.lstm, f"weight_hh_l{layer}")
            bias = getattr(self.lstm, f"bias_ih_l{layer}") + getattr(self.lstm, f"bias_hh_l{layer}")
            projected = inputs @ w_ih.t() + bias  # all time steps at once: (B, T, 4H)
            hidden = w_hh.shape[1]
            h0, c0 = x.new_zeros(batch, hidden), x.new_zeros(batch, hidden)
            out0 = x.new_zeros(batch, steps, hidden)

            def cond(i, h, c, out, xw):
                return i < xw.shape[1]

            def body(i, h, c, out, xw, w_hh=w_hh):
                g = xw.index_select(1, i.reshape(1)).squeeze(1) + h @ w_hh.t()
                gi, gf, gg, go = g.chunk(4, dim=-1)
                c2 = torch.sigmoid(gf) * c + torch.sigmoid(gi) * torch.tanh(gg)
                h2 = torch.sigmoid(go) * torch.tanh(c2)
                return i + 1, h2, c2, out.index_copy(1, i.reshape(1), h2.unsqueeze(1)), xw.clone()

            start = torch.zeros((), dtype=torch.int64, device=x.device)
            _, h, c, inputs, _ = while_loop(cond, body, (start, h0, c0, out0, projected))
            hs.append(h)
            cs.append(c)
        return None, (torch.stack(hs), torch.stack(cs))
