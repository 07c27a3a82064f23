"""CQLLoss and DiscreteCQLLoss against hand computations: the conservative penalty's
logsumexp over uniform and policy actions (deterministic policy samples, seeded uniform
ones), its temperature and weight, the backups, the actor and BC terms, the Lagrange
multiplier, which network each term trains, and the errors on bad input."""

from __future__ import annotations

import math

import pytest
import torch
from _offline_fixtures import LOG_NORM, ShiftedNormal, batch, concat_q, gaussian_actor, set_ensemble
from torch import nn

from streamrl.modules import QValueActor
from streamrl.objectives import CQLLoss, DiscreteCQLLoss
from streamrl.objectives._conservative import conservative_penalty

pytestmark = pytest.mark.filterwarnings("ignore:No target network updater")

# Q_0(s, a) = s + 2a, Q_1(s, a) = 0.5 s + a + 0.5; the policy's samples are s + 0.5 (mean s)
WEIGHTS, BIASES = [[1.0, 2.0], [0.5, 1.0]], [0.0, 0.5]
# log N(s + 0.5; s, 1)
LOG_PI = -0.125 + LOG_NORM


def _q(i, s, a):
    w, b = WEIGHTS[i], BIASES[i]
    return w[0] * s + w[1] * a + b


def _cql(**kwargs):
    kwargs.setdefault("fixed_alpha", True)
    kwargs.setdefault("alpha_init", 0.5)
    loss = CQLLoss(gaussian_actor(1.0, ShiftedNormal), concat_q(), loss_function="l2",
                   target_entropy=-1.0, **kwargs)
    set_ensemble(loss, "qvalue_network", WEIGHTS, BIASES)
    loss.make_value_estimator(gamma=0.9)
    return loss


def _data():
    return batch(obs=[1.0, -1.0], action=[0.5, -0.25], next_obs=[0.0, 2.0], reward=[1.0, -1.0],
                 done=[False, True])


def test_penalty_function_by_hand():
    q = torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])
    torch.testing.assert_close(conservative_penalty(q, torch.tensor([0.5, 1.0]), dim=-1),
                               torch.tensor([math.log(4.0) - 0.5, 1.0 + math.log(2.0) - 1.0]))
    # temperature T: T * logsumexp(q / T); weight scales the whole
    torch.testing.assert_close(
        conservative_penalty(q, torch.zeros(2), dim=-1, temperature=2.0, weight=3.0),
        3.0 * 2.0 * torch.logsumexp(q / 2.0, -1))
    with pytest.raises(ValueError, match=r"the data Q-values have shape \(3,\), expected \(2,\)"):
        conservative_penalty(q, torch.zeros(3), dim=-1)


@pytest.mark.parametrize("temperature, weight", [(1.0, 1.0), (2.0, 3.0)])
def test_cql_penalty_by_hand(temperature, weight):
    loss = _cql(num_random=2, temperature=temperature, min_q_weight=weight)
    data = _data()
    pred = torch.stack([torch.tensor([_q(i, 1.0, 0.5), _q(i, -1.0, -0.25)]) for i in range(2)])
    torch.manual_seed(3)
    penalty = loss.cql_penalty(data, pred)
    torch.manual_seed(3)
    uniform = torch.empty(2, 2, 1).uniform_(-1, 1)  # per state, then per sample
    expected = torch.zeros(2, 2)
    for i in range(2):
        for b, (s, s_next, a) in enumerate([(1.0, 0.0, 0.5), (-1.0, 2.0, -0.25)]):
            values = [_q(i, s, float(u)) + math.log(2.0) for u in uniform[b, :, 0]]
            values += [_q(i, s, s + 0.5) - LOG_PI] * 2  # the policy at s, valued at s
            values += [_q(i, s, s_next + 0.5) - LOG_PI] * 2  # the policy at s', valued at s
            soft = temperature * torch.logsumexp(torch.tensor(values) / temperature, 0)
            expected[i, b] = weight * (soft - _q(i, s, a))
    torch.testing.assert_close(penalty, expected)
    torch.manual_seed(3)
    out = loss(data.clone())
    torch.testing.assert_close(out["loss_cql"], expected.sum(0).mean())


def test_backups_actor_and_bc_by_hand():
    data = _data()
    out = _cql(num_random=1)(data)
    # a' = s' + 0.5 = [0.5, 2.5]; deterministic backup: min_i Q_i(s', a')
    next_q = min(_q(0, 0.0, 0.5), _q(1, 0.0, 0.5))
    y = torch.tensor([1.0 + 0.9 * next_q, -1.0])
    pred = torch.tensor([[_q(i, 1.0, 0.5), _q(i, -1.0, -0.25)] for i in range(2)])
    torch.testing.assert_close(out["loss_qvalue"], ((pred - y) ** 2).mean(1).sum())
    # the actor's action a~ = s + 0.5, log pi(a~|s) = LOG_PI, alpha = 0.5
    q_new = torch.tensor([min(_q(0, s, s + 0.5), _q(1, s, s + 0.5)) for s in (1.0, -1.0)])
    torch.testing.assert_close(out["loss_actor"], (0.5 * LOG_PI - q_new).mean())
    data_log_prob = torch.tensor([-0.5 * 0.5 ** 2, -0.5 * 0.75 ** 2]) + LOG_NORM
    torch.testing.assert_close(out["loss_actor_bc"], (0.5 * LOG_PI - data_log_prob).mean())
    torch.testing.assert_close(out["alpha"], torch.tensor(0.5))
    torch.testing.assert_close(out["entropy"], torch.tensor(-LOG_PI))
    torch.testing.assert_close(out["loss_alpha"], torch.tensor(0.0))  # fixed alpha
    torch.testing.assert_close(data["td_error"], (pred - y).abs().max(0).values)
    # stochastic backup: minus alpha * log pi(a'|s')
    soft = _cql(num_random=1, deterministic_backup=False)(_data())
    y_soft = torch.tensor([1.0 + 0.9 * (next_q - 0.5 * LOG_PI), -1.0])
    torch.testing.assert_close(soft["loss_qvalue"], ((pred - y_soft) ** 2).mean(1).sum())


def test_max_q_backup_takes_the_best_sample_per_critic():
    loss = _cql(num_random=3, max_q_backup=True)
    # every sampled a' is s' + 0.5 here, so the max over samples is that action's value
    out = loss(_data())
    next_q = min(_q(0, 0.0, 0.5), _q(1, 0.0, 0.5))
    y = torch.tensor([1.0 + 0.9 * next_q, -1.0])
    pred = torch.tensor([[_q(i, 1.0, 0.5), _q(i, -1.0, -0.25)] for i in range(2)])
    torch.testing.assert_close(out["loss_qvalue"], ((pred - y) ** 2).mean(1).sum())


def test_lagrange_multiplier():
    loss = _cql(num_random=2, with_lagrange=True, lagrange_thresh=1.5)
    with torch.no_grad():
        loss.log_alpha_prime.fill_(math.log(2.0))
    data = _data()
    pred = torch.stack([torch.tensor([_q(i, 1.0, 0.5), _q(i, -1.0, -0.25)]) for i in range(2)])
    torch.manual_seed(0)
    penalty = loss.cql_penalty(data, pred)
    torch.manual_seed(0)
    out = loss(data)
    torch.testing.assert_close(out["loss_cql"], (2.0 * (penalty - 1.5)).sum(0).mean())
    torch.testing.assert_close(out["loss_alpha_prime"], -(2.0 * (penalty - 1.5)).mean())
    grad, = torch.autograd.grad(out["loss_alpha_prime"], [loss.log_alpha_prime])
    torch.testing.assert_close(grad, -(2.0 * (penalty - 1.5)).mean())
    assert data["cql_q1_loss"].shape == (2,) and data["pred_q2"].shape == (2, 1)


def test_penalty_trains_the_critics_only():
    loss = _cql(num_random=2, fixed_alpha=False)
    out = loss(_data())
    actor = list(loss.actor_network_params.values(True, True))
    critic = list(loss.qvalue_network_params.values(True, True))
    for term, trains_actor, trains_critic in [("loss_cql", False, True),
                                              ("loss_qvalue", False, True),
                                              ("loss_actor", True, False),
                                              ("loss_actor_bc", True, False)]:
        ga = torch.autograd.grad(out[term], actor, allow_unused=True, retain_graph=True)
        gc = torch.autograd.grad(out[term], critic, allow_unused=True, retain_graph=True)
        assert any(g is not None and g.abs().sum() > 0 for g in ga) == trains_actor, term
        assert any(g is not None and g.abs().sum() > 0 for g in gc) == trains_critic, term


def test_cql_bad_input():
    for kwargs, message in [
        ({"num_random": 0}, "num_random must be an int >= 1, found 0"),
        ({"temperature": 0.0}, "temperature must be a float > 0, found 0.0"),
        ({"min_q_weight": -1.0}, "min_q_weight must be a float >= 0, found -1.0"),
        ({"with_lagrange": 1}, "with_lagrange must be True or False, found 1"),
    ]:
        with pytest.raises((ValueError, TypeError), match=message):
            _cql(**kwargs)
    with pytest.raises(TypeError, match="gamma is no longer a constructor argument"):
        CQLLoss(gaussian_actor(), concat_q(), gamma=0.99)
    with pytest.raises(KeyError, match=r"CQLLoss needs the key .*action"):
        _cql()(_data().exclude("action"))


# ------------------------------------------------------------------ discrete
def _discrete_cql(action_space="categorical", **kwargs):
    net = nn.Linear(1, 3, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0], [2.0], [3.0]]))  # Q(s, .) = [s, 2s, 3s]
    loss = DiscreteCQLLoss(QValueActor(net, action_space=action_space), **kwargs)
    loss.make_value_estimator(gamma=0.5)
    return loss


def test_discrete_cql_by_hand():
    data = batch(obs=[1.0, -1.0], action=[0, 2], next_obs=[2.0, 0.0], reward=[0.0, 1.0],
                 done=[False, False], discrete=True)
    out = _discrete_cql()(data)
    lse = math.log(1 + math.exp(-1) + math.exp(-2))
    # logsumexp([1, 2, 3]) - Q(s, 0) = 3 + lse - 1; logsumexp([-1, -2, -3]) - Q(s, 2) = -1 + lse + 3
    torch.testing.assert_close(out["loss_cql"], torch.tensor(2.0 + lse))
    # y = r + 0.5 * max_a Q(s', a) = [0 + 0.5 * 6, 1 + 0] = [3, 1]; pred = [1, -3]
    torch.testing.assert_close(out["loss_qvalue"], torch.tensor(0.5 * (4.0 + 16.0) / 2))
    torch.testing.assert_close(out["td_error"], torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(data["td_error"], torch.tensor([2.0, 4.0]))
    one_hot = data.clone()
    one_hot["action"] = torch.eye(3, dtype=torch.long)[data["action"]]
    loss = _discrete_cql(action_space="one_hot")
    torch.testing.assert_close(loss(one_hot).to_dict(), out.to_dict())
    total = _discrete_cql(reduction="sum")(data)
    torch.testing.assert_close(total["loss_cql"], torch.tensor(2 * (2.0 + lse)))


def test_discrete_cql_bad_input():
    with pytest.raises(TypeError, match="gamma is no longer a constructor argument"):
        DiscreteCQLLoss(QValueActor(nn.Linear(1, 3), action_space="categorical"), gamma=0.9)
    with pytest.raises(ValueError, match="loss_function must be one of"):
        DiscreteCQLLoss(QValueActor(nn.Linear(1, 3), action_space="categorical"),
                        loss_function="huber")
    data = batch(obs=[1.0, -1.0], action=[0, 2], next_obs=[2.0, 0.0], reward=[0.0, 1.0],
                 done=[False, False], discrete=True)
    with pytest.raises(KeyError, match=r"DiscreteCQLLoss needs the key .*action"):
        _discrete_cql()(data.exclude("action"))
