"""SACLoss(value_network=...): the first SAC, Q bootstrapped from a target state-value net."""

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
from torch.nn import functional as F

from streamrl.objectives import SACLoss


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 1)

    def forward(self, obs, action):
        return self.lin(torch.cat([obs, action], -1))


def _nets():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), NormalParamExtractor())
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal),
    )
    qvalue = TensorDictModule(Concat(), ["observation", "action"], ["state_action_value"])
    vnet = nn.Linear(3, 1)
    value = TensorDictModule(vnet, ["observation"], ["state_value"])
    return net, actor, qvalue, vnet, value


def _data(n=4):
    g = torch.Generator().manual_seed(2)
    term = torch.tensor([False, True, False, False]).view(n, 1)
    return TensorDict({
        "observation": torch.randn(n, 3, generator=g),
        "action": torch.randn(n, 2, generator=g),
        "next": {"observation": torch.randn(n, 3, generator=g),
                 "reward": torch.randn(n, 1, generator=g), "done": term.clone(),
                 "terminated": term},
    }, [n])


def _q(p, i, obs, action):
    return (torch.cat([obs, action], -1) @ p["module", "lin", "weight"][i].T
            + p["module", "lin", "bias"][i])


def test_v1_matches_hand_computation():
    net, actor, qvalue, vnet, value = _nets()
    loss = SACLoss(actor, qvalue, value, alpha_init=0.5, loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    with torch.no_grad():  # the target V drifts from the live one
        loss.target_value_network_params["module", "bias"].add_(1.0)
    td = _data()
    torch.manual_seed(1)
    out = loss(td)
    torch.manual_seed(1)
    qp = loss.qvalue_network_params
    with torch.no_grad():
        dist = Normal(*net(td["observation"]))
        a_new = dist.rsample()
        logp = dist.log_prob(a_new).sum(-1, keepdim=True)
        q_min = torch.stack([_q(qp, i, td["observation"], a_new) for i in range(2)]).min(0).values
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * (
            vnet(td["next", "observation"]) + 1.0)
        q_loss = sum(F.mse_loss(_q(qp, i, td["observation"], td["action"]), y) for i in range(2))
        v_loss = F.mse_loss(vnet(td["observation"]), q_min - 0.5 * logp)
    torch.testing.assert_close(out["loss_qvalue"], q_loss)
    torch.testing.assert_close(out["loss_value"], v_loss)
    out["loss_value"].backward()
    assert vnet.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.qvalue_network_params.values(True, True))
    assert all(p.grad is None for p in loss.actor_network_params.values(True, True))


def test_v1_without_delay_uses_live_value():
    _, actor, qvalue, vnet, value = _nets()
    loss = SACLoss(actor, qvalue, value_network=value, delay_value=False, loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    assert loss.target_network_names == ("qvalue_network",)
    td = _data()
    out = loss(td)
    with torch.no_grad():
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * vnet(td["next", "observation"])
        q_loss = sum(F.mse_loss(_q(loss.qvalue_network_params, i, td["observation"], td["action"]), y)
                     for i in range(2))
    torch.testing.assert_close(out["loss_qvalue"], q_loss)


def test_v2_has_no_value_loss_and_bad_value_network():
    _, actor, qvalue, _, _ = _nets()
    assert "loss_value" not in SACLoss(actor, qvalue)(_data()).keys()
    with pytest.raises(TypeError, match="value_network"):
        SACLoss(actor, qvalue, value_network="V")
    _, actor, qvalue, _, _ = _nets()
    bad = TensorDictModule(nn.Linear(3, 2), ["observation"], ["state_value"])
    with pytest.raises(ValueError, match="state_value"):
        SACLoss(actor, qvalue, bad)(_data())
