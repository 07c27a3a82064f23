"""Additive Gaussian exploration noise for continuous actions."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import unravel_key

from streamrl.modules._spec_utils import check_shape
from streamrl.modules.exploration._common import (
    Annealed,
    check_annealing,
    composite_spec,
    exploring,
    leaf_spec,
)

__all__ = ["AdditiveGaussianModule"]


class AdditiveGaussianModule(TensorDictModuleBase):
    """Add ``sigma * N(mean, std)`` noise to the action, then project into the spec.

    ``sigma`` moves linearly from ``sigma_init`` to ``sigma_end`` over
    ``annealing_num_steps`` frames counted by :meth:`step`. Acts only under
    ``ExplorationType.RANDOM`` or when no exploration type is set.

    ``spec`` is kept as a ``Composite`` (the one given, or the action spec under
    ``action_key``), as in TorchRL; ``action_spec`` is the action's own spec.

    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Bounded
    >>> noise = AdditiveGaussianModule(Bounded(-1.0, 1.0, shape=(2,)), sigma_init=10.0)
    >>> td = noise(TensorDict({"action": torch.zeros(50, 2)}, [50]))
    >>> bool((td["action"].abs() <= 1).all()), bool((td["action"] != 0).any())
    (True, True)
    """

    def __init__(
        self,
        spec: Any,
        sigma_init: float = 1.0,
        sigma_end: float = 0.1,
        annealing_num_steps: int = 1000,
        mean: float = 0.0,
        std: float = 1.0,
        *,
        action_key: Any = "action",
        safe: bool = True,
    ) -> None:
        super().__init__()
        check_annealing(sigma_init, sigma_end, annealing_num_steps, "AdditiveGaussianModule")
        self.action_spec = leaf_spec(spec, action_key, "AdditiveGaussianModule", required=safe)
        self.spec = composite_spec(spec, self.action_spec, action_key)
        self.action_key = unravel_key(action_key)
        self.in_keys = [self.action_key]
        self.out_keys = [self.action_key]
        self.mean, self.std, self.safe = mean, std, safe
        self._sigma = Annealed(sigma_init, sigma_end, annealing_num_steps)

    @property
    def sigma(self) -> torch.Tensor:
        """The current noise scale."""
        return self._sigma.value

    def step(self, frames: int = 1) -> None:
        """Advance the annealing by ``frames`` frames."""
        self._sigma.step(frames)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not exploring():
            return tensordict
        action = tensordict.get(self.action_key, None)
        if action is None:
            raise KeyError(f"AdditiveGaussianModule needs {self.action_key!r}")
        noise = torch.randn_like(action) * self.std + self.mean
        action = action + self.sigma.to(action.device) * noise
        if self.safe and self.action_spec is not None:
            check_shape(self.action_key, action, self.action_spec, "AdditiveGaussianModule")
            action = self.action_spec.project(action)
        tensordict.set(self.action_key, action)
        return tensordict
