"""SACLoss(value_network=...): the first SAC, Q bootstrapped from a target state-value net."""

import pytest
import torch
from _sac_fixtures import linear_q, seeded_nets, transitions
from tensordict.nn import TensorDictModule
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

from streamrl.objectives import SACLoss


def _nets():
    net, actor, qvalue = seeded_nets()
    vnet = nn.Linear(3, 1)
    return net, actor, qvalue, vnet, TensorDictModule(vnet, ["observation"], ["state_value"])


def test_v1_matches_hand_computation():
    net, actor, qvalue, vnet, value = _nets()
    loss = SACLoss(actor, qvalue, value, alpha_init=0.5, loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    with torch.no_grad():  # the target V drifts from the live one
        loss.target_value_network_params["module", "bias"].add_(1.0)
    td = transitions()
    torch.manual_seed(1)
    out = loss(td)
    torch.manual_seed(1)
    qp = loss.qvalue_network_params
    with torch.no_grad():
        dist = Normal(*net(td["observation"]))
        a_new = dist.rsample()
        logp = dist.log_prob(a_new).sum(-1, keepdim=True)
        q_min = torch.stack([linear_q(qp, i, td["observation"], a_new)
                             for i in range(2)]).min(0).values
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * (
            vnet(td["next", "observation"]) + 1.0)
        q_loss = sum(F.mse_loss(linear_q(qp, i, td["observation"], td["action"]), y)
                     for i in range(2))
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
    td = transitions()
    out = loss(td)
    with torch.no_grad():
        next_v = vnet(td["next", "observation"])
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * next_v
        qp = loss.qvalue_network_params
        q_loss = sum(F.mse_loss(linear_q(qp, i, td["observation"], td["action"]), y)
                     for i in range(2))
    torch.testing.assert_close(out["loss_qvalue"], q_loss)


def test_v2_has_no_value_loss_and_bad_value_network():
    _, actor, qvalue, _, _ = _nets()
    assert "loss_value" not in SACLoss(actor, qvalue)(transitions()).keys()
    with pytest.raises(TypeError, match="value_network"):
        SACLoss(actor, qvalue, value_network="V")
    _, actor, qvalue, _, _ = _nets()
    bad = TensorDictModule(nn.Linear(3, 2), ["observation"], ["state_value"])
    with pytest.raises(ValueError, match="state_value"):
        SACLoss(actor, qvalue, bad)(transitions())
