"""The on-policy losses (PPO family, A2C) and V-trace with a composite (multi-head) action
distribution: joint log-probs and entropies over heads, list-valued ``sample_log_prob``
keys, and stored actions that require grad refused."""

import functools

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import (
    CompositeDistribution,
    NormalParamExtractor,
    TensorDictModule,
    TensorDictSequential,
    set_composite_lp_aggregate,
)
from torch import nn

from streamrl.modules import ProbabilisticActor, TanhNormal
from streamrl.objectives import A2CLoss, ClipPPOLoss, KLPENPPOLoss, PPOLoss
from streamrl.objectives.value import GAE, VTrace

LP_KEYS = [("action", "arm_log_prob"), ("action", "grip_log_prob")]


def _actor():
    body = TensorDictModule(nn.Sequential(nn.Linear(3, 6), NormalParamExtractor()),
                            ["observation"], ["loc", "scale"])
    split = TensorDictModule(
        lambda loc, scale: (loc[..., :2], scale[..., :2], loc[..., 2:], scale[..., 2:]),
        in_keys=["loc", "scale"],
        out_keys=[("params", "arm", "loc"), ("params", "arm", "scale"),
                  ("params", "grip", "loc"), ("params", "grip", "scale")])
    return ProbabilisticActor(
        TensorDictSequential(body, split), in_keys=["params"], out_keys=["action"],
        distribution_class=functools.partial(
            CompositeDistribution, distribution_map={"arm": TanhNormal, "grip": TanhNormal},
            name_map={"arm": ("action", "arm"), "grip": ("action", "grip")}))


def _critic():
    return TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])


def _data(actor, n=6):
    g = torch.Generator().manual_seed(0)
    td = TensorDict({
        "observation": torch.randn(n, 3, generator=g),
        "next": {"observation": torch.randn(n, 3, generator=g),
                 "reward": torch.randn(n, 1, generator=g),
                 "done": torch.zeros(n, 1, dtype=torch.bool),
                 "terminated": torch.zeros(n, 1, dtype=torch.bool)},
    }, [n])
    with torch.no_grad(), set_composite_lp_aggregate(False):
        dist = actor.get_dist(td.copy())
        action = dist.sample()
        td.update(action)
        td.update(dist.log_prob(action))
    return td.exclude("params", "loc", "scale")


@pytest.mark.parametrize("cls", [PPOLoss, ClipPPOLoss, KLPENPPOLoss, A2CLoss])
def test_on_policy_losses_with_a_composite_action(cls):
    torch.manual_seed(0)
    actor, critic = _actor(), _critic()
    with set_composite_lp_aggregate(False):
        td = _data(actor)
        loss = cls(actor, critic)
        loss.set_keys(action=[("action", "arm"), ("action", "grip")], sample_log_prob=LP_KEYS)
        loss.make_value_estimator(gamma=0.9, lmbda=0.9)
        out = loss(td)
    for key in ("loss_objective", "loss_critic", "loss_entropy"):
        assert out[key].shape == () and torch.isfinite(out[key]), key
    if cls is not A2CLoss:
        # the data were collected by this very policy: every ratio is one
        torch.testing.assert_close(out["mean_ratio"], torch.tensor(1.0))
    (out["loss_objective"] + out["loss_entropy"]).backward()
    assert all(p.grad is not None for p in actor.parameters())


def test_joint_log_prob_is_the_sum_of_the_heads():
    actor = _actor()
    with set_composite_lp_aggregate(False):
        td = _data(actor)
        loss = PPOLoss(actor, _critic())
        loss.set_keys(action="action", sample_log_prob=LP_KEYS)
        _, log_prob = loss.log_prob(td)
        old = loss.old_log_prob(td)
    torch.testing.assert_close(log_prob, old)
    torch.testing.assert_close(old, td[LP_KEYS[0]] + td[LP_KEYS[1]])
    with pytest.raises(KeyError, match="arm_log_prob"):
        loss.old_log_prob(td.exclude(LP_KEYS[0]))


def test_stored_action_requiring_grad_is_refused():
    actor = _actor()
    with set_composite_lp_aggregate(False):
        td = _data(actor)
        loss = A2CLoss(actor, _critic())
        td["action", "arm"].requires_grad_(True)
        with pytest.raises(RuntimeError, match="requires grad"):
            loss.log_prob(td)
    plain = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                             ["observation"], ["loc", "scale"])
    plain = ProbabilisticActor(plain, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    td = TensorDict({"observation": torch.randn(4, 3),
                     "action": torch.zeros(4, 2, requires_grad=True)}, [4])
    with pytest.raises(RuntimeError, match="requires grad"):
        PPOLoss(plain, _critic()).log_prob(td)


def test_estimators_take_the_sample_log_prob_key():
    gae = GAE(gamma=0.9, lmbda=0.9).set_keys(sample_log_prob=LP_KEYS)
    assert gae.tensor_keys.sample_log_prob == LP_KEYS
    actor, critic = _actor(), _critic()
    with set_composite_lp_aggregate(False):
        td = _data(actor)
        vtrace = VTrace(gamma=0.9, value_network=critic, actor_network=actor)
        vtrace.set_keys(action="action", sample_log_prob=LP_KEYS)
        vtrace(td)
    # behaviour = target policy: rho = c = 1, V-trace reduces to the TD(lambda=1) target
    assert td["advantage"].shape == (6, 1) and torch.isfinite(td["value_target"]).all()


def test_reset_restores_the_adaptive_beta():
    plain = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                             ["observation"], ["loc", "scale"])
    plain = ProbabilisticActor(plain, in_keys=["loc", "scale"], distribution_class=TanhNormal)
    loss = KLPENPPOLoss(plain, _critic(), beta=0.5, dtarg=1e-6)
    td = TensorDict({"observation": torch.randn(4, 3), "action": torch.rand(4, 2) - 0.5,
                     "action_log_prob": torch.zeros(4), "advantage": torch.ones(4, 1),
                     "value_target": torch.zeros(4, 1)}, [4])
    loss(td)  # a KL far above dtarg: beta grows
    assert loss.beta.item() == 1.0
    buffer = loss.beta
    loss.reset()
    assert loss.beta is buffer and loss.beta.item() == 0.5
    A2CLoss(plain, _critic()).reset()  # nothing adaptive: a no-op


def test_keys_follow_where_the_actor_writes():
    plain = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                             ["observation"], ["loc", "scale"])
    plain = ProbabilisticActor(plain, in_keys=["loc", "scale"], out_keys=["act"],
                               distribution_class=TanhNormal, log_prob_key="act_lp")
    loss = A2CLoss(plain, _critic())
    assert (loss.tensor_keys.action, loss.tensor_keys.sample_log_prob) == ("act", "act_lp")
    td = TensorDict({"observation": torch.randn(4, 3), "act": torch.rand(4, 2) - 0.5,
                     "advantage": torch.ones(4, 1), "value_target": torch.zeros(4, 1)}, [4])
    assert "loss_objective" in loss(td).keys()
