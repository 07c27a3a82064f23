"""TorchRL 0.14's options of the on-policy losses (PPO, ClipPPO, KL-PEN PPO, A2C):
reduction, advantage normalisation, max_importance_ratio, samples_mc_kl, the older
actor=/critic= names, A2C's clip_value / separate_losses, and the refused spellings."""

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

from streamrl.modules import TanhNormal, ValueNorm
from streamrl.objectives import A2CLoss, ClipPPOLoss, KLPENPPOLoss, PPOLoss

LOSSES = {"ppo": PPOLoss, "clip": ClipPPOLoss, "klpen": KLPENPPOLoss, "a2c": A2CLoss}


def _actor(body=None):
    body = body if body is not None else nn.Linear(3, 4)
    return ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(body, NormalParamExtractor()), in_keys=["observation"],
                         out_keys=["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal),
    )


def _critic(body=None):
    return TensorDictModule(body if body is not None else nn.Linear(3, 1), ["observation"],
                            ["state_value"])


def _data(batch=(4,)):
    g = torch.Generator().manual_seed(3)
    return TensorDict({
        "observation": torch.randn(*batch, 3, generator=g),
        "action": torch.randn(*batch, 2, generator=g),
        "action_log_prob": torch.randn(*batch, generator=g) - 2.0,
        "advantage": torch.randn(*batch, 1, generator=g),
        "value_target": torch.randn(*batch, 1, generator=g),
        "state_value": torch.zeros(*batch, 1),
    }, list(batch))


def _build(name, **kw):
    torch.manual_seed(0)
    return LOSSES[name](_actor(), _critic(), **kw)


def _loss_keys(out):
    return sorted(k for k in out.keys() if k.startswith("loss_"))


@pytest.mark.parametrize("name", list(LOSSES))
def test_reduction_applies_to_every_loss_entry(name):
    mean = _build(name)(_data())
    summed = _build(name, reduction="sum")(_data())
    none = _build(name, reduction="none")(_data())
    assert _loss_keys(mean) == _loss_keys(summed) == _loss_keys(none)
    for key in _loss_keys(mean):
        torch.testing.assert_close(summed[key], mean[key] * 4, rtol=1e-4, atol=1e-5)
        assert none[key].shape == (4,), key
        torch.testing.assert_close(none[key].mean(), mean[key], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="reduction must be one of"):
        _build(name, reduction="avg")


@pytest.mark.parametrize("name", list(LOSSES))
def test_refused_spellings(name):
    cls = LOSSES[name]
    with pytest.raises(TypeError, match="make_value_estimator"):
        cls(_actor(), _critic(), gamma=0.9)
    with pytest.raises(RuntimeError, match=r"set_keys\(advantage='adv'\)"):
        cls(_actor(), _critic(), advantage_key="adv")
    with pytest.raises(TypeError, match="functional must be True or False"):
        cls(_actor(), _critic(), functional="no")
    with pytest.raises(TypeError, match="missing the actor_network"):
        cls(critic_network=_critic())


@pytest.mark.parametrize("name", list(LOSSES))
def test_actor_and_critic_are_the_older_names(name):
    actor, critic = _actor(), _critic()
    loss = LOSSES[name](actor=actor, critic=critic)
    held = {id(p) for p in loss.actor_network_params.values(True, True)}
    assert {id(p) for p in actor.parameters()} <= held  # the module given, not a copy
    assert "loss_critic" in loss(_data()).keys()
    with pytest.raises(TypeError, match="not both"):
        LOSSES[name](_actor(), actor=_actor())


@pytest.mark.parametrize("name", ["ppo", "clip", "klpen"])
def test_ppo_delay_actor_is_refused(name):
    with pytest.raises(ValueError, match="delay_actor=True"):
        _build(name, delay_actor=True)


def test_normalize_advantage_exclude_dims_standardises_each_row():
    td = _data((2, 3))
    td["advantage"][0] += 10.0  # rows on very different scales
    loss = PPOLoss(_actor(), entropy_bonus=False, critic_coeff=None, normalize_advantage=True,
                   normalize_advantage_exclude_dims=(0,), reduction="none")
    with torch.no_grad():  # w = 1: loss_objective = -normalised advantage
        _, log_prob = loss.log_prob(td)
    td["action_log_prob"] = log_prob
    out = loss(td)
    adv = td["advantage"].squeeze(-1)
    expected = -(adv - adv.mean(1, keepdim=True)) / adv.std(1, keepdim=True)
    torch.testing.assert_close(out["loss_objective"], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        PPOLoss(_actor(), normalize_advantage=True,
                normalize_advantage_exclude_dims=(5,))(_data((2, 3)))
    with pytest.raises(TypeError, match="tuple of ints"):
        PPOLoss(_actor(), normalize_advantage_exclude_dims=0)


class _Halve(ValueNorm):
    """Scale 2, counting its updates."""

    def __init__(self):
        super().__init__()
        self.updates = 0

    def _update(self, flat):
        self.updates += 1

    def location(self):
        return torch.zeros(self.shape)

    def scale(self):
        return torch.full(self.shape, 2.0)


@pytest.mark.parametrize("name", ["ppo", "a2c"])
def test_advantage_norm_divides_and_updates_on_fresh_targets(name):
    norm = _Halve()
    plain = _build(name, reduction="none", entropy_bonus=False)(_data())
    normed = _build(name, reduction="none", entropy_bonus=False, advantage_norm=norm)(_data())
    torch.testing.assert_close(normed["loss_objective"], plain["loss_objective"] / 2)
    assert norm.updates == 0  # the advantage was given: nothing fresh to learn from
    data = _data().exclude("advantage", "value_target")
    data["next"] = {"reward": torch.ones(4, 1), "done": torch.zeros(4, 1, dtype=torch.bool),
                    "terminated": torch.zeros(4, 1, dtype=torch.bool),
                    "observation": torch.randn(4, 3)}
    _build(name, advantage_norm=norm)(data)
    assert norm.updates == 1
    with pytest.raises(ValueError, match="mutually exclusive"):
        _build(name, advantage_norm=_Halve(), normalize_advantage=True)
    with pytest.raises(TypeError, match="ValueNorm"):
        _build(name, advantage_norm=nn.Linear(1, 1))


def test_max_importance_ratio_caps_the_weight_but_keeps_the_gradient():
    td = _data()
    td["action_log_prob"] = torch.full((4,), -50.0)  # stale data: huge ratios
    loss = PPOLoss(_actor(), entropy_bonus=False, critic_coeff=None, max_importance_ratio=2.0,
                   reduction="none")
    out = loss(td)
    torch.testing.assert_close(out["loss_objective"], -2.0 * td["advantage"].squeeze(-1))
    assert float(out["max_ratio"]) == pytest.approx(2.0)
    out["loss_objective"].sum().backward()
    grads = [p.grad for p in loss.actor_network_params.values(True, True)]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    with pytest.raises(ValueError, match="max_importance_ratio must be > 0"):
        PPOLoss(_actor(), max_importance_ratio=0.0)


class _FixedLocScale(nn.Module):
    def forward(self, obs):
        return torch.zeros(*obs.shape[:-1], 2), torch.full((*obs.shape[:-1], 2), 0.3)


def test_samples_mc_kl_estimates_a_kl_without_closed_form():
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(_FixedLocScale(), ["observation"], ["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=TanhNormal),
    )
    td = _data()
    td["action"] = torch.rand(4, 2) - 0.5
    td["loc"], td["scale"] = torch.full((4, 2), 0.3), torch.full((4, 2), 0.3)  # old policy
    torch.manual_seed(0)
    loss = KLPENPPOLoss(actor, entropy_bonus=False, samples_mc_kl=4000)
    kl = float(loss(td)["kl"])
    # tanh is a bijection: the KL is the Gaussians' one, 2 dims * (0.3 / 0.3) ** 2 / 2 = 1
    assert kl == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="samples_mc_kl must be a positive int"):
        KLPENPPOLoss(actor, samples_mc_kl=0)


def test_a2c_clip_value_matches_ppo_value_clipping():
    td = _data()
    td["state_value"] = torch.full((4, 1), 0.5)  # old predictions
    a2c = _build("a2c", clip_value=0.1, entropy_bonus=False)(td.clone())
    ppo = _build("ppo", clip_value=0.1, entropy_bonus=False)(td.clone())
    unclipped = _build("a2c", entropy_bonus=False)(td.clone())
    torch.testing.assert_close(a2c["loss_critic"], ppo["loss_critic"])
    assert not torch.allclose(a2c["loss_critic"], unclipped["loss_critic"])
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        A2CLoss(_actor(), _critic(), clip_value=-1.0)


def test_a2c_separate_losses_and_samples_mc_entropy():
    encoder = nn.Linear(3, 3)
    actor = _actor(nn.Sequential(encoder, nn.Linear(3, 4)))
    critic = _critic(nn.Sequential(encoder, nn.Linear(3, 1)))
    loss = A2CLoss(actor, critic, separate_losses=True, samples_mc_entropy=3)
    assert loss.samples_mc_entropy == 3
    loss(_data())["loss_critic"].backward()
    assert encoder.weight.grad is None  # only the actor's losses train the shared encoder
    shared = A2CLoss(_actor(nn.Sequential(encoder, nn.Linear(3, 4))),
                     _critic(nn.Sequential(encoder, nn.Linear(3, 1))))
    shared(_data())["loss_critic"].backward()
    assert encoder.weight.grad is not None
    with pytest.raises(ValueError, match="samples_mc_entropy"):
        A2CLoss(actor, critic, samples_mc_entropy=0)

