"""SAC-family options of TorchRL 0.14: delay_actor, separate_losses, skip_done_states,
action_spec / target_entropy and loss.log_alpha."""

import math

import pytest
import torch
from _sac_fixtures import gaussian_actor, qvalue, transitions
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Normal

from streamrl.data import Bounded
from streamrl.modules import ProbabilisticActor, TanhNormal
from streamrl.objectives import SACLoss, SoftUpdate


def _data(**kw):
    return transitions(4, seed=5, clamp_action=True, **kw)


def test_delay_actor_bootstraps_from_the_target_actor():
    torch.manual_seed(0)
    loss = SACLoss(gaussian_actor()[1], qvalue(), delay_actor=True)
    assert "actor_network" in loss.target_network_names
    td = _data()
    torch.manual_seed(1)
    before = loss(td.clone())["loss_qvalue"]
    with torch.no_grad():  # only the target actor moves: the target, hence loss_qvalue, does
        for value in loss.target_actor_network_params.values(True, True):
            value.add_(0.5)
    torch.manual_seed(1)
    after = loss(td.clone())["loss_qvalue"]
    assert not torch.allclose(before, after)
    # and the target updaters move it toward the live actor
    SoftUpdate(loss, tau=1.0).step()
    torch.testing.assert_close(loss.target_actor_network_params.detach(),
                               loss.actor_network_params.detach())


def test_without_delay_actor_there_is_no_target_actor():
    loss = SACLoss(gaussian_actor()[1], qvalue())
    assert "actor_network" not in loss.target_network_names
    with pytest.raises(TypeError, match="delay_actor must be True or False"):
        SACLoss(gaussian_actor()[1], qvalue(), delay_actor="yes")


class _Head(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.lin = nn.Linear(4 + 2, 1)

    def forward(self, obs, action):
        return self.lin(torch.cat([self.encoder(obs), action], -1))


def _shared_encoder_loss(separate):
    torch.manual_seed(0)
    encoder = nn.Linear(3, 4)
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(encoder, nn.Linear(4, 4), NormalParamExtractor()),
                         ["observation"], ["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal),
    )
    critic = TensorDictModule(_Head(encoder), ["observation", "action"],
                              ["state_action_value"])
    return encoder, SACLoss(actor, critic, separate_losses=separate)


def test_separate_losses_keeps_the_critic_loss_off_shared_parameters():
    encoder, loss = _shared_encoder_loss(True)
    out = loss(_data())
    out["loss_qvalue"].backward(retain_graph=True)
    assert encoder.weight.grad is None  # the critic loss does not train the shared encoder
    assert loss.qvalue_network_params["module", "lin", "weight"].grad is not None
    out["loss_actor"].backward()
    assert encoder.weight.grad is not None  # the actor loss does
    # the critic reads the actor's encoder: moving it moves the critic's prediction
    td = _data()
    torch.manual_seed(3)
    first = loss(td.clone())["loss_qvalue"]
    with torch.no_grad():
        encoder.weight.mul_(-2.0)
    torch.manual_seed(3)
    assert not torch.allclose(first, loss(td.clone())["loss_qvalue"])


def test_without_separate_losses_the_critic_trains_its_own_copies():
    _, loss = _shared_encoder_loss(False)
    out = loss(_data())
    out["loss_qvalue"].backward()
    assert loss.qvalue_network_params["module", "encoder", "weight"].grad is not None
    with pytest.raises(TypeError, match="separate_losses must be True or False"):
        SACLoss(gaussian_actor()[1], qvalue(), separate_losses=None)


def test_skip_done_states_does_not_run_the_actor_on_terminal_next_states():
    td = _data(terminated=(False, True, False, True))
    td["next", "observation"][td["next", "terminated"].squeeze(-1)] = float("nan")
    torch.manual_seed(0)
    plain = SACLoss(gaussian_actor()[1], qvalue())
    with pytest.raises(ValueError, match="loc"):  # the actor's Normal refuses a NaN loc
        plain(td.clone())
    torch.manual_seed(0)
    skipping = SACLoss(gaussian_actor()[1], qvalue(), skip_done_states=True)
    out = skipping(td.clone())  # the actor never sees the terminal next states
    assert torch.isfinite(out["loss_actor"])


def test_skip_done_states_keeps_truncated_states_and_the_target():
    td = _data(terminated=(False, False, False, False), truncated=[2])
    losses = []
    for skip in (False, True):
        torch.manual_seed(0)
        loss = SACLoss(gaussian_actor()[1], qvalue(), skip_done_states=skip)
        torch.manual_seed(1)
        losses.append(loss(td.clone())["loss_qvalue"])
    torch.testing.assert_close(losses[0], losses[1])  # nothing terminal: the same draws
    with pytest.raises(TypeError, match="skip_done_states must be True or False"):
        SACLoss(gaussian_actor()[1], qvalue(), skip_done_states=1)


def test_target_entropy_from_action_spec_and_actor_spec():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    loss = SACLoss(gaussian_actor()[1], qvalue(), action_spec=spec)
    assert loss.target_entropy == -2.0
    actor = ProbabilisticActor(
        TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                         ["observation"], ["loc", "scale"]),
        in_keys=["loc", "scale"], spec=Bounded(-1.0, 1.0, shape=(3,)),
        distribution_class=TanhNormal)
    assert SACLoss(actor, qvalue()).target_entropy == -3.0
    assert SACLoss(actor, qvalue(), target_entropy=-0.5).target_entropy == -0.5
    # no spec: resolved from the first action
    loss = SACLoss(gaussian_actor()[1], qvalue())
    assert loss.target_entropy == "auto"
    loss(_data())
    assert loss.target_entropy == -2.0
    with pytest.raises(TypeError, match="action_spec must be a TensorSpec"):
        SACLoss(gaussian_actor()[1], qvalue(), action_spec=(2,))


def test_log_alpha_is_the_temperature_parameter():
    loss = SACLoss(gaussian_actor()[1], qvalue(), alpha_init=0.5)
    assert loss.log_alpha is loss.entropy_coef.log_alpha
    assert math.isclose(float(loss.log_alpha.detach()), math.log(0.5), rel_tol=1e-6)
    optim = torch.optim.SGD([loss.log_alpha], lr=1.0)
    loss(_data())["loss_alpha"].backward()
    optim.step()
    assert not math.isclose(float(loss.log_alpha.detach()), math.log(0.5), rel_tol=1e-6)
    fixed = SACLoss(gaussian_actor()[1], qvalue(), fixed_alpha=True)
    assert not fixed.log_alpha.requires_grad


def test_separate_losses_covers_the_state_value_network():
    torch.manual_seed(0)
    encoder = nn.Linear(3, 4)
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(encoder, nn.Linear(4, 4), NormalParamExtractor()),
                         ["observation"], ["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal),
    )
    value = TensorDictModule(nn.Sequential(encoder, nn.Linear(4, 1)), ["observation"],
                             ["state_value"])
    for separate in (True, False):
        encoder.weight.grad = None
        loss = SACLoss(actor, qvalue(), value, separate_losses=separate)
        loss(_data())["loss_value"].backward()
        assert (encoder.weight.grad is None) == separate


def test_prioritized_replay_weights_reach_the_loss():
    from streamrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0, storage=LazyTensorStorage(8),
                                           batch_size=6, priority_key="td_error")
    rb.extend(transitions(8, seed=9, terminated=(False,) * 8, clamp_action=True))
    rb.update_priority(torch.arange(8), torch.arange(1.0, 9.0))  # unequal weights
    torch.manual_seed(0)
    batch = rb.sample()
    weight = batch["priority_weight"]
    assert not torch.allclose(weight, weight[0].expand_as(weight))
    outs = {}
    for mode in ("auto", False):
        torch.manual_seed(0)
        loss = SACLoss(gaussian_actor()[1], qvalue(), use_prioritized_weights=mode,
                       reduction="none", scalar_output_mode="exclude")
        torch.manual_seed(1)
        outs[mode] = loss(batch.clone())
    # "auto" picks up the sampler's weights: the per-sample losses are scaled by them
    torch.testing.assert_close(outs["auto"]["loss_qvalue"],
                               outs[False]["loss_qvalue"] * weight.reshape(-1))
