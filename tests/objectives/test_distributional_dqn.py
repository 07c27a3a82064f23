"""DistributionalDQNLoss (C51) and the distributional Q-value modules: a hand-computed case,
gradient routing, target parameters and bad input."""

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import Categorical
from streamrl.modules import DistributionalQValueActor, DistributionalQValueModule, QValueActor
from streamrl.objectives import DistributionalDQNLoss, HardUpdate
from streamrl.objectives.distributional_dqn import project_distribution

SUPPORT = torch.tensor([0.0, 1.0, 2.0])
# action 0: probabilities [0.2, 0.3, 0.5] (expected return 1.3); action 1: [0.5, 0.3, 0.2] (0.7)
PROBS = torch.tensor([[0.2, 0.5], [0.3, 0.3], [0.5, 0.2]])


def _fixed_actor(**kwargs):
    """Atom log-probabilities PROBS.log() whatever the observation (zero weights)."""
    lin = nn.Linear(2, 6)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(PROBS.log().reshape(-1))
    net = nn.Sequential(lin, nn.Unflatten(-1, (3, 2)))
    return DistributionalQValueActor(net, support=SUPPORT, action_space="categorical", **kwargs)


def _batch(terminated=(False, True)):
    n = len(terminated)
    term = torch.tensor(terminated).view(n, 1)
    return TensorDict({
        "observation": torch.randn(n, 2), "action": torch.tensor([1, 0] * n)[:n],
        "next": {"observation": torch.randn(n, 2), "reward": torch.full((n, 1), 0.5),
                 "done": term.clone(), "terminated": term},
    }, [n])


def test_projection_by_hand():
    # shifted atoms 0.5, 1.5, 2.5 -> clamp 2: masses 0.2 / 0.3 / 0.5 split to neighbours
    out = project_distribution(torch.tensor([[0.2, 0.3, 0.5]]), SUPPORT, torch.tensor([[0.5]]),
                               1.0, torch.ones(1, 1))
    torch.testing.assert_close(out, torch.tensor([[0.1, 0.25, 0.65]]))
    terminal = project_distribution(torch.tensor([[0.2, 0.3, 0.5]]), SUPPORT,
                                    torch.tensor([[0.5]]), 1.0, torch.zeros(1, 1))
    torch.testing.assert_close(terminal, torch.tensor([[0.5, 0.5, 0.0]]))
    on_atom = project_distribution(torch.tensor([[1.0, 0.0, 0.0]]), SUPPORT,
                                   torch.tensor([[2.0]]), 1.0, torch.ones(1, 1))
    torch.testing.assert_close(on_atom, torch.tensor([[0.0, 0.0, 1.0]]))


def test_loss_hand_computed():
    loss = DistributionalDQNLoss(_fixed_actor(), gamma=1.0, reduction="none")
    td = _batch()
    out = loss(td)
    # sample 0 took action 1 (probs .5 .3 .2); target m = [.1, .25, .65] (greedy next action 0)
    l0 = -(0.1 * math.log(0.5) + 0.25 * math.log(0.3) + 0.65 * math.log(0.2))
    # sample 1 took action 0 (probs .2 .3 .5); terminal target m = [.5, .5, 0]
    l1 = -(0.5 * math.log(0.2) + 0.5 * math.log(0.3))
    expected = torch.tensor([l0, l1])
    torch.testing.assert_close(out["loss"], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(td["td_error"], expected, rtol=1e-5, atol=1e-5)
    mean = DistributionalDQNLoss(_fixed_actor(), gamma=1.0)(_batch())["loss"]
    torch.testing.assert_close(mean, expected.mean(), rtol=1e-5, atol=1e-5)
    total = DistributionalDQNLoss(_fixed_actor(), gamma=1.0, reduction="sum")(_batch())["loss"]
    torch.testing.assert_close(total, expected.sum(), rtol=1e-5, atol=1e-5)


def test_one_hot_actions_and_extra_batch_dims():
    actor = DistributionalQValueActor(
        nn.Sequential(nn.Linear(2, 6), nn.Unflatten(-1, (3, 2))), support=SUPPORT,
        action_space="one-hot")
    loss = DistributionalDQNLoss(actor, gamma=0.9)
    td = _batch((False, True, False, False)).reshape(2, 2)
    td["action"] = torch.eye(2, dtype=torch.long)[torch.tensor([[0, 1], [1, 1]])]
    out = loss(td)
    assert out["loss"].shape == ()
    assert td["td_error"].shape == (2, 2)


def test_gradients_and_target_parameters():
    torch.manual_seed(0)
    actor = DistributionalQValueActor(
        nn.Sequential(nn.Linear(2, 6), nn.Unflatten(-1, (3, 2))), support=SUPPORT,
        action_space="categorical")
    loss = DistributionalDQNLoss(actor, gamma=0.9)
    td = _batch((False, False))
    before = loss.target_value_network_params.clone()
    loss(td.clone())["loss"].backward()
    grads = [p.grad for p in actor.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in loss.target_value_network_params.values(True, True))
    assert (loss.target_value_network_params == before).all()
    # the target distribution comes from the target parameters
    first = loss(td.clone())["loss"].detach()
    with torch.no_grad():
        for p in loss.target_value_network_params.values(True, True):
            if p.is_floating_point() and p.ndim == 2:
                p.add_(torch.randn_like(p))
    assert not torch.allclose(loss(td.clone())["loss"].detach(), first)
    HardUpdate(loss, period=1).step()
    torch.testing.assert_close(loss(td.clone())["loss"].detach(), first)


def test_no_delay_value_has_no_target():
    loss = DistributionalDQNLoss(_fixed_actor(), gamma=0.5, delay_value=False)
    assert "value_network" not in loss.target_network_names
    # without a target copy, target_value_network_params is a detached view of the live ones
    live, target = loss.value_network_params, loss.target_value_network_params
    for key, value in live.items(True, True):
        assert target[key].data_ptr() == value.data_ptr() and not target[key].requires_grad
    assert loss(_batch())["loss"].isfinite()


def test_bad_construction():
    with pytest.raises(TypeError, match="TensorDict module"):
        DistributionalDQNLoss(nn.Linear(2, 2), gamma=0.9)
    plain = TensorDictModule(nn.Linear(2, 2), ["observation"], ["action_value"])
    with pytest.raises(TypeError, match="support"):
        DistributionalDQNLoss(plain, gamma=0.9)
    uneven = _fixed_actor()
    uneven[-1].support = torch.tensor([0.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="evenly spaced"):
        DistributionalDQNLoss(uneven, gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        DistributionalDQNLoss(_fixed_actor(), gamma=1.5)
    with pytest.raises(ValueError, match="reduction"):
        DistributionalDQNLoss(_fixed_actor(), gamma=0.9, reduction="max")
    with pytest.raises(TypeError):
        DistributionalDQNLoss(_fixed_actor())  # gamma is required


def test_bad_input():
    loss = DistributionalDQNLoss(_fixed_actor(), gamma=0.9)
    with pytest.raises(KeyError, match="action"):
        loss(_batch().exclude("action"))
    with pytest.raises(KeyError, match="reward"):
        loss(_batch().exclude(("next", "reward")))
    bad = _batch()
    bad["next", "reward"] = torch.ones(2)
    with pytest.raises(ValueError, match="reward"):
        loss(bad)
    wrong_atoms = DistributionalQValueActor(
        nn.Sequential(nn.Linear(2, 8), nn.Unflatten(-1, (4, 2))), support=SUPPORT,
        action_space="categorical")
    with pytest.raises(ValueError, match=r"atoms|action_value"):
        DistributionalDQNLoss(wrong_atoms, gamma=0.9)(_batch())


def test_module_expected_return_and_mask():
    module = DistributionalQValueModule("one_hot", support=SUPPORT, action_mask_key="mask")
    td = TensorDict({"action_value": PROBS.log(), "mask": torch.tensor([True, True])}, [])
    assert module(td)["action"].tolist() == [1, 0]  # action 0 has the larger expected return
    td["mask"] = torch.tensor([False, True])
    assert module(td)["action"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="atoms"):
        module(TensorDict({"action_value": torch.zeros(4, 2), "mask": torch.ones(2).bool()}, []))
    with pytest.raises(ValueError, match="increasing"):
        DistributionalQValueModule("one_hot", support=torch.tensor([1.0, 0.0]))
    with pytest.raises(TypeError, match="support"):
        DistributionalQValueModule("one_hot", support=[0.0, 1.0])


def test_actor_log_softmax_switch():
    net = TensorDictModule(lambda x: PROBS.log().expand(*x.shape[:-1], 3, 2),
                           ["observation"], ["action_value"])
    actor = DistributionalQValueActor(net, support=SUPPORT, action_space="categorical",
                                      make_log_softmax=False)
    td = actor(TensorDict({"observation": torch.zeros(4, 2)}, [4]))
    assert td["action"].tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(td["action_value"], PROBS.log().expand(4, 3, 2))
    with pytest.raises(ValueError, match="action_value_key"):
        DistributionalQValueActor(net, support=SUPPORT, action_value_key="other")


def test_qvalue_actor_action_value_key_none_is_default():
    actor = QValueActor(nn.Linear(2, 3), action_value_key=None, action_space="one-hot")
    td = actor(TensorDict({"observation": torch.randn(4, 2)}, [4]))
    assert td["action_value"].shape == (4, 3)
    assert actor.action_space == "one_hot"


def test_distributional_module_keeps_a_categorical_unit_dim():
    """Like QValueModule: a Categorical(n, shape=(1,)) spec gives [*B, 1] index actions."""
    support = torch.linspace(-1.0, 1.0, 5)
    module = DistributionalQValueModule("categorical", support, spec=Categorical(3, shape=(1,)))
    logp = torch.log_softmax(torch.randn(4, 5, 3), -2)
    out = module(TensorDict({"action_value": logp}, [4]))
    assert out["action"].shape == (4, 1)
    values = (logp.exp() * support.unsqueeze(-1)).sum(-2)
    assert torch.equal(out["action"].squeeze(-1), values.argmax(-1))
