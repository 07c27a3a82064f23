"""TD3BCLoss against hand computations: the alpha / mean|Q| normalisation of the Q term, the
behaviour-cloning term, TD3's critic loss, which network each term trains, and errors."""

from __future__ import annotations

import pytest
import torch
from _offline_fixtures import batch, concat_q, set_ensemble
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import Bounded
from streamrl.objectives import TD3BCLoss, TD3Loss

pytestmark = pytest.mark.filterwarnings("ignore:No target network updater")


def _actor(w=1.0):
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(w)
    return TensorDictModule(lin, ["observation"], ["action"])  # pi(s) = w * s


def _td3bc(**kwargs):
    kwargs.setdefault("bounds", (-10.0, 10.0))
    loss = TD3BCLoss(_actor(), concat_q(), loss_function="l2", **kwargs)
    # Q_0 = s + 2a, Q_1 = 2s + a + 1
    set_ensemble(loss, "qvalue_network", [[1.0, 2.0], [2.0, 1.0]], [0.0, 1.0])
    loss.make_value_estimator(gamma=0.5)
    return loss


def _data():
    return batch(obs=[1.0, 2.0], action=[0.5, -1.0], next_obs=[1.0, -1.0], reward=[1.0, 0.0],
                 done=[False, True])


@pytest.mark.parametrize("alpha", [2.5, 1.0])
def test_actor_loss_by_hand(alpha):
    out = _td3bc(alpha=alpha)(_data())
    # pi(s) = s = [1, 2]; Q_0(s, pi(s)) = 3s = [3, 6]; mean |Q_0| = 4.5
    lmbd = alpha / 4.5
    bc = torch.tensor([(1.0 - 0.5) ** 2, (2.0 + 1.0) ** 2])
    torch.testing.assert_close(out["lmbd"], torch.tensor(lmbd))
    torch.testing.assert_close(out["bc_loss"], bc.mean())
    torch.testing.assert_close(out["loss_actor"], (-lmbd * torch.tensor([3.0, 6.0]) + bc).mean())
    assert not out["lmbd"].requires_grad and not out["bc_loss"].requires_grad


def test_critic_loss_is_td3s():
    torch.manual_seed(0)
    out = _td3bc(policy_noise=0.0)(_data())
    # a' = pi(s') = s' = [1, -1] (no noise); min_i Q_i(s', a') = min(3, 4) = 3 for s' = 1
    y = torch.tensor([1.0 + 0.5 * 3.0, 0.0])
    pred = torch.tensor([[1.0 + 1.0, 2.0 - 2.0], [2.0 + 0.5 + 1.0, 4.0 - 1.0 + 1.0]])
    torch.testing.assert_close(out["loss_qvalue"], ((pred - y) ** 2).mean(1).sum())
    td3 = TD3Loss(_actor(), concat_q(), loss_function="l2", bounds=(-10.0, 10.0),
                  policy_noise=0.0)
    set_ensemble(td3, "qvalue_network", [[1.0, 2.0], [2.0, 1.0]], [0.0, 1.0])
    td3.make_value_estimator(gamma=0.5)
    torch.testing.assert_close(td3(_data())["loss_qvalue"], out["loss_qvalue"])


def test_alpha_zero_is_behaviour_cloning_and_routing():
    loss = _td3bc(alpha=0.0)
    out = loss(_data())
    torch.testing.assert_close(out["loss_actor"], torch.tensor((0.25 + 9.0) / 2))
    actor = list(loss.actor_network_params.values(True, True))
    critic = list(loss.qvalue_network_params.values(True, True))
    full = _td3bc()(_data())
    grads = torch.autograd.grad(full["loss_actor"], critic, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads)
    grads = torch.autograd.grad(out["loss_qvalue"], actor, allow_unused=True)
    assert all(g is None or not g.any() for g in grads)


def test_bounds_and_bad_input():
    spec = Bounded(-1.0, 1.0, shape=(1,))
    loss = TD3BCLoss(_actor(), concat_q(), action_spec=spec)
    assert float(loss.action_low) == -1.0 and float(loss.action_high) == 1.0
    with pytest.raises(ValueError, match="TD3BCLoss needs the action bounds from exactly one"):
        TD3BCLoss(_actor(), concat_q())
    with pytest.raises(ValueError, match=r"TD3BCLoss: alpha must be a float >= 0, found -1\.0"):
        TD3BCLoss(_actor(), concat_q(), bounds=(-1.0, 1.0), alpha=-1.0)
    with pytest.raises(KeyError, match=r"TD3BCLoss needs the key .*action"):
        _td3bc()(_data().exclude("action"))
    wide = _data()
    wide["action"] = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"TD3BCLoss: the actor's action has shape \(2, 1\) but "
                                         r"the dataset's 'action' has shape \(2, 3\)"):
        _td3bc().actor_loss(wide)
