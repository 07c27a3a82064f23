"""The on-policy losses' ``functional=False`` (networks held as plain submodules), their
coefficient buffers (``device=``, scheduling by assignment), ``register_coeff_buffer`` and
the ``_AcceptedKeys`` key declarations of losses and value estimators."""

import dataclasses

import pytest
import torch
from tensordict import TensorDict
from test_on_policy_options import _actor, _critic
from torch import nn

from streamrl.objectives import (
    A2CLoss,
    ClipPPOLoss,
    KLPENPPOLoss,
    LossModule,
    PPOLoss,
    ReinforceLoss,
    SoftUpdate,
)
from streamrl.objectives.value import GAE, TD0Estimator, VTrace

ON_POLICY = [PPOLoss, ClipPPOLoss, KLPENPPOLoss, A2CLoss]


def _data(n=5):
    g = torch.Generator().manual_seed(0)
    return TensorDict({
        "observation": torch.randn(n, 3, generator=g),
        "action": torch.randn(n, 2, generator=g),
        "action_log_prob": torch.randn(n, generator=g) - 2.0,
        "state_value": torch.zeros(n, 1),
        "next": {"observation": torch.randn(n, 3, generator=g),
                 "reward": torch.randn(n, 1, generator=g),
                 "done": torch.zeros(n, 1, dtype=torch.bool),
                 "terminated": torch.zeros(n, 1, dtype=torch.bool)},
    }, [n])


# ------------------------------------------------------------------ functional=False
@pytest.mark.parametrize("cls", ON_POLICY)
def test_functional_false_matches_functional_true(cls):
    torch.manual_seed(0)
    actor, critic = _actor(), _critic()
    stateful = cls(actor, critic, functional=False)
    functional = cls(actor, critic)
    assert stateful.functional is False and functional.functional is True
    assert stateful.actor_network is actor and stateful.critic_network is critic
    assert stateful.actor_network_params is None and stateful.critic_network_params is None
    assert stateful.target_critic_network_params is None
    names = [n for n, _ in stateful.named_parameters()]
    assert names and all(n.startswith(("actor_network.", "critic_network.")) for n in names)
    # one set of parameters, the modules' own: same losses either way
    a, b = stateful(_data()), functional(_data())
    for key in ("loss_objective", "loss_critic", "loss_entropy"):
        torch.testing.assert_close(a[key], b[key])


@pytest.mark.parametrize("cls", ON_POLICY)
def test_functional_false_trains_the_modules_themselves(cls):
    actor, critic = _actor(), _critic()
    loss = cls(actor, critic, functional=False)
    out = loss(_data())
    out["loss_critic"].backward(retain_graph=True)
    assert all(p.grad is None for p in actor.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())
    critic.zero_grad()
    (out["loss_objective"] + out["loss_entropy"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in critic.parameters())
    state = loss.state_dict()
    assert "actor_network.module.0.module.0.weight" in state and "entropy_coeff" in state


def test_functional_false_separate_losses_detaches_the_shared_trunk():
    trunk = nn.Linear(3, 3)
    actor = _actor(nn.Sequential(trunk, nn.Linear(3, 4)))
    critic = _critic(nn.Sequential(trunk, nn.Linear(3, 1)))
    loss = A2CLoss(actor, critic, functional=False, separate_losses=True)
    loss(_data())["loss_critic"].backward()
    assert trunk.weight.grad is None
    assert critic.module[1].weight.grad is not None
    # the module's own parameters are back in place after the call
    assert isinstance(trunk.weight, nn.Parameter) and trunk.weight.requires_grad


def test_functional_false_value_estimator_and_reset():
    actor, critic = _actor(), _critic()
    loss = PPOLoss(actor, critic, functional=False)
    loss.make_value_estimator(gamma=0.9, lmbda=0.9)
    td = _data()
    loss(td)
    assert "advantage" in td.keys() and not td["advantage"].requires_grad
    with torch.no_grad():
        critic.module.weight.fill_(100.0)
    loss.reset_parameters_recursive()
    assert critic.module.weight.abs().max() < 100.0


def test_reinforce_torchrl_arguments():
    actor, critic = _actor(), _critic()
    loss = ReinforceLoss(actor=actor, critic=critic, functional=False, reduction="sum",
                         clip_value=0.5, separate_losses=True)
    assert loss.actor_network is actor and loss.actor_network_params is None
    assert loss.clip_value == 0.5 and isinstance(loss.clip_value, torch.Tensor)
    out = loss(_data())
    assert out["loss_actor"].shape == () and out["loss_value"].shape == ()
    with pytest.raises(ValueError, match="delay_value=True needs functional=True"):
        ReinforceLoss(actor, critic, delay_value=True, functional=False)
    with pytest.raises(ValueError, match="clip_value must be a float or a scalar tensor"):
        ReinforceLoss(actor, critic, clip_value=True)
    with pytest.raises(TypeError, match="make_value_estimator"):
        ReinforceLoss(actor, critic, gamma=0.9)
    with pytest.raises(RuntimeError, match=r"set_keys\(advantage='adv'\)"):
        ReinforceLoss(actor, critic, advantage_key="adv")
    with pytest.raises(TypeError, match="not both"):
        ReinforceLoss(actor, actor=actor)
    with pytest.raises(ValueError, match="reduction must be one of"):
        ReinforceLoss(actor, critic, reduction="avg")


def test_reinforce_clip_value_clips_the_critic_update():
    td = _data()
    # old predictions far below the targets: the clipped prediction stays far from them
    td["state_value"] = torch.full((5, 1), -10.0)
    td["value_target"] = torch.zeros(5, 1)
    td["advantage"] = torch.zeros(5, 1)
    torch.manual_seed(0)
    actor, critic = _actor(), _critic()
    clipped = ReinforceLoss(actor, critic, clip_value=1e-3)(td.clone())
    free = ReinforceLoss(actor, critic)(td.clone())
    assert clipped["loss_value"] > 10 * free["loss_value"]


def test_register_network_functional_false_refuses_copies_and_targets():
    loss = LossModule()
    with pytest.raises(ValueError, match="functional=False cannot have copies"):
        loss.register_network("q", nn.Linear(2, 1), num_copies=2, functional=False)
    with pytest.raises(ValueError, match="target parameters"):
        loss.register_network("q", nn.Linear(2, 1), create_target=True, functional=False)
    with pytest.raises(TypeError, match="functional must be True or False"):
        loss.register_network("q", nn.Linear(2, 1), functional=None)
    with pytest.raises(TypeError, match="functional must be True or False"):
        PPOLoss(_actor(), _critic(), functional=0)


# --------------------------------------------------------------- coefficient buffers
@pytest.mark.parametrize("cls", ON_POLICY)
def test_coefficients_are_buffers_on_device(cls):
    if cls is not A2CLoss:  # A2C takes no device= (TorchRL's neither): the networks' one
        loss = cls(_actor(), _critic(), entropy_coeff=0.02, critic_coeff=0.5, device="meta")
        for name in ("entropy_coeff", "critic_coeff", "clip_value"):
            value = getattr(loss, name)
            assert value is None or (name in loss._buffers and value.device.type == "meta")
        # the networks are not moved
        assert all(p.device.type == "cpu" for p in loss.parameters())
    loss = cls(_actor(), _critic(), entropy_coeff=0.02, critic_coeff=0.5)
    assert loss.entropy_coeff.device.type == "cpu"
    assert float(loss.entropy_coeff) == pytest.approx(0.02)
    assert float(loss.entropy_coef) == pytest.approx(0.02)
    assert {"entropy_coeff", "critic_coeff"} <= set(loss.state_dict())


def test_ppo_coefficients_and_schedulable_assignment():
    loss = ClipPPOLoss(_actor(), _critic(), clip_epsilon=0.2, clip_value=0.3,
                       max_importance_ratio=4.0)
    assert ClipPPOLoss._all_schedulable_buffers >= {
        "entropy_coeff", "critic_coeff", "clip_value", "max_importance_ratio", "clip_epsilon"}
    assert "beta" not in ClipPPOLoss._all_schedulable_buffers
    assert "beta" in KLPENPPOLoss._all_schedulable_buffers
    buffer = loss.clip_epsilon
    loss.clip_epsilon = 0.1  # a schedule's update: in place, the same tensor
    assert loss.clip_epsilon is buffer and float(buffer) == pytest.approx(0.1)
    loss.entropy_coeff = 0
    assert loss.entropy_coeff.dtype == torch.float32 and float(loss.entropy_coeff) == 0.0
    assert "entropy_coeff" in loss._buffers
    # a tensor replaces the buffer through nn.Module's usual path
    loss.entropy_coeff = torch.tensor(0.5)
    assert float(loss.entropy_coeff) == 0.5 and "entropy_coeff" in loss._buffers
    # clip_epsilon scheduled down changes the clipped objective
    td = _data()
    td["advantage"] = torch.ones(5, 1)
    td["value_target"] = torch.zeros(5, 1)
    td["action_log_prob"] = torch.full((5,), -50.0)  # ratios far above 1 + eps
    loss = ClipPPOLoss(_actor(), _critic(), entropy_bonus=False)
    wide = loss(td.clone())["loss_objective"]
    loss.clip_epsilon = 0.05
    narrow = loss(td.clone())["loss_objective"]
    torch.testing.assert_close(wide, torch.tensor(-1.2))
    torch.testing.assert_close(narrow, torch.tensor(-1.05))


def test_ppo_clip_value_accepts_a_tensor_and_refuses_bools():
    loss = PPOLoss(_actor(), _critic(), clip_value=torch.tensor(0.5))
    assert float(loss.clip_value) == 0.5
    with pytest.raises(ValueError, match="clip_value must be a float or a scalar tensor"):
        PPOLoss(_actor(), _critic(), clip_value=True)
    with pytest.raises(ValueError, match="clip_value must be a float or a scalar tensor"):
        A2CLoss(_actor(), _critic(), clip_value=torch.ones(2))
    with pytest.raises(ValueError, match="max_importance_ratio must be > 0"):
        PPOLoss(_actor(), _critic(), max_importance_ratio=0.0)
    assert ClipPPOLoss(_actor(), _critic(), clip_value=False).clip_value is None


def test_register_coeff_buffer():
    loss = LossModule()
    loss.register_coeff_buffer("c", 2, dtype=torch.float64)
    assert loss.c.dtype == torch.float64 and float(loss.c) == 2.0 and "c" in loss._buffers
    loss.register_coeff_buffer("c", None)
    assert loss.c is None and "c" not in loss._buffers
    loss.register_coeff_buffer("c", torch.tensor(3.0))
    assert "c" in loss._buffers
    with pytest.raises(ValueError, match="must be a float or a scalar tensor"):
        loss.register_coeff_buffer("d", True)
    with pytest.raises(ValueError, match="must be a float or a scalar tensor"):
        loss.register_coeff_buffer("d", "0.1")
    # not declared schedulable: a buffer takes tensors only, as on any module
    with pytest.raises(TypeError, match="cannot assign 'float' as buffer"):
        loss.c = 4.0


# --------------------------------------------------------------------- _AcceptedKeys
def test_accepted_keys_mirror_default_keys():
    for cls in (GAE, TD0Estimator, VTrace, PPOLoss, A2CLoss, ReinforceLoss):
        assert dataclasses.asdict(cls._AcceptedKeys()) == dict(cls.default_keys)
    assert dataclasses.asdict(GAE._AcceptedKeys())["value"] == "state_value"


def test_custom_loss_declares_keys_with_accepted_keys():
    class MyLoss(LossModule):
        @dataclasses.dataclass
        class _AcceptedKeys:
            some_key: str = "some_value"
            nested: tuple = ("agents", "reward")

    class Plain(LossModule):
        class _AcceptedKeys:  # TorchRL's docstring example: unannotated attributes
            action = "action"

    loss = MyLoss()
    assert loss.tensor_keys.some_key == "some_value"
    assert loss.tensor_keys.nested == ("agents", "reward")
    loss.set_keys(some_key="test")
    assert loss.tensor_keys.some_key == "test"
    assert MyLoss.default_keys == {"some_key": "some_value", "nested": ("agents", "reward")}
    with pytest.raises(ValueError, match="has no key 'other'"):
        loss.set_keys(other="x")
    assert Plain().set_keys(action="action2").tensor_keys.action == "action2"


def test_soft_update_with_functional_false_critic_is_refused():
    # nothing to update: no target parameters exist without functional parameters
    loss = ReinforceLoss(_actor(), _critic(), functional=False)
    assert loss.target_network_names == ()
    with pytest.raises(ValueError, match="has no target parameters"):
        SoftUpdate(loss, eps=0.9)
