"""ClipPPOLoss, KLPENPPOLoss, A2CLoss and ReinforceLoss against hand-written computations."""

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
from torch.distributions import Categorical, Normal, kl_divergence
from torch.nn import functional as F

from streamrl.objectives import A2CLoss, ClipPPOLoss, KLPENPPOLoss, ReinforceLoss, total_loss
from streamrl.objectives.value import generalized_advantage_estimate, td1_return_estimate


def _nets():
    torch.manual_seed(0)
    actor_net = nn.Sequential(nn.Linear(3, 4), NormalParamExtractor())
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal, return_log_prob=True,
                                      log_prob_key="sample_log_prob"),
    )
    critic_net = nn.Linear(3, 1)
    critic = TensorDictModule(critic_net, in_keys=["observation"], out_keys=["state_value"])
    return actor_net, actor, critic_net, critic


def _rollout(actor, B=3, T=6):
    g = torch.Generator().manual_seed(5)
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    done[0, 2] = True
    term = done.clone()
    done[1, 4] = True
    td = TensorDict({
        "observation": torch.randn(B, T, 3, generator=g),
        "next": {"observation": torch.randn(B, T, 3, generator=g),
                 "reward": torch.randn(B, T, 1, generator=g), "done": done, "terminated": term},
    }, [B, T])
    with torch.no_grad():
        actor(td)
    # pretend the behaviour policy differed, so that some ratios leave the clip range
    td["sample_log_prob"] = td["sample_log_prob"].sum(-1) + torch.randn(B, T, generator=g) * 0.5
    return td


def _dist(actor_net, obs):
    return Normal(*actor_net(obs))


def test_clip_ppo_matches_hand_computation():
    actor_net, actor, critic_net, critic = _nets()
    loss = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coef=0.05, critic_coef=0.5)
    td = _rollout(actor)
    g = torch.Generator().manual_seed(9)
    td["advantage"] = torch.randn(3, 6, 1, generator=g)
    td["value_target"] = torch.randn(3, 6, 1, generator=g)
    out = loss(td)
    with torch.no_grad():
        d = _dist(actor_net, td["observation"])
        lp = d.log_prob(td["action"]).sum(-1)
        w = (lp - td["sample_log_prob"]).exp()
        adv = td["advantage"].squeeze(-1)
        obj = -torch.minimum(w * adv, w.clamp(0.8, 1.2) * adv).mean()
        ent = d.entropy().sum(-1).mean()
        critic_loss = 0.5 * F.smooth_l1_loss(critic_net(td["observation"]), td["value_target"])
    torch.testing.assert_close(out["loss_objective"], obj)
    torch.testing.assert_close(out["loss_entropy"], -0.05 * ent)
    torch.testing.assert_close(out["entropy"], ent)
    torch.testing.assert_close(out["loss_critic"], critic_loss)
    clip_frac = ((w - 1).abs() > 0.2).float().mean()
    assert 0 < clip_frac < 1
    torch.testing.assert_close(out["clip_fraction"], clip_frac)


def test_ppo_computes_gae_with_the_critic_when_advantage_missing():
    _, actor, critic_net, critic = _nets()
    loss = ClipPPOLoss(actor, critic)
    loss.make_value_estimator(gamma=0.9, lmbda=0.7)
    td = _rollout(actor)
    loss(td)
    with torch.no_grad():
        v = critic_net(td["observation"])
        nv = critic_net(td["next", "observation"])
    adv, target = generalized_advantage_estimate(
        0.9, 0.7, v, nv, td["next", "reward"], td["next", "done"], td["next", "terminated"])
    torch.testing.assert_close(td["advantage"], adv)
    torch.testing.assert_close(td["value_target"], target)
    torch.testing.assert_close(td["state_value"], v)


def test_ppo_value_clipping_and_normalised_advantage():
    actor_net, actor, critic_net, critic = _nets()
    loss = ClipPPOLoss(actor, critic, clip_value=0.1, loss_critic_type="l2",
                       normalize_advantage=True)
    td = _rollout(actor)
    g = torch.Generator().manual_seed(1)
    td["advantage"] = torch.randn(3, 6, 1, generator=g) * 3 + 2
    td["value_target"] = torch.randn(3, 6, 1, generator=g)
    td["state_value"] = torch.randn(3, 6, 1, generator=g)
    out = loss(td)
    with torch.no_grad():
        v = critic_net(td["observation"])
        old = td["state_value"]
        clipped = old + (v - old).clamp(-0.1, 0.1)
        expected = torch.maximum((v - td["value_target"]) ** 2,
                                 (clipped - td["value_target"]) ** 2).mean()
        lp = _dist(actor_net, td["observation"]).log_prob(td["action"]).sum(-1)
        w = (lp - td["sample_log_prob"]).exp()
        a = td["advantage"].squeeze(-1)
        a = (a - a.mean()) / a.std()
        obj = -torch.minimum(w * a, w.clamp(0.8, 1.2) * a).mean()
    torch.testing.assert_close(out["loss_critic"], expected)
    torch.testing.assert_close(out["loss_objective"], obj)


def test_ppo_gradient_routing():
    _, actor, _, critic = _nets()
    loss = ClipPPOLoss(actor, critic)
    out = loss(_rollout(actor))
    params = dict(loss.named_parameters())
    for key, owner in [("loss_objective", "actor"), ("loss_entropy", "actor"),
                       ("loss_critic", "critic")]:
        grads = torch.autograd.grad(out[key], list(params.values()), allow_unused=True,
                                    retain_graph=True)
        reached = {n for n, g in zip(params, grads) if g is not None}
        assert reached and all(n.startswith(owner) for n in reached), (key, reached)


def test_ppo_reads_the_actors_log_prob_key_per_dim():
    torch.manual_seed(0)
    actor_net = nn.Sequential(nn.Linear(3, 4), NormalParamExtractor())
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal, log_prob_key="action_log_prob"),
    )
    td = TensorDict({"observation": torch.randn(4, 3)}, [4])
    with torch.no_grad():
        actor(td)
        # per-dimension log-probs under the actor's own key (no "sample_log_prob")
        td["action_log_prob"] = _dist(actor_net, td["observation"]).log_prob(td["action"])
    assert td["action_log_prob"].shape == (4, 2) and "sample_log_prob" not in td.keys()
    td["advantage"] = torch.ones(4, 1)
    out = ClipPPOLoss(actor, entropy_bonus=False)(td)
    # same policy: every ratio is 1 and the objective is -mean(A)
    torch.testing.assert_close(out["loss_objective"], torch.tensor(-1.0))


def test_ppo_bad_input():
    _, actor, _, critic = _nets()
    loss = ClipPPOLoss(actor, critic)
    td = _rollout(actor)
    del td["sample_log_prob"]
    td["advantage"] = torch.zeros(3, 6, 1)
    with pytest.raises(KeyError, match=r"ClipPPOLoss.*sample_log_prob"):
        loss(td)
    td = _rollout(actor)
    td["advantage"] = torch.zeros(3, 6, 2)
    with pytest.raises(ValueError, match="advantage"):
        loss(td)
    td = _rollout(actor)
    td["next", "reward"] = td["next", "reward"].squeeze(-1)
    with pytest.raises(ValueError, match="shape"):
        loss(td)
    with pytest.raises(ValueError, match="clip_epsilon"):
        ClipPPOLoss(actor, critic, clip_epsilon=1.5)


def test_categorical_action_with_trailing_dim_is_rejected():
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Linear(3, 4), in_keys=["observation"], out_keys=["logits"]),
        ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                      distribution_class=Categorical),
    )
    td = TensorDict({"observation": torch.randn(5, 3), "action": torch.zeros(5, 1).long(),
                     "sample_log_prob": torch.zeros(5), "advantage": torch.zeros(5)}, [5])
    with pytest.raises(ValueError, match="log_prob"):
        A2CLoss(actor)(td)
    td["action"] = torch.zeros(5).long()
    A2CLoss(actor)(td)  # index actions with the batch shape are fine


def test_klpen_ppo_matches_hand_computation_and_adapts_beta():
    actor_net, actor, _, critic = _nets()
    loss = KLPENPPOLoss(actor, critic, beta=2.0, dtarg=1e-6, increment=3.0)
    td = _rollout(actor)
    # shift the stored behaviour distribution so that the KL is positive
    td["loc"] = td["loc"] + 0.3
    td["advantage"] = torch.randn(3, 6, 1)
    td["value_target"] = torch.randn(3, 6, 1)
    out = loss(td)
    with torch.no_grad():
        d = _dist(actor_net, td["observation"])
        lp = d.log_prob(td["action"]).sum(-1)
        w = (lp - td["sample_log_prob"]).exp()
        kl = kl_divergence(Normal(td["loc"], td["scale"]), d).sum(-1).mean()
        obj = -(w * td["advantage"].squeeze(-1)).mean() + 2.0 * kl
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss_objective"], obj)
    assert loss.beta.item() == pytest.approx(6.0)  # kl > 1.5 * dtarg: beta *= increment


def test_a2c_matches_hand_computation():
    actor_net, actor, critic_net, critic = _nets()
    loss = A2CLoss(actor, critic, entropy_coef=0.1, loss_critic_type="l1")
    td = _rollout(actor)
    td["advantage"] = torch.randn(3, 6, 1)
    td["value_target"] = torch.randn(3, 6, 1)
    out = loss(td)
    with torch.no_grad():
        d = _dist(actor_net, td["observation"])
        lp = d.log_prob(td["action"]).sum(-1)
        expected = -(lp * td["advantage"].squeeze(-1)).mean()
        critic_loss = (critic_net(td["observation"]) - td["value_target"]).abs().mean()
    torch.testing.assert_close(out["loss_objective"], expected)
    torch.testing.assert_close(out["loss_critic"], critic_loss)
    torch.testing.assert_close(out["loss_entropy"], -0.1 * d.entropy().sum(-1).mean())
    total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
    torch.testing.assert_close(total_loss(out), total)


def test_reinforce_without_critic_uses_discounted_returns():
    actor_net, actor, _, _ = _nets()
    loss = ReinforceLoss(actor)
    loss.make_value_estimator(gamma=0.5)
    td = _rollout(actor)
    out = loss(td)
    zeros = torch.zeros_like(td["next", "reward"])
    ret = td1_return_estimate(0.5, zeros, td["next", "reward"], td["next", "done"],
                              td["next", "terminated"])
    torch.testing.assert_close(td["advantage"], ret)
    with torch.no_grad():
        lp = _dist(actor_net, td["observation"]).log_prob(td["action"]).sum(-1)
    torch.testing.assert_close(out["loss_actor"], -(lp * ret.squeeze(-1)).mean())
    assert set(out.keys()) == {"loss_actor"}


def test_reinforce_with_critic_baseline():
    _, actor, critic_net, critic = _nets()
    loss = ReinforceLoss(actor, critic)
    loss.make_value_estimator(gamma=0.5)
    td = _rollout(actor)
    out = loss(td)
    with torch.no_grad():
        v = critic_net(td["observation"])
        nv = critic_net(td["next", "observation"])
    ret = td1_return_estimate(0.5, nv, td["next", "reward"], td["next", "done"],
                              td["next", "terminated"])
    torch.testing.assert_close(td["advantage"], ret - v)
    assert "loss_value" in out.keys()
