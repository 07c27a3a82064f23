"""LSTM and GRU modules whose hidden state lives in the TensorDict.

Stepwise (default): the TensorDict has batch dims ``[*B]`` and holds one step; the module reads
the state at ``recurrent_state_*`` (zeros when the key is missing), resets it where ``is_init``
is True, and writes the new state under ``("next", recurrent_state_*)`` so that ``step_mdp``
carries it to the next step.

Sequence mode (inside ``with set_recurrent_mode(True)``, or on the copy returned by
``module.set_recurrent_mode(True)``, or with ``default_recurrent_mode=True``): the last batch
dim is time, ``[*B, T]``.
The state is read at ``t = 0`` and reset wherever ``is_init`` is True inside the sequence, so
the outputs equal a stepwise rollout over the same data. The fused kernels do not return
intermediate states, so ``("next", recurrent_state_*)`` entries already in the TensorDict
(collected data: the exact per-step states) are left as they are; when missing they are
written with the exact state after the last step at index ``T - 1`` and zeros before it.

Under ``torch.vmap`` (ensembles, functional calls) the same math runs unfused, step by step.
"""

from __future__ import annotations

import copy
import itertools

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import unravel_key
from torch import nn

from streamrl.data.specs import Composite, Unbounded
from streamrl.envs.transforms import TensorDictPrimer
from streamrl.modules.models.python_rnn import GRU, LSTM, gru_step, lstm_step, run_layers
from streamrl.modules.models.recurrent_mode import recurrent_mode as _global_recurrent_mode

__all__ = ["GRUModule", "LSTMModule"]


def _is_batched(*tensors: torch.Tensor) -> bool:
    return any(torch._C._functorch.is_batchedtensor(t) for t in tensors)


def _keys(in_key, in_keys, default_in, out_key, out_keys, default_state):
    if in_keys is None:
        in_keys = [in_key or default_in, *default_state, "is_init"]
    in_keys = [unravel_key(k) for k in in_keys]
    n_state = len(default_state)
    if len(in_keys) == n_state + 1:
        in_keys = [*in_keys, "is_init"]
    if len(in_keys) != n_state + 2:
        raise ValueError(
            f"in_keys must be [input, {n_state} state key(s)] optionally followed by the is_init "
            f"key, got {in_keys}"
        )
    if out_keys is None:
        out_keys = [out_key or "embed", *[("next", k) for k in in_keys[1 : 1 + n_state]]]
    out_keys = [unravel_key(k) for k in out_keys]
    if len(out_keys) != n_state + 1:
        raise ValueError(f"out_keys must be [output, {n_state} state key(s)], got {out_keys}")
    return in_keys, out_keys


class _RecurrentModule(TensorDictModuleBase):
    _rnn_class: type[nn.RNNBase]
    _python_class: type[nn.RNNBase]
    _state_keys: tuple[str, ...]

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        python_based: bool = False,
        *,
        in_key: str | None = None,
        in_keys: list | None = None,
        out_key: str | None = None,
        out_keys: list | None = None,
        device: torch.device | str | None = None,
        rnn: nn.RNNBase | None = None,
        default_recurrent_mode: bool | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not batch_first:
            raise ValueError(f"{name} needs batch_first=True (time is the last batch dim)")
        if bidirectional:
            raise ValueError(f"{name} does not support bidirectional=True (it runs online)")
        if rnn is not None:
            if input_size is not None or hidden_size is not None:
                raise ValueError(f"{name}: pass either the sizes or a built rnn module, not both")
            if not isinstance(rnn, self._rnn_class):
                raise TypeError(f"{name} expected an {self._rnn_class.__name__}, got {rnn!r}")
            if not rnn.batch_first or rnn.bidirectional or getattr(rnn, "proj_size", 0):
                raise ValueError(
                    f"{name} needs a batch_first, unidirectional rnn without projection, "
                    f"got {rnn!r}"
                )
        else:
            for arg, val in (("input_size", input_size), ("hidden_size", hidden_size),
                             ("num_layers", num_layers)):
                if not isinstance(val, int) or val < 1:
                    raise ValueError(f"{arg} must be a positive int, got {val!r}")
            rnn_class = self._python_class if python_based else self._rnn_class
            rnn = rnn_class(
                input_size, hidden_size, num_layers, bias=bias, dropout=dropout,
                batch_first=True, device=device,
            )
        self.in_keys, self.out_keys = _keys(
            in_key, in_keys, "embed", out_key, out_keys, list(self._state_keys)
        )
        self.rnn = rnn
        self.python_based = bool(python_based)
        self._recurrent_mode = bool(default_recurrent_mode)

    @property
    def recurrent_mode(self) -> bool:
        """Whether the module runs over sequences now: the :func:`set_recurrent_mode`
        context's mode if one is active, else the module's own default."""
        mode = _global_recurrent_mode()
        return self._recurrent_mode if mode is None else mode

    @property
    def _state_shape(self) -> tuple[int, int]:
        return (self.rnn.num_layers, self.rnn.hidden_size)

    def set_recurrent_mode(self, mode: bool = True) -> _RecurrentModule:
        """Return a copy (sharing parameters) that runs over ``[*B, T]`` sequences if ``mode``."""
        out = copy.copy(self)
        out._recurrent_mode = bool(mode)
        return out

    def initial_state(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write zero states for the missing state keys (e.g. right after ``env.reset()``)."""
        for key in self.in_keys[1:-1]:
            if key not in tensordict.keys(include_nested=True):
                tensordict.set(
                    key, torch.zeros(*tensordict.batch_size, *self._state_shape,
                                     device=self.rnn.weight_hh_l0.device)
                )
        return tensordict

    def make_tensordict_primer(self, keep_at_reset: bool = False) -> TensorDictPrimer:
        """A :class:`~streamrl.envs.TensorDictPrimer` for the env: the state keys (the
        ``in_keys`` between the input and ``is_init``), zero at reset, of shape
        ``(num_layers, hidden_size)`` per env. Appended to the env, the states are part of its
        specs, so batched envs and collectors allocate, carry and return them.
        ``keep_at_reset=True``: a reset keeps the carried state (zero only at the first), so
        that only ``is_init`` resets it (RL^2: ``("task", "new")``, a new task, not each
        episode's reset).

        >>> gru = GRUModule(input_size=3, hidden_size=8, num_layers=2, in_key="obs",
        ...                 out_key="features")
        >>> gru.make_tensordict_primer().primers["recurrent_state"].shape
        torch.Size([2, 8])
        """
        weight = self.rnn.weight_hh_l0
        specs = {
            key: Unbounded(shape=self._state_shape, dtype=weight.dtype, device=weight.device)
            for key in self.in_keys[1:-1]
        }
        return TensorDictPrimer(Composite(specs), default_value=0.0, expand_specs=True,
                                keep_at_reset=keep_at_reset)

    def _read(self, tensordict: TensorDictBase, batch: torch.Size):
        in_key, *state_keys, init_key = self.in_keys
        value = tensordict.get(in_key, None)
        if value is None:
            raise KeyError(
                f"{type(self).__name__} needs the input key {in_key!r}; the TensorDict has "
                f"{sorted(map(str, tensordict.keys(True, True)))}"
            )
        if value.shape[:-1] != batch or value.shape[-1] != self.rnn.input_size:
            raise ValueError(
                f"{type(self).__name__} expected {in_key!r} of shape "
                f"{(*batch, self.rnn.input_size)}, got {tuple(value.shape)}"
            )
        states = []
        for key in state_keys:
            state = tensordict.get(key, None)
            if state is None:
                state = value.new_zeros(*batch, *self._state_shape)
            elif state.shape != (*batch, *self._state_shape):
                raise ValueError(
                    f"{type(self).__name__} expected state {key!r} of shape "
                    f"{(*batch, *self._state_shape)} (batch, num_layers, hidden_size), "
                    f"got {tuple(state.shape)}"
                )
            states.append(state)
        is_init = tensordict.get(init_key, None)
        if is_init is None:
            is_init = torch.zeros(batch, dtype=torch.bool, device=value.device)
        else:
            if is_init.shape == (*batch, 1):
                is_init = is_init.squeeze(-1)
            if is_init.shape != batch:
                raise ValueError(
                    f"{type(self).__name__} expected {init_key!r} of shape {(*batch, 1)}, "
                    f"got {tuple(is_init.shape)}"
                )
            is_init = is_init.bool()
        return value, states, is_init

    def _run(self, x: torch.Tensor, states: list[torch.Tensor]):
        # x: [N, T, F]; states: [N, L, H] -> rnn wants [L, N, H]
        weights = [getattr(self.rnn, name) for name in self.rnn._flat_weights_names]
        if self.python_based or _is_batched(x, *states, *weights):
            # fused RNN kernels have no vmap batching rule: use the same math step by step
            return self._run_unfused(x, states)
        hx = [s.transpose(0, 1).contiguous() for s in states]
        out, new = self.rnn(x, hx[0] if len(hx) == 1 else tuple(hx))
        new = [new] if isinstance(new, torch.Tensor) else list(new)
        return out, [s.transpose(0, 1) for s in new]

    def _run_unfused(self, x: torch.Tensor, states: list[torch.Tensor]):
        # the step functions of the Python-based layers (streamrl.modules.LSTM / GRU)
        out, new = run_layers(self.rnn, x, [s.transpose(0, 1) for s in states], self._step)
        return out, [s.transpose(0, 1) for s in new]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.recurrent_mode:
            return self._forward_sequence(tensordict)
        batch = tensordict.batch_size
        value, states, is_init = self._read(tensordict, batch)
        for key, state in zip(self.in_keys[1:-1], states):
            # a missing state (first step after reset) is written as the zeros used, so every
            # step of a rollout carries the same keys and can be stacked
            if key not in tensordict.keys(include_nested=True):
                tensordict.set(key, state)
        n = batch.numel()
        keep = (~is_init).reshape(n, 1, 1).to(value.dtype)
        states = [s.reshape(n, *self._state_shape) * keep for s in states]
        out, new = self._run(value.reshape(n, 1, -1), states)
        tensordict.set(self.out_keys[0], out.reshape(*batch, -1))
        for key, state in zip(self.out_keys[1:], new):
            tensordict.set(key, state.reshape(*batch, *self._state_shape))
        return tensordict

    def _forward_sequence(self, tensordict: TensorDictBase) -> TensorDictBase:
        if tensordict.batch_dims < 1:
            raise ValueError(
                f"{type(self).__name__} in recurrent mode needs a time dim (batch [*B, T]), "
                f"got batch_size {tuple(tensordict.batch_size)}"
            )
        batch = tensordict.batch_size
        value, states, is_init = self._read(tensordict, batch)
        steps = batch[-1]
        n = batch[:-1].numel()
        x = value.reshape(n, steps, -1)
        is_init = is_init.reshape(n, steps)
        states = [s.reshape(n, steps, *self._state_shape)[:, 0] for s in states]
        # Split time where any row starts a new episode; each chunk runs in one fused call.
        starts = [0, *(torch.nonzero(is_init[:, 1:].any(0)).flatten() + 1).tolist(), steps]
        outs = []
        for begin, end in itertools.pairwise(starts):
            keep = (~is_init[:, begin]).reshape(n, 1, 1).to(x.dtype)
            states = [s * keep for s in states]
            out, states = self._run(x[:, begin:end], states)
            outs.append(out)
        out = torch.cat(outs, 1)
        tensordict.set(self.out_keys[0], out.reshape(*batch, -1))
        for key, state in zip(self.out_keys[1:], states):
            if key in tensordict.keys(include_nested=True):
                continue  # collected data already holds the exact per-step states
            full = state.new_zeros(n, steps, *self._state_shape)
            full[:, -1] = state
            tensordict.set(key, full.reshape(*batch, *self._state_shape))
        return tensordict


class LSTMModule(_RecurrentModule):
    """An ``nn.LSTM`` reading and writing its ``(h, c)`` state in the TensorDict.

    Default keys: in ``["embed", "recurrent_state_h", "recurrent_state_c", "is_init"]``, out
    ``["embed", ("next", "recurrent_state_h"), ("next", "recurrent_state_c")]``. States have
    shape ``[*batch, num_layers, hidden_size]``; missing states are zeros. See the module
    docstring for stepwise vs. sequence mode.

    Args:
        input_size, hidden_size, num_layers, bias, dropout: as for ``nn.LSTM``.
        batch_first: must be ``True``; proj_size: must be 0; bidirectional: must be ``False``
            (TorchRL's arguments, kept so its calls work; other values are refused).
        python_based: build a :class:`~streamrl.modules.LSTM` (the cell math step by step in
            Python) instead of the fused ``nn.LSTM`` (same results; needed e.g. for
            higher-order gradients).
        in_key / in_keys, out_key / out_keys: the keys (see above).
        device: where to build the LSTM.
        lstm: an ``nn.LSTM`` (``batch_first=True``) to wrap instead of building one.
        default_recurrent_mode: run over sequences when no :func:`set_recurrent_mode`
            context says otherwise (default ``False``).

    >>> from tensordict import TensorDict
    >>> lstm = LSTMModule(3, 8, in_key="obs", out_key="features")
    >>> td = lstm(TensorDict({"obs": torch.randn(4, 3)}, [4]))
    >>> td["features"].shape, td["next", "recurrent_state_c"].shape
    (torch.Size([4, 8]), torch.Size([4, 1, 8]))
    """

    _rnn_class = nn.LSTM
    _python_class = LSTM
    _step = staticmethod(lstm_step)
    _state_keys = ("recurrent_state_h", "recurrent_state_c")

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        proj_size: int = 0,
        bidirectional: bool = False,
        python_based: bool = False,
        *,
        in_key: str | None = None,
        in_keys: list | None = None,
        out_key: str | None = None,
        out_keys: list | None = None,
        device: torch.device | str | None = None,
        lstm: nn.LSTM | None = None,
        default_recurrent_mode: bool | None = None,
    ) -> None:
        if proj_size:
            raise ValueError(f"LSTMModule does not support proj_size (got {proj_size})")
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            python_based, in_key=in_key, in_keys=in_keys, out_key=out_key, out_keys=out_keys,
            device=device, rnn=lstm, default_recurrent_mode=default_recurrent_mode,
        )

    @property
    def lstm(self) -> nn.LSTM:
        """The wrapped ``nn.LSTM``."""
        return self.rnn



class GRUModule(_RecurrentModule):
    """An ``nn.GRU`` reading and writing its hidden state in the TensorDict.

    Default keys: in ``["embed", "recurrent_state", "is_init"]`` (pass ``in_keys`` to rename),
    out ``["embed", ("next", "recurrent_state")]``. Same conventions and arguments as
    :class:`LSTMModule` (``gru=`` wraps a built ``nn.GRU``; no ``proj_size``).

    >>> from tensordict import TensorDict
    >>> gru = GRUModule(3, 8, in_key="obs", out_key="features").set_recurrent_mode(True)
    >>> gru(TensorDict({"obs": torch.randn(2, 5, 3)}, [2, 5]))["features"].shape
    torch.Size([2, 5, 8])
    """

    _rnn_class = nn.GRU
    _python_class = GRU
    _step = staticmethod(gru_step)
    _state_keys = ("recurrent_state",)

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        python_based: bool = False,
        *,
        in_key: str | None = None,
        in_keys: list | None = None,
        out_key: str | None = None,
        out_keys: list | None = None,
        device: torch.device | str | None = None,
        gru: nn.GRU | None = None,
        default_recurrent_mode: bool | None = None,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            python_based, in_key=in_key, in_keys=in_keys, out_key=out_key, out_keys=out_keys,
            device=device, rnn=gru, default_recurrent_mode=default_recurrent_mode,
        )

    @property
    def gru(self) -> nn.GRU:
        """The wrapped ``nn.GRU``."""
        return self.rnn

