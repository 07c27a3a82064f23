"""value.functional under TorchRL's names and argument orders: the advantage forms of TD(1)
and TD(lambda), the vec_* variants, td0_advantage_estimate's (done, terminated) order and
rolling_gamma."""

import pytest
import torch

from streamrl.objectives.value import functional as F


def _traj(T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    value = torch.randn(T, 1, generator=g)
    next_value = torch.randn(T, 1, generator=g)
    reward = torch.randn(T, 1, generator=g)
    done = torch.tensor([[False], [False], [True], [False], [False]])
    terminated = torch.tensor([[False], [False], [True], [False], [False]])
    return value, next_value, reward, done, terminated


def test_advantages_are_returns_minus_values():
    v, nv, r, d, t = _traj()
    ret = F.td_lambda_return_estimate(0.9, 0.7, nv, r, d, t)
    torch.testing.assert_close(F.td_lambda_advantage_estimate(0.9, 0.7, v, nv, r, d, t), ret - v)
    ret1 = F.td1_return_estimate(0.9, nv, r, d, t)
    torch.testing.assert_close(F.td1_advantage_estimate(0.9, v, nv, r, d, t), ret1 - v)
    # by hand: TD(1) from step 3 on is r3 + 0.9 * (r4 + 0.9 * V(s'_4)) (end of the axis)
    torch.testing.assert_close(ret1[3], r[3] + 0.9 * (r[4] + 0.9 * nv[4]))


def test_vec_variants_give_the_same_numbers():
    v, nv, r, d, t = _traj(seed=1)
    pairs = [
        (F.vec_generalized_advantage_estimate(0.9, 0.8, v, nv, r, d, t),
         F.generalized_advantage_estimate(0.9, 0.8, v, nv, r, d, t)),
        (F.vec_td_lambda_return_estimate(0.9, 0.8, nv, r, d, t),
         F.td_lambda_return_estimate(0.9, 0.8, nv, r, d, t)),
        (F.vec_td_lambda_advantage_estimate(0.9, 0.8, v, nv, r, d, t),
         F.td_lambda_advantage_estimate(0.9, 0.8, v, nv, r, d, t)),
        (F.vec_td1_return_estimate(0.9, nv, r, d, t), F.td1_return_estimate(0.9, nv, r, d, t)),
        (F.vec_td1_advantage_estimate(0.9, v, nv, r, d, t),
         F.td1_advantage_estimate(0.9, v, nv, r, d, t)),
    ]
    for got, expected in pairs:
        torch.testing.assert_close(got, expected)


def test_td0_advantage_takes_done_then_terminated():
    v, nv, r, d, t = _traj()
    trunc_only = d & ~t
    # positional (done, terminated) as TorchRL: a truncation still bootstraps
    adv = F.td0_advantage_estimate(0.5, v, nv, r, d, trunc_only)
    torch.testing.assert_close(adv, r + 0.5 * (~trunc_only).float() * nv - v)
    # terminated defaults to done
    torch.testing.assert_close(F.td0_advantage_estimate(0.5, v, nv, r, d),
                               r + 0.5 * (~d).float() * nv - v)


def test_rolling_gamma():
    _, nv, r, d, t = _traj()
    base = F.td_lambda_return_estimate(0.9, 0.5, nv, r, d, t)
    for rolling in (None, True, False):  # a scalar gamma: the same return
        torch.testing.assert_close(F.td_lambda_return_estimate(0.9, 0.5, nv, r, d, t, rolling), base)
    gammas = torch.full_like(r, 0.9)
    torch.testing.assert_close(F.td_lambda_return_estimate(gammas, 0.5, nv, r, d, t, True), base)
    with pytest.raises(NotImplementedError, match="rolling_gamma=False"):
        F.td_lambda_return_estimate(gammas, 0.5, nv, r, d, t, False)
    with pytest.raises(TypeError, match="rolling_gamma must be a bool"):
        F.td1_return_estimate(0.9, nv, r, d, t, "yes")
