"""Base class of the value estimators and the ``ValueEstimators`` enum."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey, unravel_key
from torch import Tensor, nn

from streamrl._utils.swap import params_in
from streamrl.objectives.value._accepted_keys import sync_key_declarations

__all__ = ["ValueEstimatorBase", "ValueEstimators", "default_value_kwargs"]


class ValueEstimators(enum.Enum):
    """The value estimators a loss can build with ``make_value_estimator``."""

    TD0 = "TD(0)"
    TD1 = "TD(1)"
    TDLambda = "TD(lambda)"
    GAE = "GAE"
    MAGAE = "Multi-agent GAE"
    VTrace = "V-trace"


def default_value_kwargs(value_type: ValueEstimators | str) -> dict[str, Any]:
    """The hyperparameters ``make_value_estimator`` uses for ``value_type`` unless told.

    ``gamma=0.99`` for all, ``lmbda=0.95`` for TD(lambda), GAE and MAGAE, and ``differentiable=True``
    (the value network is called with gradients enabled; the losses pass it detached
    parameters, so no gradient reaches the critic through the targets).

    >>> default_value_kwargs(ValueEstimators.TDLambda)
    {'gamma': 0.99, 'lmbda': 0.95, 'differentiable': True}
    """
    if isinstance(value_type, str):
        found = [v for v in ValueEstimators if value_type in (v.name, v.value)]
        if not found:
            raise ValueError(
                f"unknown value estimator {value_type!r}; expected one of "
                f"{[v.name for v in ValueEstimators]}"
            )
        value_type = found[0]
    if not isinstance(value_type, ValueEstimators):
        raise TypeError(
            f"value_type must be a ValueEstimators member, found {type(value_type).__name__}"
        )
    kwargs: dict[str, Any] = {"gamma": 0.99}
    if value_type in (ValueEstimators.TDLambda, ValueEstimators.GAE, ValueEstimators.MAGAE):
        kwargs["lmbda"] = 0.95
    kwargs["differentiable"] = True
    return kwargs


class _KeyView(Mapping):
    """Read-only view of a loss's keys with attribute access (``keys.reward``)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, NestedKey]) -> None:
        object.__setattr__(self, "_data", MappingProxyType(data))

    def __getitem__(self, name: str) -> NestedKey:
        return self._data[name]

    def __getattr__(self, name: str) -> NestedKey:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"no key named {name!r}; valid keys: {sorted(self._data)}"
            ) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("tensor_keys is read-only; use loss.set_keys(...)")

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"TensorKeys({dict(self._data)})"


def _missing(key: NestedKey, owner: str, hint: str = "") -> KeyError:
    return KeyError(f"{owner} needs the key {key!r} in its input tensordict, but it is missing{hint}")


def _checked_value(value: Any, owner: str) -> Tensor:
    """A ``next_value`` argument, refused unless it is a tensor (its shape is checked
    against the reward's where the targets are computed)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{owner}: next_value must be a torch.Tensor, found {type(value).__name__}")
    return value


class ValueEstimatorBase(nn.Module):
    """Reads rewards, done flags and values from a tensordict and computes value targets.

    The tensordict's last batch dimension is time; it may hold several trajectories back to
    back (``("next", "done")`` separates them). State values are read from ``state_value``
    and ``("next", "state_value")`` when present; otherwise ``value_network`` (any callable
    that writes the value key into the tensordict it gets, such as a ``TensorDictModule``)
    computes them, without gradients unless ``differentiable=True``, and writes them into
    the input. ``("next", "terminated")`` defaults to ``("next", "done")`` when absent.

    Subclasses implement :meth:`value_estimate` (the value target).
    :meth:`forward` writes ``advantage`` and ``value_target`` into the input.

    TorchRL's keyword arguments, shared by every estimator:

    - ``skip_existing``: with a ``value_network``, values already in the tensordict are
      recomputed (``None``/``False``, TorchRL's default: the network's current weights are
      used, e.g. at every PPO epoch) or kept (``True``). Without a network they are read.
    - ``advantage_key`` / ``value_target_key`` / ``value_key``: TorchRL's deprecated
      spellings of :meth:`set_keys`.
    - ``device``: where the estimator's tensor buffers (a tensor ``gamma``...) live.
    - ``time_dim``: the batch dim that is time (default: the last one); :meth:`forward`
      takes it too, for one call.
    - ``shifted``: ``False`` (default: two value-network calls, one on ``"next"``) or
      ``True``: one call over the steps followed by the last step's ``"next"`` (time the
      last batch dim), ``V(s')`` then the value of the row's following step, except where
      ``done`` is set but not ``terminated`` (a truncation: the true next state is in
      ``"next"``) and at the row's last step, which are computed from ``"next"`` (a
      terminated step's ``V(s')``, unused, is the following step's). Besides
      saving a call, this is what a recurrent critic needs: its state runs through the
      row, and the value after a ``done`` the estimator does not see (an RL^2 episode end
      inside a trial, whose ``done`` key is the trial's end) is that of the next input the
      policy gets (the reset observation), with the state carried on. One set of
      parameters serves both (a distinct ``target_params`` raises). TorchRL's flag of the
      same name also makes one call; it inserts the ``"next"`` state after every ``done``.

    :meth:`forward` also takes ``params`` / ``target_params`` (TensorDicts of the value
    network's parameters, as the losses pass them): the values of ``s`` are computed with
    ``params`` and those of ``s'`` with ``target_params`` (default: ``params``).

    Keys (rename with :meth:`set_keys`): ``advantage``, ``value_target``, ``value``
    (``"state_value"``), and, read under ``"next"``, ``reward``, ``done``, ``terminated``;
    ``sample_log_prob`` (``"action_log_prob"``) is read only by :class:`VTrace`.
    """

    default_keys: dict[str, NestedKey] = {
        "advantage": "advantage",
        "value_target": "value_target",
        "value": "state_value",
        "reward": "reward",
        "done": "done",
        "terminated": "terminated",
        # the behaviour policy's log-prob: read by V-trace; every estimator takes the key so
        # that one set_keys() call (or a loss's) fits whichever estimator is in use
        "sample_log_prob": "action_log_prob",
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # default_keys and TorchRL's _AcceptedKeys dataclass: either declares the keys
        sync_key_declarations(cls)

    def __init__(
        self,
        *,
        gamma: float | Tensor,
        value_network: Callable[[TensorDictBase], Any] | None = None,
        differentiable: bool = False,
        skip_existing: bool | None = None,
        advantage_key: NestedKey | None = None,
        value_target_key: NestedKey | None = None,
        value_key: NestedKey | None = None,
        shifted: bool = False,
        device: Any = None,
        time_dim: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(gamma, Tensor):
            self.register_buffer("gamma", gamma.detach().clone())
        elif isinstance(gamma, (int, float)):
            if not 0.0 <= float(gamma) <= 1.0:
                raise ValueError(f"gamma must be in [0, 1], found {gamma}")
            self.gamma = float(gamma)
        else:
            raise TypeError(f"gamma must be a float or a tensor, found {type(gamma).__name__}")
        if value_network is not None and not callable(value_network):
            raise TypeError(
                f"value_network must be callable, found {type(value_network).__name__}"
            )
        self.value_network = value_network
        self.differentiable = differentiable
        self._keys: dict[str, NestedKey] = dict(self.default_keys)
        if skip_existing not in (None, True, False):
            raise TypeError(f"skip_existing must be a bool or None, found {skip_existing!r}")
        self.skip_existing = bool(skip_existing)
        if not isinstance(shifted, bool):
            raise TypeError(f"shifted must be a bool, found {type(shifted).__name__}")
        self.shifted = shifted
        if time_dim is not None and (isinstance(time_dim, bool) or not isinstance(time_dim, int)):
            raise TypeError(f"time_dim must be an int or None, found {time_dim!r}")
        self.time_dim = time_dim
        self.set_keys(advantage=advantage_key, value_target=value_target_key, value=value_key)
        if device is not None:
            self.to(device)

    # ----------------------------------------------------------------- keys
    @property
    def tensor_keys(self) -> _KeyView:
        """Read-only view of the keys in use: ``est.tensor_keys.advantage`` or
        ``["advantage"]`` (change them with :meth:`set_keys`)."""
        return _KeyView(self._keys)

    def set_keys(self, **keys: NestedKey) -> ValueEstimatorBase:
        """Rename the tensordict keys this estimator reads and writes; returns ``self``."""
        for name, key in keys.items():
            if name not in self._keys:
                raise ValueError(
                    f"{type(self).__name__} has no key {name!r}; valid keys: {sorted(self._keys)}"
                )
            if key is None:
                continue
            self._keys[name] = key
        return self

    # ---------------------------------------------------------------- reading
    def _get(self, td: TensorDictBase, key: NestedKey, hint: str = "") -> Tensor:
        value = td.get(key, None)
        if value is None:
            raise _missing(key, type(self).__name__, hint)
        return value

    def _next_key(self, name: str) -> tuple:
        key = self._keys[name]
        return ("next", *key) if isinstance(key, tuple) else ("next", key)

    average_rewards = False  # TD(0)/TD(1)/TD(lambda) take it: standardised rewards

    def _flags(self, td: TensorDictBase) -> tuple[Tensor, Tensor, Tensor]:
        reward = self._get(td, self._next_key("reward"))
        if self.average_rewards:
            reward = (reward - reward.mean()) / reward.std().clamp_min(1e-5)
        done = self._get(td, self._next_key("done"))
        terminated = td.get(self._next_key("terminated"), None)
        if terminated is None:
            terminated = done  # no terminated flag: every end is terminal
        for name, flag in (("done", done), ("terminated", terminated)):
            if flag.shape != reward.shape:
                raise ValueError(
                    f"{type(self).__name__}: {self._next_key(name)!r} has shape "
                    f"{tuple(flag.shape)} but {self._next_key('reward')!r} has shape "
                    f"{tuple(reward.shape)}; they must be equal (no implicit broadcasting)"
                )
        return reward, done, terminated

    def _run_network(self, td: TensorDictBase, key: NestedKey,
                     params: TensorDictBase | None = None) -> Tensor:
        if self.value_network is None:
            raise _missing(key, type(self).__name__, " (and no value_network was given)")
        with torch.set_grad_enabled(self.differentiable and torch.is_grad_enabled()):
            if params is None:
                self.value_network(td)
            elif callable(getattr(self.value_network, "call_with", None)):
                self.value_network.call_with(td, params)  # a loss's own network
            else:
                # (not through an ExitStack: to_module's exit returns a TensorDict)
                with params_in(params, self.value_network):
                    self.value_network(td)
        value = td.get(self._keys["value"], None)
        if value is None:
            raise KeyError(
                f"{type(self).__name__}: value_network did not write {self._keys['value']!r}"
            )
        return value

    def _read(self, td: TensorDictBase, key: NestedKey) -> Tensor | None:
        """A value to use as it is: always without a network, with one only under
        ``skip_existing`` (otherwise the network recomputes it)."""
        if self.value_network is not None and not self.skip_existing:
            return None
        return td.get(key, None)

    def state_values(self, td: TensorDictBase, *, need_current: bool = True,
                     params: TensorDictBase | None = None,
                     target_params: TensorDictBase | None = None,
                     next_value: Tensor | None = None,
                     ) -> tuple[Tensor | None, Tensor]:
        """Return ``(V(s), V(s'))``, from the tensordict or computed with ``value_network``
        (see ``skip_existing``; ``params`` / ``target_params`` for the two calls);
        ``next_value`` is ``V(s')`` as given (nothing read or computed for it)."""
        params = self._call_params.get("params") if params is None else params
        if target_params is None:
            target_params = self._call_params.get("target_params", params)
        value_key = self._keys["value"]
        next_key = self._next_key("value")
        if self.shifted and next_value is None:
            return self._shifted_values(td, params, target_params)
        current = None
        if need_current:
            current = self._read(td, value_key)
            if current is None:
                current = self._run_network(td, value_key, params)
        if next_value is not None:
            return current, _checked_value(next_value, type(self).__name__)
        nxt = self._read(td, next_key)
        if nxt is None:
            if "next" not in td.keys():
                raise _missing("next", type(self).__name__)
            nxt = self._run_network(td.get("next"), next_key, target_params)
        return current, nxt

    def _shifted_values(self, td: TensorDictBase, params: TensorDictBase | None,
                        target_params: TensorDictBase | None) -> tuple[Tensor, Tensor]:
        """``shifted=True``'s ``(V(s), V(s'))``: see the class doc."""
        value_key, next_key = self._keys["value"], self._next_key("value")
        current, nxt = self._read(td, value_key), self._read(td, next_key)
        if current is not None and nxt is not None:
            return current, nxt
        if target_params is not params:
            raise ValueError(f"{type(self).__name__}(shifted=True) computes V(s) and V(s') in "
                             "one call with one set of parameters: found distinct "
                             "target_params")
        time_dim = self._time_dim(td)
        if time_dim != td.batch_dims - 1:
            raise ValueError(f"{type(self).__name__}(shifted=True) needs time as the last "
                             f"batch dim, found time_dim={time_dim} for batch_size="
                             f"{tuple(td.batch_size)}")
        if "next" not in td.keys():
            raise _missing("next", type(self).__name__)
        following = td.get("next")
        steps = td.batch_size[-1]
        last = following[..., steps - 1:]
        # the entries the network reads (all those both sides hold, without its in_keys)
        shared = {unravel_key(k) for k in last.keys(True, True)} & {
            unravel_key(k) for k in td.exclude("next").keys(True, True)}
        keys = getattr(self.value_network, "in_keys", None)
        if keys is not None:
            shared &= {unravel_key(k) for k in keys}
        selected = sorted(shared, key=str)
        joined = torch.cat([td.select(*selected), last.select(*selected)], dim=-1)
        values = self._run_network(joined, value_key, params)
        time = td.batch_dims - 1
        current, nxt = values.narrow(time, 0, steps), values.narrow(time, 1, steps).clone()
        _, done, terminated = self._flags(td)
        cut = (done & ~terminated).reshape(td.batch_size).clone()
        cut[..., -1] = False  # computed from "next" already
        if bool(cut.any()):
            # a truncation inside the row: the true next state is in "next", not the row
            bootstrap = self._run_network(following[cut].unsqueeze(-1), value_key, params)
            nxt[cut] = bootstrap.reshape(-1, *nxt.shape[td.batch_dims:])
        td.set(value_key, current)
        td.set(next_key, nxt)
        return current, nxt

    @property
    def _call_params(self) -> dict[str, Any]:
        return self.__dict__.get("_call_options", {})

    def _time_dim(self, td: TensorDictBase) -> int:
        if td.batch_dims == 0:
            raise ValueError(
                f"{type(self).__name__} needs a tensordict with a time dimension (its last "
                f"batch dimension), found batch_size={tuple(td.batch_size)}"
            )
        time_dim = self._call_params.get("time_dim", self.time_dim)
        if time_dim is None:
            return td.batch_dims - 1
        if not -td.batch_dims <= time_dim < td.batch_dims:
            raise ValueError(
                f"{type(self).__name__}: time_dim={time_dim} is not a batch dim of a "
                f"tensordict with batch_size={tuple(td.batch_size)}"
            )
        return time_dim % td.batch_dims

    @contextlib.contextmanager
    def _calling(self, **options: Any) -> Iterator[None]:
        """Per-call options (``params``, ``target_params``, ``time_dim``) for one forward."""
        given = {k: v for k, v in options.items() if v is not None}
        self.__dict__["_call_options"] = given
        try:
            yield
        finally:
            self.__dict__.pop("_call_options", None)

    # ------------------------------------------------------------------- API
    def value_estimate(self, td: TensorDictBase, *, next_value: Tensor | None = None) -> Tensor:
        """Return the value target for every step of ``td`` (shape of the reward).

        ``next_value`` (TorchRL's argument): ``V(s')`` for every step, used instead of the
        ``("next", value)`` entry or the value network's (a loss that bootstraps from its own
        target networks passes it, and ``td`` is left as it is)."""
        raise NotImplementedError

    def __call__(self, tensordict: TensorDictBase, *args: Any, params: TensorDictBase | None = None,
                 target_params: TensorDictBase | None = None, time_dim: int | None = None,
                 **kwargs: Any) -> Any:
        with self._calling(params=params, target_params=target_params, time_dim=time_dim):
            return super().__call__(tensordict, *args, **kwargs)

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        """Write ``advantage`` and ``value_target`` into ``td`` and return it (call the
        module: ``est(td, params=..., target_params=..., time_dim=...)``)."""
        target = self.value_estimate(td)
        current, _ = self.state_values(td)
        if current.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: {self._keys['value']!r} has shape "
                f"{tuple(current.shape)} but the reward has shape {tuple(target.shape)}"
            )
        td.set(self._keys["advantage"], target - current)
        td.set(self._keys["value_target"], target)
        return td

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


sync_key_declarations(ValueEstimatorBase)
