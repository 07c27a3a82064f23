"""The constructor options TorchRL 0.14's losses share (objectives/_loss_options.py):
reduction, prioritized-replay weights, scalar_output_mode, deactivate_vmap and the refused
deprecated spellings, checked on every loss that takes them."""

import _sac_fixtures
import pytest
import torch
from _sac_fixtures import categorical_actor, gaussian_actor, qvalue, transitions
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.objectives import (
    CrossQLoss,
    DDPGLoss,
    DiscreteSACLoss,
    REDQLoss,
    SACLoss,
    TD3Loss,
    TQCLoss,
)


class _DiscreteQ(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)

    def forward(self, obs):
        return self.lin(obs)


def _sac(**kw):
    return SACLoss(gaussian_actor()[1], qvalue(), **kw)


def _discrete_sac(**kw):
    q = TensorDictModule(_DiscreteQ(), ["observation"], ["action_value"])
    return DiscreteSACLoss(categorical_actor(nn.Linear(3, 4)), q, num_actions=4, **kw)


def _td3(**kw):
    actor = TensorDictModule(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), ["observation"],
                             ["action"])
    return TD3Loss(actor, qvalue(), bounds=(-1.0, 1.0), **kw)


def _ddpg(**kw):
    actor = TensorDictModule(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), ["observation"],
                             ["action"])
    return DDPGLoss(actor, qvalue(), **kw)


def _redq(**kw):
    return REDQLoss(gaussian_actor()[1], qvalue(), num_qvalue_nets=3, **kw)


def _crossq(**kw):
    return CrossQLoss(gaussian_actor()[1], qvalue(), **kw)


def _tqc(**kw):
    critic = qvalue(_sac_fixtures.ConcatQ(n_out=5))  # 5 quantiles
    return TQCLoss(gaussian_actor()[1], critic, num_qvalue_nets=2, **kw)


def _data(discrete=False, n=5):
    td = transitions(n, seed=3, terminated=(False, True, False, False, False)[:n],
                     clamp_action=True)
    if discrete:
        td["action"] = torch.tensor([0, 3, 1, 2, 0])[:n]
    return td


#: builder, whether its actions are discrete, and the TorchRL options it takes
LOSSES = {
    "sac": (_sac, False, {"gamma", "priority_key", "prioritized", "scalar", "vmap"}),
    "td3": (_td3, False, {"gamma", "priority_key", "prioritized", "vmap"}),
    "ddpg": (_ddpg, False, {"gamma", "prioritized"}),
    "discrete_sac": (_discrete_sac, True, {"priority_key", "prioritized", "scalar", "vmap"}),
    "redq": (_redq, False, {"gamma", "priority_key", "scalar", "vmap"}),
    "crossq": (_crossq, False, {"priority_key", "scalar", "vmap"}),
    "tqc": (_tqc, False, {"prioritized", "scalar", "vmap"}),
}


def _run(name, seed=0, data=None, **kw):
    build, discrete, _ = LOSSES[name]
    torch.manual_seed(seed)
    loss = build(**kw)
    td = _data(discrete) if data is None else data
    torch.manual_seed(seed + 1)
    return loss, td, loss(td)


def _with(option):
    return [n for n, (_, _, opts) in LOSSES.items() if option in opts]


def _loss_keys(out):
    return sorted(k for k in out.keys() if k.startswith("loss_"))


@pytest.mark.parametrize("name", _with("gamma"))
def test_gamma_in_constructor_is_refused_with_the_replacement(name):
    with pytest.raises(TypeError, match=r"make_value_estimator\(gamma=0.9\)"):
        LOSSES[name][0](gamma=0.9)


@pytest.mark.parametrize("name", _with("priority_key"))
def test_priority_key_in_constructor_is_refused_with_the_replacement(name):
    with pytest.raises(RuntimeError, match=r"set_keys\(priority='p'\)"):
        LOSSES[name][0](priority_key="p")


@pytest.mark.parametrize("name", list(LOSSES))
def test_reduction_sum_is_batch_times_mean(name):
    _, _, mean = _run(name)
    _, td, summed = _run(name, reduction="sum")
    assert _loss_keys(mean) == _loss_keys(summed)
    for key in _loss_keys(mean):
        torch.testing.assert_close(summed[key], mean[key] * td.shape[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_reduction_none_gives_batch_shaped_losses(name):
    kw = {"scalar_output_mode": "exclude"} if name in _with("scalar") else {}
    _, _, mean = _run(name)
    _, td, none = _run(name, reduction="none", **kw)
    for key in _loss_keys(mean):
        assert none[key].shape == td.batch_size, key
        torch.testing.assert_close(none[key].mean(), mean[key], rtol=1e-4, atol=1e-5)
    assert "alpha" not in none.keys()


@pytest.mark.parametrize("name", list(LOSSES))
def test_bad_reduction_raises(name):
    with pytest.raises(ValueError, match="reduction must be one of"):
        LOSSES[name][0](reduction="max")


@pytest.mark.parametrize("name", _with("scalar"))
def test_scalar_output_mode(name):
    with pytest.warns(UserWarning, match="scalar_output_mode"):
        LOSSES[name][0](reduction="none")
    _, td, out = _run(name, reduction="none", scalar_output_mode="non_tensor")
    assert out.batch_size == td.batch_size  # every entry is batch-shaped
    assert float(out["alpha"]) > 0 and "entropy" in out.keys()
    _, _, out = _run(name, reduction="mean", scalar_output_mode="exclude")
    assert out["alpha"].shape == ()  # only reduction="none" drops the scalars
    with pytest.raises(ValueError, match="scalar_output_mode must be"):
        LOSSES[name][0](scalar_output_mode="drop")


@pytest.mark.parametrize("name", _with("prioritized"))
def test_prioritized_weights_weight_every_loss(name):
    _, _, plain = _run(name, reduction="none", scalar_output_mode="exclude") \
        if name in _with("scalar") else _run(name, reduction="none")
    discrete = LOSSES[name][1]
    weight = torch.tensor([0.5, 2.0, 1.0, 0.0, 3.0])
    data = _data(discrete)
    data["priority_weight"] = weight
    _, _, weighted = _run(name, data=data)
    for key in _loss_keys(weighted):
        expected = (plain[key] * weight).sum() / weight.sum()
        torch.testing.assert_close(weighted[key], expected, rtol=1e-4, atol=1e-5)
    # False ignores the weights; "auto" without weights is the plain mean
    _, _, ignored = _run(name, data=data.clone(), use_prioritized_weights=False)
    _, _, unweighted = _run(name)
    for key in _loss_keys(ignored):
        torch.testing.assert_close(ignored[key], unweighted[key])


@pytest.mark.parametrize("name", _with("prioritized"))
def test_prioritized_weights_required_or_bad(name):
    with pytest.raises(KeyError, match="priority_weight"):
        _run(name, use_prioritized_weights=True)
    for bad in ("yes", 1):
        with pytest.raises(ValueError, match="use_prioritized_weights must be"):
            LOSSES[name][0](use_prioritized_weights=bad)


@pytest.mark.parametrize("name", _with("vmap"))
def test_deactivate_vmap_gives_the_same_losses(name):
    _, _, vmapped = _run(name)
    loss, _, looped = _run(name, deactivate_vmap=True)
    assert loss.deactivate_vmap
    for key in _loss_keys(vmapped):
        torch.testing.assert_close(looped[key], vmapped[key])
    with pytest.raises(TypeError, match="deactivate_vmap must be True or False"):
        LOSSES[name][0](deactivate_vmap=1)


SOFT = ["sac", "discrete_sac", "redq", "crossq", "tqc"]


@pytest.mark.parametrize("name", SOFT)
def test_log_alpha_is_the_temperature_parameter(name):
    loss = LOSSES[name][0](alpha_init=0.5)
    assert loss.log_alpha is loss.entropy_coef.log_alpha
    assert any(p is loss.log_alpha for p in loss.parameters())
    assert float(loss.log_alpha.detach()) == pytest.approx(-0.6931, abs=1e-4)


@pytest.mark.parametrize("name", ["redq", "crossq", "tqc"])
def test_action_spec_sets_the_auto_target_entropy(name):
    from streamrl.data import Bounded

    loss = LOSSES[name][0](action_spec=Bounded(-1.0, 1.0, shape=(2,)))
    assert loss.target_entropy == -2.0
    with pytest.raises(TypeError, match="action_spec must be a TensorSpec"):
        LOSSES[name][0](action_spec="box")


def test_redq_gsde_is_refused():
    with pytest.raises(ValueError, match="gSDE=True"):
        _redq(gSDE=True)


@pytest.mark.parametrize("name", ["discrete_sac", "tqc"])
def test_skip_done_states_never_runs_the_actor_on_terminal_states(name):
    build, discrete, _ = LOSSES[name]
    data = _data(discrete)
    data["next", "observation"][1] = float("nan")  # step 1 is terminal
    torch.manual_seed(0)
    with pytest.raises(ValueError):  # the actor's distribution refuses NaN parameters
        build()(data.clone())
    torch.manual_seed(0)
    out = build(skip_done_states=True)(data.clone())
    assert torch.isfinite(out["loss_actor"])
    with pytest.raises(TypeError, match="skip_done_states must be True or False"):
        build(skip_done_states="no")


class _SharedEncoderQ(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.lin = nn.Linear(3 + 2, 1)

    def forward(self, obs, action):
        return self.lin(torch.cat([self.encoder(obs), action], -1))


@pytest.mark.parametrize("cls", [TD3Loss, DDPGLoss])
def test_separate_losses_keeps_the_critic_loss_off_shared_parameters(cls):
    for separate in (True, False):
        torch.manual_seed(0)
        encoder = nn.Linear(3, 3)
        actor = TensorDictModule(nn.Sequential(encoder, nn.Linear(3, 2), nn.Tanh()),
                                 ["observation"], ["action"])
        critic = TensorDictModule(_SharedEncoderQ(encoder), ["observation", "action"],
                                  ["state_action_value"])
        extra = {"bounds": (-1.0, 1.0)} if cls is TD3Loss else {}
        loss = cls(actor, critic, separate_losses=separate, **extra)
        out = loss(_data())
        critic_key = "loss_qvalue" if cls is TD3Loss else "loss_value"
        out[critic_key].backward()
        if separate:
            assert encoder.weight.grad is None
        elif cls is DDPGLoss:  # one critic: it holds the encoder itself and trains it
            assert encoder.weight.grad is not None
    with pytest.raises(TypeError, match="separate_losses must be True or False"):
        cls(actor, critic, separate_losses="yes", **extra)


@pytest.mark.parametrize("name", SOFT)
def test_alpha_is_the_clamped_temperature(name):
    loss = LOSSES[name][0](alpha_init=0.5, min_alpha=0.6, max_alpha=2.0)
    assert float(loss.alpha) == pytest.approx(0.6)  # clamped to min_alpha
    assert not loss.alpha.requires_grad
