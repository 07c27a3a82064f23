"""PPOLoss (the un-clipped base) and the arguments the three PPO losses share through it:
samples_mc_entropy, separate_losses, clip_value."""

import math

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

from streamrl.objectives import ClipPPOLoss, KLPENPPOLoss, PPOLoss


class _NoEntropyNormal(Normal):
    """A Normal that hides its closed-form entropy (forces the Monte-Carlo estimate)."""

    def entropy(self):
        raise NotImplementedError


def _actor(body: nn.Module, dist=Normal):
    return ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(body, NormalParamExtractor()), in_keys=["observation"],
                         out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=dist),
    )


def _data(n=4):
    g = torch.Generator().manual_seed(3)
    return TensorDict({
        "observation": torch.randn(n, 3, generator=g),
        "action": torch.randn(n, 2, generator=g),
        "action_log_prob": torch.randn(n, generator=g) - 2.0,
        "advantage": torch.tensor([[1.0], [-2.0], [0.5], [3.0]])[:n],
        "value_target": torch.randn(n, 1, generator=g),
        "state_value": torch.zeros(n, 1),
    }, [n])


def _zero_actor():
    body = nn.Linear(3, 4)
    nn.init.zeros_(body.weight)
    nn.init.zeros_(body.bias)  # loc = 0, scale = softplus(0) biased to 1
    return _actor(body)


def test_ppo_objective_is_the_importance_weighted_advantage():
    actor = _zero_actor()
    loss = PPOLoss(actor, entropy_bonus=False)
    td = _data()
    with torch.no_grad():
        loc, scale = actor[0](td.clone()).get("loc"), actor[0](td.clone()).get("scale")
    log_prob = Normal(loc, scale).log_prob(td["action"]).sum(-1)
    weight = (log_prob - td["action_log_prob"]).exp()
    expected = -(weight * td["advantage"].squeeze(-1)).mean()
    out = loss(td)
    torch.testing.assert_close(out["loss_objective"], expected)
    assert "loss_entropy" not in out.keys() and "loss_critic" not in out.keys()
    torch.testing.assert_close(out["mean_ratio"], weight.mean())


def test_ppo_equals_clip_ppo_when_no_ratio_is_clipped():
    actor = _zero_actor()
    td = _data()
    with torch.no_grad():
        td["action_log_prob"] = actor.get_dist(td.clone()).log_prob(td["action"]).sum(-1)
    base = PPOLoss(actor)(td.clone())
    clipped = ClipPPOLoss(actor)(td.clone())
    torch.testing.assert_close(base["loss_objective"], clipped["loss_objective"])
    assert clipped["clip_fraction"] == 0
    # a ratio of 2 with a positive advantage: PPOLoss keeps 2 * A, ClipPPOLoss 1.2 * A
    td["action_log_prob"] = td["action_log_prob"] - math.log(2.0)
    adv = td["advantage"].squeeze(-1)
    torch.testing.assert_close(PPOLoss(actor)(td.clone())["loss_objective"], -(2 * adv).mean())
    expected = -torch.minimum(2 * adv, 1.2 * adv).mean()
    torch.testing.assert_close(ClipPPOLoss(actor)(td.clone())["loss_objective"], expected)


def test_samples_mc_entropy_estimates_a_missing_closed_form():
    torch.manual_seed(0)
    actor = _actor(nn.Linear(3, 4), _NoEntropyNormal)
    td = _data()
    with torch.no_grad():
        scale = actor[0](td.clone()).get("scale")
    exact = Normal(torch.zeros_like(scale), scale).entropy().sum(-1).mean()
    one = PPOLoss(actor, samples_mc_entropy=1)
    many = PPOLoss(actor, samples_mc_entropy=4000)
    assert one.samples_mc_entropy == 1
    torch.testing.assert_close(many(td.clone())["entropy"], exact, atol=0.1, rtol=0)
    assert torch.isfinite(one(td.clone())["entropy"])


@pytest.mark.parametrize("cls", [PPOLoss, ClipPPOLoss, KLPENPPOLoss])
def test_separate_losses_keeps_the_critic_loss_off_shared_parameters(cls):
    torch.manual_seed(0)
    shared = nn.Linear(3, 3)
    actor = _actor(nn.Sequential(shared, nn.Linear(3, 4)))
    head = nn.Linear(3, 1)
    critic = TensorDictModule(nn.Sequential(shared, head), ["observation"], ["state_value"])
    for separate, shared_grad in ((False, True), (True, False)):
        loss = cls(actor, critic, separate_losses=separate)
        shared.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        loss(_data())["loss_critic"].backward()
        assert (shared.weight.grad is not None) == shared_grad
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_clip_value_true_means_clip_epsilon():
    actor = _zero_actor()
    assert ClipPPOLoss(actor, clip_epsilon=0.3, clip_value=True).clip_value == 0.3
    assert ClipPPOLoss(actor, clip_value=False).clip_value is None
    critic = TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])
    nn.init.constant_(critic.module.bias, 5.0)
    nn.init.zeros_(critic.module.weight)
    td = _data()  # old value 0, new value 5: clipped to 0.1
    td["value_target"] = torch.full((4, 1), 10.0)
    out = PPOLoss(actor, critic, clip_value=0.1, loss_critic_type="l2")(td)
    # max(unclipped, clipped) distance: (10 - 0.1)^2 > (10 - 5)^2
    torch.testing.assert_close(out["loss_critic"], torch.tensor(9.9**2))


@pytest.mark.parametrize("kwargs, match", [
    ({"samples_mc_entropy": 0}, "samples_mc_entropy"),
    ({"samples_mc_entropy": 1.5}, "samples_mc_entropy"),
    ({"clip_value": -1.0}, "clip_value"),
    ({"clip_value": True}, "clip_value"),
    ({"loss_critic_type": "huber"}, "huber"),
    ({"entropy_coeff": 0.1, "entropy_coef": 0.1}, "entropy_coef"),
])
def test_ppo_loss_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PPOLoss(_zero_actor(), **kwargs)


def test_ppo_loss_missing_log_prob_names_the_key():
    td = _data().exclude("action_log_prob")
    with pytest.raises(KeyError, match="action_log_prob"):
        PPOLoss(_zero_actor())(td)
