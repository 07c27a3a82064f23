"""Greedy action selection from action values (DQN-style policies)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.utils import unravel_key

from streamrl.data.specs import Categorical as CategoricalSpec
from streamrl.data.specs import Composite, TensorSpec
from streamrl.data.specs import OneHot as OneHotSpec

__all__ = ["QValueActor", "QValueModule"]

_SPACES = ("one_hot", "categorical")


def _resolve_space(action_space: str | None, spec: Any, action_key) -> tuple[str, Any]:
    if isinstance(spec, Composite):
        spec = spec[action_key]
    if spec is not None and not isinstance(spec, TensorSpec):
        raise TypeError(f"spec must be a TensorSpec or Composite, got {type(spec).__name__}")
    inferred = None
    if isinstance(spec, OneHotSpec):
        inferred = "one_hot"
    elif isinstance(spec, CategoricalSpec):
        inferred = "categorical"
    elif spec is not None:
        raise ValueError(
            f"Q-value actions need a OneHot or Categorical spec, got {type(spec).__name__}"
        )
    if action_space is None:
        action_space = inferred or "one_hot"
    if action_space == "one-hot":  # TorchRL accepts both spellings
        action_space = "one_hot"
    if action_space not in _SPACES:
        raise ValueError(f"action_space must be one of {_SPACES}, got {action_space!r}")
    if inferred is not None and inferred != action_space:
        raise ValueError(
            f"action_space={action_space!r} does not match the {type(spec).__name__} spec"
        )
    return action_space, spec


class QValueModule(TensorDictModuleBase):
    """Pick the greedy action from ``action_value`` (shape ``[*B, n]``).

    Writes ``action`` (one-hot ``[*B, n]`` or index ``[*B]``), keeps ``action_value`` and
    writes ``chosen_action_value`` (``[*B, 1]``). With ``action_mask_key``, actions whose mask
    is False are never chosen.

    Args:
        action_space: ``"one_hot"`` (or ``"one-hot"``) or ``"categorical"``; inferred from
            ``spec`` if given (default ``"one_hot"``).
        spec: the action spec (``OneHot`` / ``Categorical``); the action takes its dtype.
        action_value_key, action_mask_key, out_keys: key names.

    >>> from tensordict import TensorDict
    >>> td = TensorDict({"action_value": torch.tensor([[1.0, 3.0, 2.0]])}, [1])
    >>> QValueModule(action_space="categorical")(td)["action"]
    tensor([1])
    """

    def __init__(
        self,
        action_space: str | None = None,
        *,
        spec: Any = None,
        action_value_key: Any = "action_value",
        action_mask_key: Any = None,
        out_keys: list | None = None,
    ) -> None:
        super().__init__()
        out_keys = ["action", action_value_key, "chosen_action_value"] if out_keys is None else out_keys
        if len(out_keys) != 3:
            raise ValueError(
                f"out_keys must be [action, action_value, chosen_action_value], got {out_keys}"
            )
        self.out_keys = [unravel_key(k) for k in out_keys]
        self.action_space, self.action_spec = _resolve_space(action_space, spec, self.out_keys[0])
        self.action_value_key = unravel_key(action_value_key)
        self.action_mask_key = None if action_mask_key is None else unravel_key(action_mask_key)
        in_keys = [self.action_value_key]
        if self.action_mask_key is not None:
            in_keys.append(self.action_mask_key)
        self.in_keys = in_keys

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        values = tensordict.get(self.action_value_key, None)
        if values is None:
            raise KeyError(
                f"QValueModule needs {self.action_value_key!r}; the TensorDict has "
                f"{sorted(map(str, tensordict.keys(True, True)))}"
            )
        scores = values
        if self.action_mask_key is not None:
            mask = tensordict.get(self.action_mask_key, None)
            if mask is None:
                raise KeyError(f"QValueModule needs the action mask at {self.action_mask_key!r}")
            if mask.shape != values.shape:
                raise ValueError(
                    f"action mask {self.action_mask_key!r} has shape {tuple(mask.shape)}, "
                    f"action values have shape {tuple(values.shape)}"
                )
            scores = values.masked_fill(~mask.bool(), float("-inf"))
        index = scores.argmax(-1)
        dtype = self.action_spec.dtype if self.action_spec is not None else torch.long
        if self.action_space == "one_hot":
            action = F.one_hot(index, values.shape[-1]).to(dtype)
        else:
            action = index.to(dtype)
            spec = self.action_spec
            if spec is not None:
                # a batched env's spec includes the batch dims: only what follows them is the
                # action's own shape (Categorical(n, shape=(1,)) keeps its unit dim)
                batch = tensordict.batch_size
                own = spec.shape[len(batch):] if spec.shape[: len(batch)] == batch else spec.shape
                if tuple(own) == (1,):
                    action = action.unsqueeze(-1)
        chosen = values.gather(-1, index.unsqueeze(-1))
        action_key, value_key, chosen_key = self.out_keys
        tensordict.set(action_key, action)
        if value_key != self.action_value_key:
            tensordict.set(value_key, values)
        tensordict.set(chosen_key, chosen)
        return tensordict


class QValueActor(TensorDictSequential):
    """A network writing ``action_value`` followed by a :class:`QValueModule`.

    Args:
        module: network mapping ``in_keys`` to action values ``[*B, n]`` (or a TensorDict
            module writing ``action_value`` itself).
        in_keys: network inputs (default ``["observation"]``).
        spec, action_space, action_mask_key: see :class:`QValueModule`.

    >>> from tensordict import TensorDict
    >>> actor = QValueActor(torch.nn.Linear(4, 2), action_space="one_hot")
    >>> td = actor(TensorDict({"observation": torch.randn(3, 4)}, [3]))
    >>> td["action"].shape, td["chosen_action_value"].shape
    (torch.Size([3, 2]), torch.Size([3, 1]))
    """

    def __init__(
        self,
        module: Any,
        in_keys: Any = None,
        *,
        spec: Any = None,
        action_space: str | None = None,
        action_value_key: Any = "action_value",
        action_mask_key: Any = None,
    ) -> None:
        if not isinstance(module, TensorDictModuleBase):
            module = TensorDictModule(
                module,
                in_keys=["observation"] if in_keys is None else in_keys,
                out_keys=[action_value_key],
            )
        elif in_keys is not None:
            raise ValueError("in_keys is only for a plain nn.Module; a TensorDict module has its own")
        qvalue = QValueModule(
            action_space,
            spec=spec,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
        )
        super().__init__(module, qvalue)
        self.action_space = qvalue.action_space
