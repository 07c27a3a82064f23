"""Epsilon-greedy exploration for discrete (and box) action spaces."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import unravel_key

from streamrl._utils.one_hot import one_hot
from streamrl.data.specs import Bounded, OneHot
from streamrl.data.specs import Categorical as CategoricalSpec
from streamrl.modules.exploration._common import (
    Annealed,
    check_annealing,
    composite_spec,
    exploring,
    leaf_spec,
)

__all__ = ["EGreedyModule"]


class EGreedyModule(TensorDictModuleBase):
    """Replace the action by a random one with probability ``eps`` (per batch element).

    Put it after a greedy policy: ``TensorDictSequential(qvalue_actor, EGreedyModule(spec))``.
    ``eps`` starts at ``eps_init`` and moves linearly to ``eps_end`` over
    ``annealing_num_steps`` frames counted by :meth:`step`. It acts only under
    ``ExplorationType.RANDOM`` or when no exploration type is set; under MODE / MEAN /
    DETERMINISTIC the action passes through unchanged.

    Random actions follow the spec: one-hot vectors for ``OneHot``, indices for
    ``Categorical``, uniform values for ``Bounded``. With ``action_mask_key`` only allowed
    actions are drawn. On CPU, random actions are drawn only for a call where some element
    explores (the coin flips come first): most calls of a one-env rollout late in the
    annealing draw nothing more.

    ``spec`` is kept as a ``Composite`` (the one given, or the action spec under
    ``action_key``), as in TorchRL; ``action_spec`` is the action's own spec.

    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Categorical
    >>> explore = EGreedyModule(Categorical(4), eps_init=1.0, eps_end=0.0, annealing_num_steps=10)
    >>> td = explore(TensorDict({"action": torch.zeros(100, dtype=torch.long)}, [100]))
    >>> bool((td["action"] != 0).any())
    True
    >>> explore.step(10); explore.eps.item()
    0.0
    """

    def __init__(
        self,
        spec: Any,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        *,
        action_key: Any = "action",
        action_mask_key: Any = None,
    ) -> None:
        super().__init__()
        check_annealing(eps_init, eps_end, annealing_num_steps, "EGreedyModule")
        if eps_init > 1 or eps_end > 1:
            raise ValueError(f"eps must be in [0, 1], got eps_init={eps_init} eps_end={eps_end}")
        self.action_spec = leaf_spec(spec, action_key, "EGreedyModule")
        self.spec = composite_spec(spec, self.action_spec, action_key)
        if not isinstance(self.action_spec, (OneHot, CategoricalSpec, Bounded)):
            raise TypeError(
                "EGreedyModule supports OneHot, Categorical and Bounded specs, got "
                f"{type(self.action_spec).__name__}"
            )
        if action_mask_key is not None and isinstance(self.action_spec, Bounded):
            raise ValueError("action masks need a OneHot or Categorical spec")
        self.action_key = unravel_key(action_key)
        self.action_mask_key = None if action_mask_key is None else unravel_key(action_mask_key)
        self.in_keys = [self.action_key] + (
            [self.action_mask_key] if self.action_mask_key is not None else []
        )
        self.out_keys = [self.action_key]
        self._eps = Annealed(eps_init, eps_end, annealing_num_steps)

    @property
    def eps(self) -> torch.Tensor:
        """The current epsilon."""
        return self._eps.value

    def step(self, frames: int = 1) -> None:
        """Advance the annealing by ``frames`` frames."""
        self._eps.step(frames)

    def _random_action(self, action: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        spec = self.action_spec
        if isinstance(spec, Bounded):
            low, high = spec.low.to(action.device), spec.high.to(action.device)
            return (low + (high - low) * torch.rand_like(action, dtype=low.dtype)).to(action.dtype)
        n = spec.n
        index_shape = action.shape[:-1] if isinstance(spec, OneHot) else action.shape
        if mask is None:
            index = torch.randint(n, index_shape, device=action.device)
        else:
            if mask.shape != (*index_shape, n):
                raise ValueError(
                    f"action mask {self.action_mask_key!r} must have shape "
                    f"{(*index_shape, n)}, got {tuple(mask.shape)}"
                )
            weights = mask.to(torch.float).reshape(-1, n)
            if weights.device.type == "cpu" and not (weights.sum(-1) > 0).all():
                raise ValueError(f"action mask {self.action_mask_key!r} allows no action in a row")
            index = torch.multinomial(weights, 1).reshape(index_shape)
        if isinstance(spec, OneHot):
            return one_hot(index, n, action.dtype)
        return index.to(action.dtype)

    def _plan_step(self, key_ok: Any) -> tuple | None:
        """This module as a step of a tensor plan (``streamrl._utils.tensor_plan``): what
        :meth:`forward` does, with the batch read off a one-hot action (its dims before the
        last), drawing in the same order; ``None`` for other specs (an index action does not
        say where the batch ends) or keys ``key_ok`` refuses."""
        keys = [self.action_key] + ([] if self.action_mask_key is None else [self.action_mask_key])
        if not isinstance(self.action_spec, OneHot) or not all(key_ok(k) for k in keys):
            return None

        def step(action: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
            if not exploring():
                return action
            return self._explore(action, None if mask is None else mask.bool(),
                                 action.shape[:-1])

        return step, tuple(keys), (self.action_key,)

    def _explore(self, action: torch.Tensor, mask: torch.Tensor | None,
                 batch: torch.Size) -> torch.Tensor:
        explore = torch.rand(batch, device=action.device) < self.eps.to(action.device)
        if action.device.type == "cpu" and not bool(explore.any()):
            return action  # (reading the flips back would wait for an accelerator)
        random_action = self._random_action(action, mask)
        explore = explore.reshape((*batch, *([1] * (action.ndim - len(batch)))))
        return torch.where(explore, random_action, action)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not exploring():
            return tensordict
        action = tensordict.get(self.action_key, None)
        if action is None:
            raise KeyError(
                f"EGreedyModule needs {self.action_key!r}; put it after the policy that writes it"
            )
        mask = None
        if self.action_mask_key is not None:
            mask = tensordict.get(self.action_mask_key, None)
            if mask is None:
                raise KeyError(f"EGreedyModule needs the action mask at {self.action_mask_key!r}")
            mask = mask.bool()
        tensordict.set(self.action_key, self._explore(action, mask, tensordict.batch_size))
        return tensordict
