"""REDQLoss against a hand computation; the random target subset; bad arguments."""

import pytest
import torch
from _sac_fixtures import linear_q, seeded_nets, transitions
from torch.distributions import Normal
from torch.nn import functional as F

from streamrl.objectives import REDQLoss


def test_matches_hand_computation():
    net, actor, qvalue = seeded_nets()
    loss = REDQLoss(actor, qvalue, num_qvalue_nets=3, sub_sample_len=3, alpha_init=0.5,
                    loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    with torch.no_grad():  # targets differ from the live copies
        loss.target_qvalue_network_params["module", "lin", "bias"].add_(0.3)
    td = transitions()
    torch.manual_seed(5)
    out = loss(td)
    torch.manual_seed(5)
    live, target_p = loss.qvalue_network_params, loss.target_qvalue_network_params
    with torch.no_grad():
        dist = Normal(*net(td["observation"]))
        a_new = dist.rsample()
        logp = dist.log_prob(a_new).sum(-1)
        q_mean = torch.stack([linear_q(live, i, td["observation"], a_new)
                              for i in range(3)]).mean(0)
        actor_loss = (0.5 * logp - q_mean.squeeze(-1)).mean()
        next_dist = Normal(*net(td["next", "observation"]))
        a_next = next_dist.rsample()
        next_logp = next_dist.log_prob(a_next).sum(-1, keepdim=True)
        next_q = torch.stack([linear_q(target_p, i, td["next", "observation"], a_next)
                              for i in range(3)]).min(0).values
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]) * (next_q - 0.5 * next_logp)
        q_loss = sum(F.mse_loss(linear_q(live, i, td["observation"], td["action"]), y)
                     for i in range(3))
        alpha_loss = -(torch.tensor(0.5).log() * (logp - 2.0)).mean()
    torch.testing.assert_close(out["loss_actor"], actor_loss)
    torch.testing.assert_close(out["loss_qvalue"], q_loss)
    torch.testing.assert_close(out["loss_alpha"], alpha_loss)
    torch.testing.assert_close(out["target_value"], y.mean())
    torch.testing.assert_close(out["alpha"], torch.tensor(0.5))
    assert td["td_error"].shape == (4,)


def test_target_uses_a_random_subset():
    _, actor, qvalue = seeded_nets()
    loss = REDQLoss(actor, qvalue, num_qvalue_nets=4, sub_sample_len=1, delay_qvalue=False)
    loss.make_value_estimator(gamma=0.9)
    td = transitions()
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        seen.add(round(float(loss(td.clone())["target_value"]), 5))
    assert len(seen) > 1  # different subsets give different targets
    assert "qvalue_network" not in loss.target_network_names
    # without a target copy, target_qvalue_network_params is a detached view of the live ones
    live, target = loss.qvalue_network_params, loss.target_qvalue_network_params
    for key, value in live.items(True, True):
        assert target[key].data_ptr() == value.data_ptr() and not target[key].requires_grad


def test_defaults_and_alpha_clamp():
    _, actor, qvalue = seeded_nets()
    loss = REDQLoss(actor, qvalue, alpha_init=100.0)
    assert loss.num_qvalue_nets == 10 and loss.sub_sample_len == 2
    assert loss.qvalue_network_params["module", "lin", "weight"].shape == (10, 1, 5)
    out = loss(transitions())
    torch.testing.assert_close(out["alpha"], torch.tensor(10.0))  # max_alpha=10 by default


def test_bad_arguments():
    _, actor, qvalue = seeded_nets()
    with pytest.raises(ValueError, match="sub_sample_len"):
        REDQLoss(actor, qvalue, num_qvalue_nets=2, sub_sample_len=3)
    with pytest.raises(ValueError, match="sub_sample_len"):
        REDQLoss(actor, qvalue, sub_sample_len=0)
    with pytest.raises(ValueError, match="num_qvalue_nets"):
        REDQLoss(actor, qvalue, num_qvalue_nets=0)
    with pytest.raises(ValueError, match="loss_function"):
        REDQLoss(actor, qvalue, loss_function="huber")
    with pytest.raises(TypeError, match="target_entropy"):
        REDQLoss(actor, qvalue, target_entropy="max")
