"""EnvCreator: an env factory that can be sent to other processes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import cloudpickle
import torch

__all__ = ["EnvCreator"]


class EnvCreator:
    """Wrap a zero-argument env factory (a lambda is fine) so that it pickles: it is
    serialized with cloudpickle, so it can be handed to worker processes with any start
    method. Calling it builds a new env.

    ``state_dict()`` is the state (transforms' statistics, as ``TransformedEnv.state_dict``)
    of the envs this creator builds, read from one env built for the purpose on first call;
    after ``load_state_dict(sd)`` every env it builds (in this process, or in a worker it
    was sent to afterwards) starts from ``sd``.

    >>> import pickle
    >>> from streamrl.envs.libs.gym import GymEnv
    >>> make = EnvCreator(lambda: GymEnv("Pendulum-v1"))
    >>> env = pickle.loads(pickle.dumps(make))()
    >>> env.batch_size
    torch.Size([])
    >>> env.close()
    >>> make.state_dict()  # a GymEnv has no transform state
    OrderedDict()
    """

    def __init__(
        self, create_env_fn: Callable[..., Any], create_env_kwargs: dict | None = None
    ) -> None:
        if not callable(create_env_fn):
            raise TypeError(f"create_env_fn must be callable, found {type(create_env_fn).__name__}")
        if create_env_kwargs is not None and not isinstance(create_env_kwargs, Mapping):
            raise TypeError(
                f"create_env_kwargs must be a dict, found {type(create_env_kwargs).__name__}"
            )
        self.create_env_fn = create_env_fn
        self.create_env_kwargs = dict(create_env_kwargs or {})
        self._state: OrderedDict | None = None  # read on first state_dict()
        self._loaded = False  # whether built envs start from _state

    def __call__(self, **kwargs: Any) -> Any:
        env = self.create_env_fn(**{**self.create_env_kwargs, **kwargs})
        if self._loaded and self._state:
            env.load_state_dict(self._state)
        return env

    def state_dict(self) -> OrderedDict:
        """The state of the envs this creator builds (an empty dict for envs without
        ``state_dict``, e.g. a bare GymEnv)."""
        if self._state is None:
            env = self.create_env_fn(**self.create_env_kwargs)
            try:
                get = getattr(env, "state_dict", None)
                sd = get() if callable(get) else {}
            finally:
                close = getattr(env, "close", None)
                if callable(close):
                    close()
            self._state = OrderedDict(
                (k, v.detach().clone() if isinstance(v, torch.Tensor) else v)
                for k, v in sd.items()
            )
        return self._state

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Make the envs built from now on start from ``state_dict`` (same keys as
        :meth:`state_dict`; values copied)."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict, found {type(state_dict).__name__}")
        current = self.state_dict()
        if set(state_dict) != set(current):
            raise KeyError(
                f"load_state_dict: expected keys {sorted(current)}, found {sorted(state_dict)}"
            )
        for key, value in state_dict.items():
            old = current[key]
            if isinstance(old, torch.Tensor):
                if not isinstance(value, torch.Tensor) or value.shape != old.shape:
                    found = tuple(value.shape) if isinstance(value, torch.Tensor) else value
                    raise ValueError(
                        f"load_state_dict: {key!r} expected a tensor of shape "
                        f"{tuple(old.shape)}, found {found}"
                    )
        for key, value in state_dict.items():
            old = current[key]
            if isinstance(old, torch.Tensor):
                old.copy_(value)
            else:
                current[key] = value
        self._loaded = True

    def __getstate__(self) -> dict:
        return {
            "payload": cloudpickle.dumps((self.create_env_fn, self.create_env_kwargs)),
            "state": self._state,
            "loaded": self._loaded,
        }

    def __setstate__(self, state: dict) -> None:
        self.create_env_fn, self.create_env_kwargs = cloudpickle.loads(state["payload"])
        self._state = state.get("state")
        self._loaded = state.get("loaded", False)

    def __repr__(self) -> str:
        return f"EnvCreator({self.create_env_fn!r}, kwargs={self.create_env_kwargs})"
