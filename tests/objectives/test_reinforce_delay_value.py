"""ReinforceLoss(delay_value=True): the advantage comes from the critic's target parameters."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Normal

from streamrl.objectives import ReinforceLoss, SoftUpdate
from streamrl.objectives.value import td1_return_estimate


def _nets():
    torch.manual_seed(0)
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                         in_keys=["observation"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal),
    )
    critic_net = nn.Linear(3, 1)
    critic = TensorDictModule(critic_net, in_keys=["observation"], out_keys=["state_value"])
    return actor, critic_net, critic


def _rollout(T=5):
    g = torch.Generator().manual_seed(1)
    done = torch.zeros(1, T, 1, dtype=torch.bool)
    done[0, -1] = True
    return TensorDict({
        "observation": torch.randn(1, T, 3, generator=g),
        "action": torch.randn(1, T, 2, generator=g),
        "next": {"observation": torch.randn(1, T, 3, generator=g),
                 "reward": torch.randn(1, T, 1, generator=g), "done": done,
                 "terminated": done.clone()},
    }, [1, T])


def test_advantage_uses_target_critic():
    actor, critic_net, critic = _nets()
    loss = ReinforceLoss(actor, critic, delay_value=True)
    loss.make_value_estimator(gamma=0.9)
    assert loss.target_network_names == ("critic_network",)
    target = loss.target_critic_network_params
    with torch.no_grad():  # the target critic drifts from the live one
        target["module", "weight"].add_(1.0)
        target["module", "bias"].fill_(2.0)
    td = _rollout()
    out = loss(td)
    w, b = critic_net.weight + 1.0, torch.full_like(critic_net.bias, 2.0)
    with torch.no_grad():
        value = td["observation"] @ w.T + b
        next_value = td["next", "observation"] @ w.T + b
        ret = td1_return_estimate(0.9, next_value, td["next", "reward"], td["next", "done"],
                                  terminated=td["next", "terminated"])
    torch.testing.assert_close(td["advantage"], ret - value)
    # loss_value trains the live critic, not the target
    out["loss_value"].backward()
    assert critic_net.weight.grad is not None and critic_net.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in target.values(True, True))
    SoftUpdate(loss, eps=0.5).step()
    torch.testing.assert_close(target["module", "bias"], 0.5 * torch.full_like(critic_net.bias, 2.0)
                               + 0.5 * critic_net.bias.detach())


def test_default_has_no_target_and_live_critic_is_used():
    actor, critic_net, critic = _nets()
    loss = ReinforceLoss(actor, critic)
    assert loss.delay_value is False
    assert "critic_network" not in loss.target_network_names
    # without a target copy, target_critic_network_params is a detached view of the live ones
    live, target = loss.critic_network_params, loss.target_critic_network_params
    for key, value in live.items(True, True):
        assert target[key].data_ptr() == value.data_ptr() and not target[key].requires_grad
    loss.make_value_estimator(gamma=0.9)
    td = _rollout()
    loss(td)
    with torch.no_grad():
        value = critic_net(td["observation"])
        ret = td1_return_estimate(0.9, critic_net(td["next", "observation"]),
                                  td["next", "reward"], td["next", "done"],
                                  terminated=td["next", "terminated"])
    torch.testing.assert_close(td["advantage"], ret - value)


def test_delay_value_needs_a_critic():
    actor, _, _ = _nets()
    with pytest.raises(ValueError, match="critic"):
        ReinforceLoss(actor, delay_value=True)
