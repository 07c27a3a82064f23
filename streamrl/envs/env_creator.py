"""EnvCreator: an env factory that can be sent to other processes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudpickle

__all__ = ["EnvCreator"]


class EnvCreator:
    """Wrap a zero-argument env factory (a lambda is fine) so that it pickles: it is
    serialized with cloudpickle, so it can be handed to worker processes with any start
    method. Calling it builds a new env.

    >>> import pickle
    >>> from streamrl.envs.libs.gym import GymEnv
    >>> make = EnvCreator(lambda: GymEnv("Pendulum-v1"))
    >>> env = pickle.loads(pickle.dumps(make))()
    >>> env.batch_size
    torch.Size([])
    >>> env.close()
    """

    def __init__(
        self, create_env_fn: Callable[..., Any], create_env_kwargs: dict | None = None
    ) -> None:
        if not callable(create_env_fn):
            raise TypeError(f"create_env_fn must be callable, found {type(create_env_fn).__name__}")
        self.create_env_fn = create_env_fn
        self.create_env_kwargs = dict(create_env_kwargs or {})

    def __call__(self, **kwargs: Any) -> Any:
        return self.create_env_fn(**{**self.create_env_kwargs, **kwargs})

    def __getstate__(self) -> dict:
        return {"payload": cloudpickle.dumps((self.create_env_fn, self.create_env_kwargs))}

    def __setstate__(self, state: dict) -> None:
        self.create_env_fn, self.create_env_kwargs = cloudpickle.loads(state["payload"])

    def __repr__(self) -> str:
        return f"EnvCreator({self.create_env_fn!r}, kwargs={self.create_env_kwargs})"
