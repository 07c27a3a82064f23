"""TerminateTransform: end episodes when a user predicate on the step output holds.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import TerminateTransform
>>> t = TerminateTransform(lambda td: td["x"] > 1)
>>> td = TensorDict({"x": torch.tensor([[0.0], [2.0]]), "terminated": torch.zeros(2, 1, dtype=torch.bool),
...                  "done": torch.zeros(2, 1, dtype=torch.bool)}, [2])
>>> t(td)["done"].squeeze(-1).tolist()
[False, True]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import expand_as_right

from streamrl.envs.transforms.transform import Transform

__all__ = ["TerminateTransform"]


def _last(key: Any) -> str:
    return key if isinstance(key, str) else key[-1]


class TerminateTransform(Transform):
    """After each step, OR ``stop(next_td)`` into the ``terminated`` (and ``done``) entries.

    With ``rollout(..., break_when_any_done=True)`` (the default) the rollout then ends as
    soon as the condition holds. Every ``terminated`` entry of the step output (nested ones
    too, e.g. per agent) gets the flag, and with ``write_done`` every ``done`` entry; specs
    are unchanged. On plain data, ``transform(td)`` treats ``td`` as a step output.

    Args:
        stop: maps the step output (the ``"next"`` TensorDict) to a boolean scalar or a
            boolean tensor shaped like the done entries or like their leading dims.

    Keyword Args:
        write_done: also OR the flag into the ``done`` entries (default ``True``); with
            ``False`` only ``terminated`` is written.

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> from streamrl.envs.transforms import TransformedEnv
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), TerminateTransform(lambda td: td["reward"] < 0))
    >>> env.rollout(50).shape  # Pendulum's rewards are negative: the first step ends it
    torch.Size([1])
    >>> env.close()
    """

    def __init__(self, stop: Callable[[TensorDictBase], Any], *, write_done: bool = True) -> None:
        if not callable(stop):
            raise TypeError(f"stop must be callable, found {type(stop).__name__}")
        super().__init__()
        self.stop = stop
        self.write_done = bool(write_done)

    def _flag(self, td: TensorDictBase) -> torch.Tensor:
        flag = self.stop(td)
        if isinstance(flag, bool):
            return torch.tensor(flag)
        if not isinstance(flag, torch.Tensor) or flag.dtype != torch.bool:
            found = flag.dtype if isinstance(flag, torch.Tensor) else type(flag).__name__
            raise TypeError(
                f"TerminateTransform: stop must return a bool or a bool tensor, found {found}"
            )
        return flag

    @staticmethod
    def _or(flag: torch.Tensor, entry: torch.Tensor, key: Any) -> torch.Tensor:
        if flag.ndim < entry.ndim and flag.shape == entry.shape[: flag.ndim]:
            return entry | expand_as_right(flag, entry)
        try:
            return entry | torch.broadcast_to(flag, entry.shape)
        except RuntimeError:
            raise ValueError(
                f"TerminateTransform: stop returned shape {tuple(flag.shape)}, which does not "
                f"fit the entry {key!r} of shape {tuple(entry.shape)}"
            ) from None

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        names = ("terminated", "done") if self.write_done else ("terminated",)
        keys = [k for k in td.keys(True, True) if _last(k) in names]
        if not keys:
            raise KeyError(
                f"TerminateTransform: the data has no {' or '.join(names)} entry; found "
                f"{sorted(str(k) for k in td.keys(True, True))}"
            )
        flag = self._flag(td)
        for key in keys:
            td.set(key, self._or(flag, td.get(key), key))
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return td_reset

    def __repr__(self) -> str:
        name = getattr(self.stop, "__name__", type(self.stop).__name__)
        return f"TerminateTransform(stop={name}, write_done={self.write_done})"
