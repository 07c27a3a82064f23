"""CrossQLoss against a hand computation (batch norm over current + next pairs), no target
networks, bad arguments."""

import pytest
import torch
from _sac_fixtures import seeded_nets, transitions
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

from streamrl.objectives import CrossQLoss


class BNQ(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 4)
        self.bn = nn.BatchNorm1d(4, momentum=0.5)
        self.out = nn.Linear(4, 1)

    def forward(self, obs, action):
        return self.out(self.bn(self.lin(torch.cat([obs, action], -1))).relu())


def _q(p, i, x, train, running=None):
    h = x @ p["module", "lin", "weight"][i].T + p["module", "lin", "bias"][i]
    mean, var = (None, None) if train else running
    h = F.batch_norm(h, mean, var, p["module", "bn", "weight"][i], p["module", "bn", "bias"][i],
                     training=train)
    return h.relu() @ p["module", "out", "weight"][i].T + p["module", "out", "bias"][i]


def test_matches_hand_computation():
    net, actor, qvalue = seeded_nets(BNQ)
    loss = CrossQLoss(actor, qvalue, num_qvalue_nets=2, alpha_init=0.5, loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    params = loss.qvalue_network_params
    before = params.clone()
    td = transitions()
    torch.manual_seed(3)
    out = loss(td)
    torch.manual_seed(3)
    with torch.no_grad():
        next_dist = Normal(*net(td["next", "observation"]))
        a_next = next_dist.rsample()
        next_logp = next_dist.log_prob(a_next).sum(-1, keepdim=True)
        x = torch.cat([torch.cat([td["observation"], td["action"]], -1),
                       torch.cat([td["next", "observation"], a_next], -1)])
        q = torch.stack([_q(before, i, x, train=True) for i in range(2)])
        pred, q_next = q[:, :4], q[:, 4:]
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * (
            q_next.min(0).values - 0.5 * next_logp)
        q_loss = sum(F.mse_loss(pred[i], y) for i in range(2))
        dist = Normal(*net(td["observation"]))
        a_new = dist.rsample()
        logp = dist.log_prob(a_new).sum(-1)
        x_new = torch.cat([td["observation"], a_new], -1)
        running = [(params["module", "bn", "running_mean"][i],
                    params["module", "bn", "running_var"][i]) for i in range(2)]
        q_new = torch.stack([_q(before, i, x_new, train=False, running=running[i])
                             for i in range(2)]).min(0).values
        actor_loss = (0.5 * logp - q_new.squeeze(-1)).mean()
    torch.testing.assert_close(out["loss_qvalue"], q_loss)
    torch.testing.assert_close(out["loss_actor"], actor_loss)
    # the critic pass updated the running statistics of each copy from the joint batch
    for i in range(2):
        h = x @ before["module", "lin", "weight"][i].T + before["module", "lin", "bias"][i]
        expected = 0.5 * before["module", "bn", "running_mean"][i] + 0.5 * h.mean(0)
        torch.testing.assert_close(params["module", "bn", "running_mean"][i], expected)


def test_no_target_networks_and_gradient_to_next_half_blocked():
    _, actor, qvalue = seeded_nets(BNQ)
    loss = CrossQLoss(actor, qvalue)
    assert loss.target_network_names == ()
    out = loss(transitions())
    out["loss_qvalue"].backward()
    assert all(p.grad is not None for p in loss.qvalue_network_params.values(True, True)
               if p.requires_grad)
    assert all(p.grad is None for p in loss.actor_network_params.values(True, True))


def test_bad_arguments():
    _, actor, qvalue = seeded_nets(BNQ)
    with pytest.raises(ValueError, match="num_qvalue_nets"):
        CrossQLoss(actor, qvalue, num_qvalue_nets=0)
    with pytest.raises(ValueError, match="loss_function"):
        CrossQLoss(actor, qvalue, loss_function="huber")
    with pytest.raises(TypeError, match="target_entropy"):
        CrossQLoss(actor, qvalue, target_entropy="max")
    with pytest.raises(NotImplementedError, match="TD0"):
        CrossQLoss(actor, qvalue).make_value_estimator("TDLambda")
