"""SACLoss, DiscreteSACLoss and TD3Loss against hand-written computations; gradient routing."""

import math

import pytest
import torch
from _sac_fixtures import categorical_actor, gaussian_actor, linear_q, qvalue, transitions
from tensordict.nn import TensorDictModule
from torch import nn
from torch.distributions import Normal

from streamrl.objectives import DiscreteSACLoss, SACLoss, TD3Loss


def _data():
    """Five steps: terminated at 2, truncated at 3; actions in [-1, 1]."""
    return transitions(5, seed=7, terminated=(False, False, True, False, False), truncated=[3],
                       clamp_action=True)


def _grad_targets(loss, out_key, out):
    names = [n for n, _ in loss.named_parameters()]
    grads = torch.autograd.grad(out[out_key], list(loss.parameters()), allow_unused=True,
                                retain_graph=True)
    return {n for n, g in zip(names, grads) if g is not None and g.abs().sum() > 0}


def test_sac_matches_hand_computation():
    torch.manual_seed(0)
    actor_net, actor = gaussian_actor()
    loss = SACLoss(actor, qvalue(), alpha_init=0.5, loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    with torch.no_grad():
        loss.target_qvalue_network_params["module", "lin", "bias"].add_(
            torch.tensor([[1.0], [-2.0]]))
    td = _data()
    torch.manual_seed(11)
    out = loss(td)

    qp = loss.qvalue_network_params.detach()
    tp = loss.target_qvalue_network_params
    with torch.no_grad():
        torch.manual_seed(11)
        obs, obs2 = td["observation"], td["next", "observation"]
        d = Normal(*actor_net(obs))
        a = d.rsample()
        lp = d.log_prob(a).sum(-1)
        d2 = Normal(*actor_net(obs2))
        a2 = d2.rsample()
        lp2 = d2.log_prob(a2).sum(-1, keepdim=True)
        q_new = torch.minimum(linear_q(qp, 0, obs, a), linear_q(qp, 1, obs, a)).squeeze(-1)
        next_v = torch.minimum(linear_q(tp, 0, obs2, a2), linear_q(tp, 1, obs2, a2)) - 0.5 * lp2
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]).float() * next_v
        preds = [linear_q(qp, i, obs, td["action"]) for i in range(2)]
    torch.testing.assert_close(out["loss_actor"], (0.5 * lp - q_new).mean())
    torch.testing.assert_close(out["loss_qvalue"], sum(((p - y) ** 2).mean() for p in preds))
    torch.testing.assert_close(out["loss_alpha"], -(math.log(0.5) * (lp - 2.0)).mean())
    torch.testing.assert_close(out["alpha"], torch.tensor(0.5))
    err = torch.maximum((preds[0] - y).abs(), (preds[1] - y).abs()).squeeze(-1)
    torch.testing.assert_close(td["td_error"], err)


def test_sac_ensemble_copies_and_gradient_routing():
    torch.manual_seed(0)
    _, actor = gaussian_actor()
    qnet = qvalue()
    loss = SACLoss(actor, qnet, num_qvalue_nets=3)
    w = loss.qvalue_network_params["module", "lin", "weight"]
    assert w.shape == (3, 1, 5)
    torch.testing.assert_close(w[0], qnet.module.lin.weight)  # copy 0 keeps the given weights
    assert not torch.equal(w[1], w[2])  # the others are re-initialised
    out = loss(_data())
    actor_grads = _grad_targets(loss, "loss_actor", out)
    assert actor_grads and all(n.startswith("actor_network_params") for n in actor_grads)
    q_grads = _grad_targets(loss, "loss_qvalue", out)
    assert q_grads == {"qvalue_network_params.module.lin.weight",
                       "qvalue_network_params.module.lin.bias"}
    assert _grad_targets(loss, "loss_alpha", out) == {"entropy_coef.log_alpha"}
    for t in loss.target_qvalue_network_params.values(True, True):
        assert not t.requires_grad
    assert not any("target" in n for n, _ in loss.named_parameters())


def test_sac_fixed_alpha_and_target_entropy():
    torch.manual_seed(0)
    _, actor = gaussian_actor()
    loss = SACLoss(actor, qvalue(), fixed_alpha=True, alpha_init=0.2, target_entropy=-1.0)
    out = loss(_data())
    assert out["loss_alpha"].item() == 0.0 and not out["loss_alpha"].requires_grad
    assert "entropy_coef.log_alpha" not in dict(loss.named_parameters())
    with pytest.raises(ValueError, match="alpha_init"):
        SACLoss(actor, qvalue(), alpha_init=0.0)


def test_sac_missing_key_and_shape_errors():
    torch.manual_seed(0)
    _, actor = gaussian_actor()
    loss = SACLoss(actor, qvalue())
    td = _data()
    del td["action"]
    with pytest.raises(KeyError, match=r"SACLoss.*action"):
        loss(td)
    td = _data()
    td["next", "done"] = td["next", "done"].squeeze(-1)
    with pytest.raises(ValueError, match="shape"):
        loss(td)


# -------------------------------------------------------------------------------- TD3


def test_td3_matches_hand_computation():
    torch.manual_seed(0)
    actor_net = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    actor = TensorDictModule(actor_net, in_keys=["observation"], out_keys=["action"])
    loss = TD3Loss(actor, qvalue(), action_low=-0.5, action_high=0.5, loss_function="l2",
                   policy_noise=0.3,
                   noise_clip=0.2)
    loss.make_value_estimator(gamma=0.8)
    with torch.no_grad():
        loss.target_actor_network_params["module", "0", "bias"].add_(1.0)
    td = _data()
    torch.manual_seed(3)
    out = loss(td)
    qp = loss.qvalue_network_params.detach()
    tp = loss.target_qvalue_network_params
    with torch.no_grad():
        torch.manual_seed(3)
        obs, obs2 = td["observation"], td["next", "observation"]
        a_pi = actor_net(obs)
        lin = actor_net[0]
        a2 = torch.tanh(obs2 @ lin.weight.T + lin.bias + 1.0)
        noise = (torch.randn_like(a2) * 0.3).clamp(-0.2, 0.2)
        a2 = (a2 + noise).clamp(-0.5, 0.5)
        nq = torch.minimum(linear_q(tp, 0, obs2, a2), linear_q(tp, 1, obs2, a2))
        y = td["next", "reward"] + 0.8 * (~td["next", "terminated"]).float() * nq
        preds = [linear_q(qp, i, obs, td["action"]) for i in range(2)]
    torch.testing.assert_close(out["loss_actor"], -linear_q(qp, 0, obs, a_pi).mean())
    torch.testing.assert_close(out["loss_qvalue"], sum(((p - y) ** 2).mean() for p in preds))
    torch.testing.assert_close(out["target_value"], y.squeeze(-1))


def test_td3_gradient_routing_and_bad_args():
    torch.manual_seed(0)
    actor = TensorDictModule(nn.Linear(3, 2), in_keys=["observation"], out_keys=["action"])
    loss = TD3Loss(actor, qvalue(), action_low=-1.0, action_high=1.0)
    out = loss(_data())
    assert _grad_targets(loss, "loss_actor", out) == {
        "actor_network_params.module.weight", "actor_network_params.module.bias"}
    assert all(n.startswith("qvalue") for n in _grad_targets(loss, "loss_qvalue", out))
    with pytest.raises(ValueError, match="action_low"):
        TD3Loss(actor, qvalue(), action_low=1.0, action_high=-1.0)
    with pytest.raises(ValueError, match="policy_noise"):
        TD3Loss(actor, qvalue(), action_low=-1.0, action_high=1.0, policy_noise=-0.1)


def test_td3_actor_and_value_loss_alone_match_forward():
    torch.manual_seed(0)
    actor = TensorDictModule(nn.Linear(3, 2), in_keys=["observation"], out_keys=["action"])
    loss = TD3Loss(actor, qvalue(), action_low=-1.0, action_high=1.0, loss_function="l2")
    td = _data()
    torch.manual_seed(1)
    out = loss(td.clone())
    torch.manual_seed(1)  # the target smoothing noise is the only draw: the same one
    value, meta = loss.value_loss(td)
    torch.testing.assert_close(value, out["loss_qvalue"])
    torch.testing.assert_close(meta["target_value"], out["target_value"])
    torch.testing.assert_close(td["td_error"], out["td_error"])
    actor_loss, actor_meta = loss.actor_loss(td)
    torch.testing.assert_close(actor_loss, out["loss_actor"])
    torch.testing.assert_close(actor_meta["state_action_value_actor"],
                               out["state_action_value_actor"])
    # the critic's loss alone reaches no actor parameter
    grads = torch.autograd.grad(value, list(loss.actor_network_params.values(True, True)),
                                allow_unused=True)
    assert all(g is None for g in grads)


# ----------------------------------------------------------------------- discrete SAC


def test_discrete_sac_matches_hand_computation():
    torch.manual_seed(0)
    actor_net = nn.Linear(3, 4)
    actor = categorical_actor(actor_net)
    qnet = TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["action_value"])
    loss = DiscreteSACLoss(actor, qnet, num_actions=4, alpha_init=0.3,
                           loss_function="l2")
    loss.make_value_estimator(gamma=0.9)
    td = _data()
    td["action"] = torch.tensor([0, 1, 2, 3, 1])
    out = loss(td)
    qp = loss.qvalue_network_params.detach()
    tp = loss.target_qvalue_network_params

    def q(p, i, x):
        return x @ p["module", "weight"][i].T + p["module", "bias"][i]

    with torch.no_grad():
        obs, obs2 = td["observation"], td["next", "observation"]
        logp = torch.log_softmax(actor_net(obs), -1)
        p = logp.exp()
        qmin = torch.minimum(q(qp, 0, obs), q(qp, 1, obs))
        logp2 = torch.log_softmax(actor_net(obs2), -1)
        v2 = (logp2.exp() * (torch.minimum(q(tp, 0, obs2), q(tp, 1, obs2)) - 0.3 * logp2)).sum(
            -1, keepdim=True)
        y = td["next", "reward"] + 0.9 * (~td["next", "terminated"]).float() * v2
        idx = td["action"].unsqueeze(-1)
        preds = [q(qp, i, obs).gather(-1, idx) for i in range(2)]
        entropy = -(p * logp).sum(-1)
    torch.testing.assert_close(out["loss_actor"], (p * (0.3 * logp - qmin)).sum(-1).mean())
    torch.testing.assert_close(out["loss_qvalue"], sum(((pr - y) ** 2).mean() for pr in preds))
    target_entropy = 0.98 * math.log(4)
    torch.testing.assert_close(out["loss_alpha"],
                               -(math.log(0.3) * (target_entropy - entropy)).mean())
    torch.testing.assert_close(out["entropy"], entropy.mean())


def test_discrete_sac_checks():
    actor = categorical_actor(nn.Linear(3, 4))
    qnet = TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["action_value"])
    with pytest.raises(ValueError, match="num_actions"):
        DiscreteSACLoss(actor, qnet, num_actions=1)
    loss = DiscreteSACLoss(actor, qnet, num_actions=5)
    td = _data()
    td["action"] = torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match="logits"):
        loss(td)


def test_discrete_sac_gradient_routing():
    torch.manual_seed(0)
    actor = categorical_actor(nn.Linear(3, 4))
    qnet = TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["action_value"])
    loss = DiscreteSACLoss(actor, qnet, num_actions=4)
    td = _data()
    td["action"] = nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 1]), 4)
    out = loss(td)
    assert all(n.startswith("actor") for n in _grad_targets(loss, "loss_actor", out))
    assert all(n.startswith("qvalue") for n in _grad_targets(loss, "loss_qvalue", out))
    assert _grad_targets(loss, "loss_alpha", out) == {"entropy_coef.log_alpha"}


def test_missing_network_input_names_the_loss_and_key():
    torch.manual_seed(0)
    _, actor = gaussian_actor()
    td = _data()
    del td["observation"]
    with pytest.raises(KeyError, match=r"SACLoss.*observation"):
        SACLoss(actor, qvalue())(td)
    td = _data()
    del td["next", "observation"]
    det = TensorDictModule(nn.Linear(3, 2), in_keys=["observation"], out_keys=["action"])
    with pytest.raises(KeyError, match=r"TD3Loss.*observation"):
        TD3Loss(det, qvalue(), action_low=-1.0, action_high=1.0)(td)
