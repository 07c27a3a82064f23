"""Tiny networks with set weights for the offline-loss tests (IQL, CQL, TD3+BC): imported as a
plain module (``from _offline_fixtures import ...``).

Observations and actions have one dim each, so every value below can be checked by hand.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDict
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Normal

#: log N(x; mu, 1) at x = mu: the constant of a unit Gaussian's log-density
LOG_NORM = -0.5 * math.log(2 * math.pi)


class LocUnitScale(nn.Module):
    """``(w * obs, 1)``: a Gaussian policy's mean and a unit scale."""

    def __init__(self, w: float = 1.0) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.lin.weight.fill_(w)

    def forward(self, obs):
        loc = self.lin(obs)
        return loc, torch.ones_like(loc)


class ShiftedNormal(Normal):
    """A unit-variance Gaussian whose reparameterised samples are always ``loc + 0.5 * scale``:
    a deterministic stand-in for sampled actions (its log-density stays the Gaussian's)."""

    def rsample(self, sample_shape=torch.Size()):  # noqa: B008 (torch's own signature)
        return (self.loc + 0.5 * self.scale).expand(self._extended_shape(sample_shape))


def gaussian_actor(w: float = 1.0, dist=Normal):
    """``a ~ dist(w * obs, 1)``."""
    return ProbabilisticTensorDictSequential(
        TensorDictModule(LocUnitScale(w), ["observation"], ["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=dist),
    )


class ConcatQ(nn.Module):
    """``Q(s, a) = w_s * s + w_a * a + b``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, obs, action):
        return self.lin(torch.cat([obs, action], -1))


def concat_q() -> TensorDictModule:
    return TensorDictModule(ConcatQ(), ["observation", "action"], ["state_action_value"])


def linear_value(w: float) -> TensorDictModule:
    """``V(s) = w * s``."""
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(w)
    return TensorDictModule(lin, ["observation"], ["state_value"])


def set_ensemble(loss, name: str, weights, biases=None) -> None:
    """Give copy ``i`` of ensemble ``name`` the weight ``weights[i]`` (and bias), live and
    target parameters alike."""
    params = getattr(loss, f"{name}_params")
    keys = [k for k in params.keys(True, True) if k[-1] == "weight"]
    (wkey,) = keys
    with torch.no_grad():
        params.get(wkey).copy_(torch.tensor(weights, dtype=torch.float32).reshape(
            params.get(wkey).shape))
        if biases is not None:
            bkey = (*wkey[:-1], "bias")
            params.get(bkey).copy_(torch.tensor(biases, dtype=torch.float32).reshape(
                params.get(bkey).shape))
        target = getattr(loss, f"target_{name}_params", None)
        if target is not None and name in loss.target_network_names:
            target.update_(params.detach())


def batch(obs, action, next_obs, reward, done, *, discrete: bool = False) -> TensorDict:
    """A batch of transitions with 1-dim observations (and 1-dim continuous actions, or
    integer ones with ``discrete``)."""
    col = lambda x: torch.tensor(x, dtype=torch.float32).unsqueeze(-1)  # noqa: E731
    act = torch.tensor(action) if discrete else col(action)
    flags = torch.tensor(done).unsqueeze(-1)
    return TensorDict({
        "observation": col(obs), "action": act,
        "next": {"observation": col(next_obs), "reward": col(reward), "done": flags,
                 "terminated": flags.clone()},
    }, [len(obs)])
