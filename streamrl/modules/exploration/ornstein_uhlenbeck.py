"""Ornstein-Uhlenbeck exploration noise (DDPG), with its state kept in the TensorDict."""

from __future__ import annotations

import math
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

__all__ = ["OrnsteinUhlenbeckProcessModule"]


class OrnsteinUhlenbeckProcessModule(TensorDictModuleBase):
    """Add temporally correlated noise ``eps * x_t`` to the action.

    ``x_{t+1} = x_t + theta * (mu - x_t) * dt + sigma * sqrt(dt) * N(0, 1)``, with ``eps``
    annealed from ``eps_init`` to ``eps_end`` over ``annealing_num_steps`` frames (:meth:`step`).

    The noise state is data, not module state, so one module serves any number of envs:
    it reads ``noise_key`` (``"_ou_prev_noise"``) from the TensorDict, restarts it from
    zeros where ``is_init`` is True or where the key is missing, and writes the new state at
    ``noise_key`` and ``("next", noise_key)``, so that ``step_mdp`` carries it to the next
    step. Acts only under
    ``ExplorationType.RANDOM`` or when no exploration type is set.

    ``spec`` is kept as a ``Composite`` (the one given, or the action spec under
    ``action_key``), as in TorchRL; ``action_spec`` is the action's own spec.

    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Bounded
    >>> ou = OrnsteinUhlenbeckProcessModule(Bounded(-1.0, 1.0, shape=(2,)))
    >>> td = ou(TensorDict({"action": torch.zeros(4, 2)}, [4]))
    >>> td["next", "_ou_prev_noise"].shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        spec: Any,
        eps_init: float = 1.0,
        eps_end: float = 0.1,
        annealing_num_steps: int = 1000,
        theta: float = 0.15,
        mu: float = 0.0,
        sigma: float = 0.2,
        dt: float = 1e-2,
        *,
        action_key: Any = "action",
        is_init_key: Any = "is_init",
        noise_key: Any = "_ou_prev_noise",
        safe: bool = True,
    ) -> None:
        super().__init__()
        check_annealing(eps_init, eps_end, annealing_num_steps, "OrnsteinUhlenbeckProcessModule")
        if theta < 0 or sigma < 0 or dt <= 0:
            raise ValueError(f"need theta >= 0, sigma >= 0, dt > 0; got {theta}, {sigma}, {dt}")
        self.action_spec = leaf_spec(spec, action_key, "OrnsteinUhlenbeckProcessModule", required=safe)
        self.spec = composite_spec(spec, self.action_spec, action_key)
        self.action_key = unravel_key(action_key)
        self.is_init_key = unravel_key(is_init_key)
        self.noise_key = unravel_key(noise_key)
        self.in_keys = [self.action_key, self.noise_key, self.is_init_key]
        self.out_keys = [self.action_key, self.noise_key, ("next", *_as_tuple(self.noise_key))]
        self.theta, self.mu, self.sigma, self.dt, self.safe = theta, mu, sigma, dt, safe
        self._eps = Annealed(eps_init, eps_end, annealing_num_steps)

    @property
    def eps(self) -> torch.Tensor:
        """The current noise scale."""
        return self._eps.value

    def step(self, frames: int = 1) -> None:
        """Advance the annealing by ``frames`` frames."""
        self._eps.step(frames)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if not exploring():
            return tensordict
        action = tensordict.get(self.action_key, None)
        if action is None:
            raise KeyError(f"OrnsteinUhlenbeckProcessModule needs {self.action_key!r}")
        prev = tensordict.get(self.noise_key, None)
        if prev is None:
            prev = torch.zeros_like(action)
        elif prev.shape != action.shape:
            raise ValueError(
                f"noise state {self.noise_key!r} has shape {tuple(prev.shape)}, the action "
                f"{self.action_key!r} has shape {tuple(action.shape)}"
            )
        is_init = tensordict.get(self.is_init_key, None)
        if is_init is not None:
            batch = tensordict.batch_size
            is_init = is_init.reshape(*batch, *([1] * (action.ndim - len(batch)))).bool()
            prev = torch.where(is_init, torch.zeros_like(prev), prev)
        noise = (
            prev
            + self.theta * (self.mu - prev) * self.dt
            + self.sigma * math.sqrt(self.dt) * torch.randn_like(prev)
        )
        action = action + self.eps.to(action.device) * noise
        if self.safe and self.action_spec is not None:
            check_shape(self.action_key, action, self.action_spec, "OrnsteinUhlenbeckProcessModule")
            action = self.action_spec.project(action)
        tensordict.set(self.action_key, action)
        # the new state goes to the root too: step_mdp keeps root entries, so the process
        # carries over even where an env's step rewrites "next"
        tensordict.set(self.noise_key, noise.detach())
        tensordict.set(self.out_keys[2], noise.detach())
        return tensordict


def _as_tuple(key: Any) -> tuple:
    return key if isinstance(key, tuple) else (key,)
