"""LSTM and GRU layers and cells written in plain PyTorch ops (no fused cuDNN/ATen kernel).

They hold the same parameters as ``nn.LSTM`` / ``nn.GRU`` / ``nn.LSTMCell`` / ``nn.GRUCell``
(they subclass them: state dicts load either way) and compute the same outputs, but step
through time in Python, so they work under :func:`torch.vmap`, with higher-order gradients
and with :func:`torch.compile`. :class:`~streamrl.modules.LSTMModule` /
:class:`~streamrl.modules.GRUModule` use them with ``python_based=True``, and run the same
step functions when a fused ``nn.LSTM`` / ``nn.GRU`` is called under ``vmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GRU", "LSTM", "GRUCell", "LSTMCell"]

#: one cell step: (input, states, w_ih, w_hh, b_ih, b_hh) -> new states
Step = Callable[[Tensor, Sequence[Tensor], Tensor, Tensor, Tensor | None, Tensor | None],
                tuple[Tensor, ...]]


def lstm_step(x: Tensor, state: Sequence[Tensor], w_ih: Tensor, w_hh: Tensor,
              b_ih: Tensor | None, b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    """One LSTM step: ``(h, c)`` from the input ``x`` and the previous ``(h, c)``."""
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(state[0], w_hh, b_hh)).chunk(4, -1)
    c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_step(x: Tensor, state: Sequence[Tensor], w_ih: Tensor, w_hh: Tensor,
             b_ih: Tensor | None, b_hh: Tensor | None) -> tuple[Tensor]:
    """One GRU step: ``(h,)`` from the input ``x`` and the previous ``(h,)``."""
    ir, iz, in_ = F.linear(x, w_ih, b_ih).chunk(3, -1)
    hr, hz, hn = F.linear(state[0], w_hh, b_hh).chunk(3, -1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return ((1 - z) * n + z * state[0],)


def run_layers(rnn: nn.RNNBase, x: Tensor, states: Sequence[Tensor], step: Step
               ) -> tuple[Tensor, list[Tensor]]:
    """Run the stacked layers of ``rnn`` over ``x`` (``[N, T, F]``) from ``states`` (each
    ``[num_layers, N, H]``); return the last layer's outputs ``[N, T, H]`` and the final
    states (each ``[num_layers, N, H]``). Dropout between layers follows ``rnn.training``."""
    layer_states = [[s[k] for s in states] for k in range(rnn.num_layers)]
    outs = []
    for t in range(x.shape[1]):
        inp = x[:, t]
        for k in range(rnn.num_layers):
            bias = (getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")) if rnn.bias \
                else (None, None)
            layer_states[k] = list(step(inp, layer_states[k], getattr(rnn, f"weight_ih_l{k}"),
                                        getattr(rnn, f"weight_hh_l{k}"), *bias))
            inp = layer_states[k][0]
            if k < rnn.num_layers - 1 and rnn.dropout and rnn.training:
                inp = F.dropout(inp, rnn.dropout)
        outs.append(inp)
    new = [torch.stack([ls[j] for ls in layer_states]) for j in range(len(states))]
    return torch.stack(outs, 1), new


def _refuse(name: str, bidirectional: bool, proj_size: int = 0) -> None:
    if bidirectional:
        raise NotImplementedError(f"{name}: bidirectional=True is not supported")
    if proj_size:
        raise ValueError(f"{name}: proj_size must be 0, found {proj_size}")


def _layers_forward(rnn: nn.RNNBase, input: Tensor, hx: Sequence[Tensor] | None,
                    step: Step, n_states: int) -> tuple[Tensor, list[Tensor]]:
    name = type(rnn).__name__
    if not isinstance(input, Tensor) or input.dim() != 3:
        raise ValueError(
            f"{name}: expected a 3D input ([batch, time, features] with batch_first, else "
            f"[time, batch, features]), found {getattr(input, 'shape', type(input).__name__)}"
        )
    x = input if rnn.batch_first else input.transpose(0, 1)
    if x.shape[-1] != rnn.input_size:
        raise ValueError(f"{name}: expected {rnn.input_size} input features, found {x.shape[-1]}")
    shape = (rnn.num_layers, x.shape[0], rnn.hidden_size)
    if hx is None:
        hx = [x.new_zeros(shape) for _ in range(n_states)]
    for state in hx:
        if state.shape != shape:
            raise ValueError(
                f"{name}: expected hidden states of shape {shape} (num_layers, batch, "
                f"hidden_size), found {tuple(state.shape)}"
            )
    out, new = run_layers(rnn, x, hx, step)
    return (out if rnn.batch_first else out.transpose(0, 1)), new


class LSTM(nn.LSTM):
    """A multi-layer LSTM computed step by step in Python: ``nn.LSTM``'s parameters and
    outputs, usable under :func:`torch.vmap`.

    ``forward(input, (h0, c0)=None) -> (output, (h_n, c_n))`` with ``input``
    ``[batch, time, input_size]`` (``batch_first=True``, the default here) or
    ``[time, batch, input_size]``, and states ``[num_layers, batch, hidden_size]`` (zeros
    when not given). ``bidirectional=True`` raises ``NotImplementedError``; ``proj_size``
    must be 0.

    >>> lstm = LSTM(input_size=3, hidden_size=5, num_layers=2)
    >>> out, (h, c) = lstm(torch.randn(4, 7, 3))
    >>> out.shape, h.shape
    (torch.Size([4, 7, 5]), torch.Size([2, 4, 5]))
    >>> h, c = torch.vmap(lambda x: lstm(x)[1])(torch.randn(6, 4, 7, 3))  # not with nn.LSTM
    >>> h.shape
    torch.Size([6, 2, 4, 5])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 batch_first: bool = True, bias: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None,
                 dtype=None) -> None:
        _refuse("LSTM", bidirectional, proj_size)
        super().__init__(input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run the LSTM over ``input`` from ``hx = (h0, c0)``."""
        out, (h, c) = _layers_forward(self, input, hx, lstm_step, 2)
        return out, (h, c)


class GRU(nn.GRU):
    """A multi-layer GRU computed step by step in Python: ``nn.GRU``'s parameters and
    outputs, usable under :func:`torch.vmap`.

    ``forward(input, h0=None) -> (output, h_n)``; shapes and restrictions as :class:`LSTM`.

    >>> gru = GRU(input_size=3, hidden_size=5)
    >>> out, h = gru(torch.randn(4, 7, 3), torch.zeros(1, 4, 5))
    >>> out.shape, h.shape
    (torch.Size([4, 7, 5]), torch.Size([1, 4, 5]))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        _refuse("GRU", bidirectional)
        super().__init__(input_size, hidden_size, num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Run the GRU over ``input`` from ``hx = h0``."""
        out, (h,) = _layers_forward(self, input, None if hx is None else [hx], gru_step, 1)
        return out, h


def _cell_forward(cell: nn.RNNCellBase, input: Tensor, hx: Sequence[Tensor] | None,
                  step: Step, n_states: int) -> tuple[Tensor, ...]:
    name = type(cell).__name__
    if not isinstance(input, Tensor) or input.dim() not in (1, 2) \
            or input.shape[-1] != cell.input_size:
        raise ValueError(
            f"{name}: expected an input of shape [batch, {cell.input_size}] or "
            f"[{cell.input_size}], found {getattr(input, 'shape', type(input).__name__)}"
        )
    batched = input.dim() == 2
    x = input if batched else input.unsqueeze(0)
    shape = (x.shape[0], cell.hidden_size)
    if hx is None:
        states = [x.new_zeros(shape) for _ in range(n_states)]
    else:
        states = [s if batched else s.unsqueeze(0) for s in hx]
    for state in states:
        if state.shape != shape:
            raise ValueError(
                f"{name}: expected hidden states of shape {shape if batched else shape[1:]}, "
                f"found {tuple(state.shape if batched else state.shape[1:])}"
            )
    new = step(x, states, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    return new if batched else tuple(s.squeeze(0) for s in new)


class LSTMCell(nn.LSTMCell):
    """One LSTM step in plain PyTorch ops: ``nn.LSTMCell``'s parameters and outputs, usable
    under :func:`torch.vmap`.

    ``forward(input, (h, c)=None) -> (h', c')``; ``input`` is ``[batch, input_size]`` or
    ``[input_size]``, the states ``[batch, hidden_size]`` or ``[hidden_size]`` (zeros when
    not given).

    >>> cell = LSTMCell(input_size=3, hidden_size=5)
    >>> h, c = cell(torch.randn(4, 3))
    >>> h.shape, cell(torch.randn(3), (h[0], c[0]))[1].shape
    (torch.Size([4, 5]), torch.Size([5]))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor]:
        """One step from ``hx = (h, c)``."""
        h, c = _cell_forward(self, input, hx, lstm_step, 2)
        return h, c


class GRUCell(nn.GRUCell):
    """One GRU step in plain PyTorch ops: ``nn.GRUCell``'s parameters and outputs, usable
    under :func:`torch.vmap`.

    ``forward(input, h=None) -> h'``; shapes as :class:`LSTMCell`.

    >>> cell = GRUCell(input_size=3, hidden_size=5)
    >>> cell(torch.randn(4, 3), torch.zeros(4, 5)).shape
    torch.Size([4, 5])
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias=bias, device=device, dtype=dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """One step from ``hx = h``."""
        (h,) = _cell_forward(self, input, None if hx is None else [hx], gru_step, 1)
        return h
