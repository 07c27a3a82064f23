"""TQCLoss: the quantile Huber loss, the truncated target and the actor term, by hand."""

import pytest
import torch
from _sac_fixtures import ConcatQ, gaussian_actor, qvalue, transitions
from torch import nn

from streamrl.objectives import TQCLoss, ValueEstimators
from streamrl.objectives.tqc import quantile_huber_loss


def _actor():
    return gaussian_actor()[1]


def _critic(n_out=3):
    return qvalue(ConcatQ(n_out))


def _batch(n=2):
    return transitions(n, seed=0, terminated=(False, True)[:n],
                       reward=torch.tensor([[1.0], [2.0]])[:n])


def _constant_atoms(loss, atoms):
    """Every critic (live and target) returns its row of ``atoms`` whatever the input."""
    with torch.no_grad():
        for params in (loss.qvalue_network_params, loss.target_qvalue_network_params):
            params["module", "lin", "weight"].zero_()
            params["module", "lin", "bias"].copy_(atoms)


def test_quantile_huber_loss_hand_computed():
    # taus 0.25 and 0.75; deltas +0.5 and -0.5; huber 0.125 each; weights 0.25 each
    loss = quantile_huber_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.5]))
    torch.testing.assert_close(loss, torch.tensor(0.25 * 0.125))
    # beyond |delta| = 1 the loss is linear: tau 0.5, delta 3 -> 0.5 * 2.5
    torch.testing.assert_close(quantile_huber_loss(torch.tensor([0.0]), torch.tensor([3.0])),
                               torch.tensor(1.25))


def test_target_pools_sorts_and_drops_the_top_atoms():
    torch.manual_seed(0)
    loss = TQCLoss(_actor(), _critic(3), num_qvalue_nets=2, top_quantiles_to_drop_per_net=1,
                   alpha_init=1e-9, fixed_alpha=True)
    loss.make_value_estimator(gamma=0.5)
    _constant_atoms(loss, torch.tensor([[1.0, 2.0, 3.0], [0.0, 5.0, 6.0]]))
    target = loss.target_atoms(_batch(), loss.entropy_coef.alpha())
    # pooled sorted [0, 1, 2, 3, 5, 6]; keep 2 * (3 - 1) = 4 atoms
    expected = torch.tensor([[1.0 + 0.5 * k for k in (0, 1, 2, 3)], [2.0] * 4])
    torch.testing.assert_close(target, expected, atol=1e-6, rtol=0)


def test_actor_loss_uses_the_mean_of_every_atom():
    torch.manual_seed(0)
    loss = TQCLoss(_actor(), _critic(2), num_qvalue_nets=2, top_quantiles_to_drop_per_net=0,
                   alpha_init=1e-9, fixed_alpha=True)
    _constant_atoms(loss, torch.tensor([[1.0, 3.0], [0.0, 8.0]]))
    out = loss(_batch())
    torch.testing.assert_close(out["loss_actor"], torch.tensor(-3.0), atol=1e-6, rtol=0)


def test_writes_td_error_and_leaves_the_input_leaves_alone():
    torch.manual_seed(0)
    loss = TQCLoss(_actor(), _critic(4), num_qvalue_nets=3)
    batch = _batch()
    reward = batch["next", "reward"].clone()
    out = loss(batch)
    assert batch["td_error"].shape == (2,) and (batch["td_error"] >= 0).all()
    assert torch.equal(batch["next", "reward"], reward) and batch["next", "reward"].shape == (2, 1)
    out["loss_qvalue"].backward()
    assert loss.qvalue_network_params["module", "lin", "weight"].grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"num_qvalue_nets": 0}, "num_qvalue_nets"),
    ({"top_quantiles_to_drop_per_net": -1}, "top_quantiles_to_drop_per_net"),
    ({"top_quantiles_to_drop_per_net": 1.5}, "top_quantiles_to_drop_per_net"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TQCLoss(_actor(), _critic(), **kwargs)
    with pytest.raises(TypeError, match="target_entropy"):
        TQCLoss(_actor(), _critic(), target_entropy="high")


def test_bad_critic_and_estimator():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="not more than"):
        TQCLoss(_actor(), _critic(2), num_qvalue_nets=2, top_quantiles_to_drop_per_net=2)(_batch())

    class _Scalar(nn.Module):
        def forward(self, obs, act):
            return obs.sum(-1)

    scalar = TQCLoss(_actor(), qvalue(_Scalar()), num_qvalue_nets=1)
    with pytest.raises(ValueError, match="n_quantiles"):
        scalar(_batch())
    with pytest.raises(NotImplementedError, match="TD0"):
        TQCLoss(_actor(), _critic()).make_value_estimator(ValueEstimators.TDLambda)
