"""Networks and batches shared by the SAC-family loss tests (SAC, discrete SAC, REDQ, CrossQ,
TQC, TD3): imported as a plain module (``from _sac_fixtures import ...``), no conftest.

Observations have 3 dims and continuous actions 2, so a critic on ``(obs, action)`` reads 5.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Categorical, Normal


class ConcatQ(nn.Module):
    """``lin(cat([obs, action], -1))``: a linear critic with ``n_out`` outputs (atoms)."""

    def __init__(self, n_out: int = 1) -> None:
        super().__init__()
        self.lin = nn.Linear(5, n_out)

    def forward(self, obs, action):
        return self.lin(torch.cat([obs, action], -1))


def linear_q(params, i, obs, action):
    """Copy ``i`` of an ensemble of :class:`ConcatQ` critics, by hand."""
    w, b = params["module", "lin", "weight"][i], params["module", "lin", "bias"][i]
    return torch.cat([obs, action], -1) @ w.T + b


def gaussian_actor():
    """``(net, actor)``: ``net`` maps the observation to ``(loc, scale)``, ``actor`` samples a
    ``Normal`` action from it."""
    net = nn.Sequential(nn.Linear(3, 4), NormalParamExtractor())
    return net, ProbabilisticTensorDictSequential(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal),
    )


def categorical_actor(net):
    """A ``Categorical`` policy whose logits are ``net(observation)``."""
    return ProbabilisticTensorDictSequential(
        TensorDictModule(net, in_keys=["observation"], out_keys=["logits"]),
        ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                      distribution_class=Categorical),
    )


def qvalue(module: nn.Module | None = None) -> TensorDictModule:
    """``module`` (default a :class:`ConcatQ`) reading ``(observation, action)`` and writing
    ``state_action_value``."""
    return TensorDictModule(module if module is not None else ConcatQ(),
                            in_keys=["observation", "action"], out_keys=["state_action_value"])


def seeded_nets(q_class: type[nn.Module] = ConcatQ):
    """``(net, actor, qvalue)`` built under ``torch.manual_seed(0)``, the critic a
    ``q_class()`` (built after the actor)."""
    torch.manual_seed(0)
    net, actor = gaussian_actor()
    return net, actor, qvalue(q_class())


def transitions(n=4, *, seed=2, terminated=(False, True, False, False), truncated=(),
                reward=None, clamp_action=False):
    """A batch of ``n`` transitions drawn from a generator seeded with ``seed`` (observation,
    action, next observation, then reward unless given). ``terminated`` flags each step;
    ``done`` adds the step indices in ``truncated``."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 3, generator=g)
    action = torch.randn(n, 2, generator=g)
    next_obs = torch.randn(n, 3, generator=g)
    if reward is None:
        reward = torch.randn(n, 1, generator=g)
    term = torch.tensor(terminated).view(n, 1)
    done = term.clone()
    done[list(truncated)] = True
    return TensorDict({
        "observation": obs,
        "action": action.clamp(-1, 1) if clamp_action else action,
        "next": {"observation": next_obs, "reward": reward, "done": done, "terminated": term},
    }, [n])
