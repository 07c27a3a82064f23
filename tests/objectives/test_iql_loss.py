"""IQLLoss and DiscreteIQLLoss against hand computations: the expectile value loss, the
advantage-weighted actor loss with its temperature and clamp, the V-bootstrapped critic loss,
which network each term trains, and the errors on bad input."""

from __future__ import annotations

import math

import pytest
import torch
from _offline_fixtures import LOG_NORM, batch, concat_q, gaussian_actor, linear_value, set_ensemble
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Categorical

from streamrl.objectives import DiscreteIQLLoss, IQLLoss
from streamrl.objectives.iql import advantage_weights, expectile_loss

pytestmark = pytest.mark.filterwarnings("ignore:No target network updater")


def _iql(**kwargs):
    # Q_0 = s + 2a, Q_1 = 0.5 s + a + 0.5; V(s) = 0.5 s; pi(.|s) = N(s, 1)
    loss = IQLLoss(gaussian_actor(1.0), concat_q(), linear_value(0.5), loss_function="l2",
                   **kwargs)
    set_ensemble(loss, "qvalue_network", [[1.0, 2.0], [0.5, 1.0]], [0.0, 0.5])
    loss.make_value_estimator(gamma=0.9)
    return loss


def _data():
    return batch(obs=[1.0, 2.0], action=[0.5, -1.0], next_obs=[2.0, 1.0], reward=[1.0, 0.0],
                 done=[False, True])


def test_expectile_and_weights_by_hand():
    torch.testing.assert_close(expectile_loss(torch.tensor([2.0, -2.0, 0.0]), 0.9),
                               torch.tensor([0.9 * 4, 0.1 * 4, 0.0]))
    w = advantage_weights(torch.tensor([-1.0, 0.5, 3.0], requires_grad=True), 2.0)
    torch.testing.assert_close(w, torch.tensor([math.exp(-2.0), math.e, 100.0]))
    assert not w.requires_grad


def test_iql_by_hand():
    out = _iql(expectile=0.7, temperature=2.0)(_data())
    # min_i Q_i(s, a): Q_0 = [2, 0], Q_1 = [1.5, 0.5] -> [1.5, 0]; V(s) = [0.5, 1]
    # advantage [1, -1]: expectile loss [0.7 * 1, 0.3 * 1]
    torch.testing.assert_close(out["loss_value"], torch.tensor((0.7 + 0.3) / 2))
    # log N(a; s, 1) with a - s = [-0.5, -3]
    log_prob = torch.tensor([-0.125 + LOG_NORM, -4.5 + LOG_NORM])
    weights = torch.tensor([math.exp(2.0), math.exp(-2.0)])
    torch.testing.assert_close(out["loss_actor"], -(weights * log_prob).mean())
    torch.testing.assert_close(out["entropy"], -log_prob.mean())
    # y = r + 0.9 * (1 - done) * V(s') = [1 + 0.9 * 1, 0]; l2 summed over the two critics
    expected_q = ((2.0 - 1.9) ** 2 + 0.0) / 2 + ((1.5 - 1.9) ** 2 + 0.5 ** 2) / 2
    torch.testing.assert_close(out["loss_qvalue"], torch.tensor(expected_q))


def test_weights_are_clamped_and_temperature_zero_is_bc():
    data = _data()
    hot = _iql(temperature=10.0)(data)  # exp(10 * 1) > 100: clamped
    log_prob = torch.tensor([-0.125 + LOG_NORM, -4.5 + LOG_NORM])
    torch.testing.assert_close(hot["loss_actor"],
                               -(torch.tensor([100.0, math.exp(-10.0)]) * log_prob).mean())
    cold = _iql(temperature=0.0)(data)
    torch.testing.assert_close(cold["loss_actor"], -log_prob.mean())


def test_each_term_trains_its_own_network():
    loss = _iql(expectile=0.8)
    out = loss(_data())
    groups = {"actor": loss.actor_network_params, "q": loss.qvalue_network_params,
              "v": loss.value_network_params}
    owners = {"loss_actor": "actor", "loss_qvalue": "q", "loss_value": "v"}
    for term, owner in owners.items():
        for name, params in groups.items():
            leaves = list(params.values(True, True))
            grads = torch.autograd.grad(out[term], leaves, allow_unused=True, retain_graph=True)
            reached = any(g is not None and g.abs().sum() > 0 for g in grads)
            assert reached == (name == owner), (term, name)


def test_writes_priority_and_log_prob_and_reduction_none():
    loss = _iql(reduction="none", scalar_output_mode="exclude")
    data = _data()
    out = loss(data)
    assert out.batch_size == (2,) and set(out.keys()) == {"loss_actor", "loss_qvalue",
                                                         "loss_value"}
    torch.testing.assert_close(data["td_error"], torch.tensor([0.4, 0.5]))
    torch.testing.assert_close(data["_log_prob"],
                               torch.tensor([-0.125 + LOG_NORM, -4.5 + LOG_NORM]))


def test_bad_input():
    with pytest.raises(ValueError, match=r"expectile must be a float in \(0, 1\), found 1.0"):
        IQLLoss(gaussian_actor(), concat_q(), linear_value(1.0), expectile=1.0)
    with pytest.raises(ValueError, match="temperature must be a float >= 0, found -1"):
        IQLLoss(gaussian_actor(), concat_q(), linear_value(1.0), temperature=-1)
    with pytest.raises(TypeError, match=r"IQLLoss needs a value_network .* found NoneType"):
        IQLLoss(gaussian_actor(), concat_q(), None)
    with pytest.raises(TypeError, match="gamma is no longer a constructor argument"):
        IQLLoss(gaussian_actor(), concat_q(), linear_value(1.0), gamma=0.9)
    loss = _iql()
    with pytest.raises(KeyError, match=r"IQLLoss needs the key .*action"):
        loss(_data().exclude("action"))
    with pytest.raises(KeyError, match=r"IQLLoss needs the key .*next.*reward"):
        loss(_data().exclude(("next", "reward")))
    bad_v = IQLLoss(gaussian_actor(), concat_q(),
                    TensorDictModule(nn.Linear(1, 2), ["observation"], ["state_value"]))
    with pytest.raises(ValueError, match=r"'state_value' must have shape \(2, 1\), found \(2, 2\)"):
        bad_v(_data())


# ------------------------------------------------------------------ discrete
def _discrete(action_space="categorical", **kwargs):
    # logits = [s, 0, -s]; Q_i(s, .) = w_i * s for weights w_0 = [1, 2, 3], w_1 = [3, 2, 1]
    policy = nn.Linear(1, 3, bias=False)
    with torch.no_grad():
        policy.weight.copy_(torch.tensor([[1.0], [0.0], [-1.0]]))
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(policy, ["observation"], ["logits"]),
        ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                      distribution_class=Categorical))
    q = TensorDictModule(nn.Linear(1, 3, bias=False), ["observation"], ["state_action_value"])
    loss = DiscreteIQLLoss(actor, q, linear_value(1.0), action_space=action_space,
                           loss_function="l2", **kwargs)
    set_ensemble(loss, "qvalue_network", [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    loss.make_value_estimator(gamma=0.5)
    return loss


def test_discrete_iql_by_hand():
    data = batch(obs=[1.0, 2.0], action=[0, 1], next_obs=[4.0, 0.0], reward=[0.0, 1.0],
                 done=[False, False], discrete=True)
    out = _discrete(expectile=0.9, temperature=1.0)(data)
    # Q(s, a): copy 0 [1 * 1, 2 * 2] = [1, 4], copy 1 [3 * 1, 2 * 2] = [3, 4]; min [1, 4]
    # V(s) = s = [1, 2]: advantage [0, 2]
    torch.testing.assert_close(out["loss_value"], torch.tensor((0.0 + 0.9 * 4) / 2))
    # log pi(a|s) from the logits [s, 0, -s]
    log_p = torch.log_softmax(torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0]]), -1)
    log_prob = torch.stack([log_p[0, 0], log_p[1, 1]])
    weights = torch.tensor([1.0, math.exp(2.0)])
    torch.testing.assert_close(out["loss_actor"], -(weights * log_prob).mean())
    # y = r + 0.5 * V(s') = [2, 1]
    expected_q = ((1 - 2) ** 2 + (4 - 1) ** 2) / 2 + ((3 - 2) ** 2 + (4 - 1) ** 2) / 2
    torch.testing.assert_close(out["loss_qvalue"], torch.tensor(float(expected_q)))
    one_hot = data.clone()
    one_hot["action"] = torch.eye(3, dtype=torch.long)[data["action"]]
    again = _discrete(action_space="one-hot", expectile=0.9)(one_hot)
    torch.testing.assert_close(again.to_dict(), out.to_dict())


def test_discrete_iql_bad_action():
    data = batch(obs=[1.0, 2.0], action=[0, 1], next_obs=[4.0, 0.0], reward=[0.0, 1.0],
                 done=[False, False], discrete=True)
    data["action"] = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"DiscreteIQLLoss: one-hot action must have shape "
                                         r"\(2, 3\), found \(2, 5\)"):
        _discrete(action_space="one_hot")(data)
    with pytest.raises(ValueError, match="DiscreteIQLLoss: action_space must be"):
        _discrete(action_space="binary-ish")
