"""V-trace: the functional against a step-by-step computation, the estimator, losses with
ValueEstimators.VTrace, bad input."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Categorical

from streamrl.objectives import A2CLoss, DQNLoss, ValueEstimators
from streamrl.objectives.value import VTrace, td1_return_estimate, vtrace_advantage_estimate


def _loop(gamma, log_pi, log_mu, v, nv, r, done, term, rho_t, c_t):
    """V-trace written step by step from the paper, one trajectory batch [T, 1]."""
    ratio = (log_pi - log_mu).exp()
    rho, c = ratio.clamp(max=rho_t), ratio.clamp(max=c_t)
    T = r.shape[0]
    vs = torch.zeros_like(v)
    acc = torch.zeros(1)
    for t in reversed(range(T)):
        delta = rho[t] * (r[t] + gamma * (~term[t]) * nv[t] - v[t])
        acc = delta + gamma * c[t] * (~done[t]) * acc
        vs[t] = v[t] + acc
    adv = torch.zeros_like(v)
    for t in range(T):
        nxt = nv[t] if (done[t] or t == T - 1) else vs[t + 1]
        adv[t] = rho[t] * (r[t] + gamma * (~term[t]) * nxt - v[t])
    return adv, vs


def _inputs(T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    done = torch.zeros(T, 1, dtype=torch.bool)
    done[2] = done[5] = True
    term = done.clone()
    term[5] = False  # truncation
    return dict(log_pi=torch.randn(T, 1, generator=g) * 0.5,
                log_mu=torch.randn(T, 1, generator=g) * 0.5,
                v=torch.randn(T, 1, generator=g), nv=torch.randn(T, 1, generator=g),
                r=torch.randn(T, 1, generator=g), done=done, term=term)


@pytest.mark.parametrize("rho_t,c_t", [(1.0, 1.0), (2.0, 0.5), (0.7, 1.3)])
def test_functional_matches_the_paper_loop(rho_t, c_t):
    x = _inputs()
    adv, vs = vtrace_advantage_estimate(0.9, x["log_pi"], x["log_mu"], x["v"], x["nv"], x["r"],
                                        x["done"], x["term"], rho_thresh=rho_t, c_thresh=c_t)
    exp_adv, exp_vs = _loop(0.9, x["log_pi"], x["log_mu"], x["v"], x["nv"], x["r"], x["done"],
                            x["term"], rho_t, c_t)
    torch.testing.assert_close(vs, exp_vs)
    torch.testing.assert_close(adv, exp_adv)


def test_on_policy_is_td1():
    x = _inputs()
    # consistent values: V(s[t+1]) is V(s'[t]) inside a trajectory (the sum telescopes)
    inside = ~x["done"][:-1]
    x["v"][1:] = torch.where(inside, x["nv"][:-1], x["v"][1:])
    _, vs = vtrace_advantage_estimate(0.9, x["log_pi"], x["log_pi"], x["v"], x["nv"], x["r"],
                                      x["done"], x["term"])
    torch.testing.assert_close(vs, td1_return_estimate(0.9, x["nv"], x["r"], x["done"],
                                                       terminated=x["term"]))


def test_functional_bad_input():
    x = _inputs()
    with pytest.raises(ValueError, match="rho_thresh"):
        vtrace_advantage_estimate(0.9, x["log_pi"], x["log_mu"], x["v"], x["nv"], x["r"],
                                  x["done"], rho_thresh=0.0)
    with pytest.raises(ValueError):
        vtrace_advantage_estimate(0.9, x["log_pi"][:3], x["log_mu"], x["v"], x["nv"], x["r"],
                                  x["done"])


def _actor():
    torch.manual_seed(0)
    net = nn.Linear(3, 4)
    return net, ProbabilisticTensorDictSequential(
        TensorDictModule(net, ["observation"], ["logits"]),
        ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                      distribution_class=Categorical))


def _rollout(T=7):
    x = _inputs(T)
    g = torch.Generator().manual_seed(1)
    return TensorDict({
        "observation": torch.randn(1, T, 3, generator=g),
        "action": torch.randint(4, (1, T), generator=g),
        "action_log_prob": x["log_mu"].view(1, T),
        "next": {"observation": torch.randn(1, T, 3, generator=g), "reward": x["r"].view(1, T, 1),
                 "done": x["done"].view(1, T, 1), "terminated": x["term"].view(1, T, 1)},
    }, [1, T])


def test_estimator_uses_actor_and_value_network():
    net, actor = _actor()
    critic_net = nn.Linear(3, 1)
    critic = TensorDictModule(critic_net, ["observation"], ["state_value"])
    est = VTrace(gamma=0.9, actor_network=actor, value_network=critic, rho_thresh=1.5)
    td = _rollout()
    est(td)
    with torch.no_grad():
        log_pi = Categorical(logits=net(td["observation"])).log_prob(td["action"]).view(-1, 1)
        exp_adv, exp_vs = _loop(0.9, log_pi, td["action_log_prob"].view(-1, 1),
                                critic_net(td["observation"]).view(-1, 1),
                                critic_net(td["next", "observation"]).view(-1, 1),
                                td["next", "reward"].view(-1, 1), td["next", "done"].view(-1, 1),
                                td["next", "terminated"].view(-1, 1), 1.5, 1.0)
    torch.testing.assert_close(td["value_target"].view(-1, 1), exp_vs)
    torch.testing.assert_close(td["advantage"].view(-1, 1), exp_adv)
    normalised = VTrace(gamma=0.9, actor_network=actor, value_network=critic, average_adv=True)
    adv = normalised(_rollout())["advantage"]
    assert abs(float(adv.mean())) < 1e-5 and abs(float(adv.std()) - 1) < 1e-4


def test_estimator_bad_input():
    with pytest.raises(TypeError, match="get_dist"):
        VTrace(gamma=0.9, actor_network=nn.Linear(2, 2))
    _, actor = _actor()
    with pytest.raises(ValueError, match="c_thresh"):
        VTrace(gamma=0.9, actor_network=actor, c_thresh=-1.0)
    est = VTrace(gamma=0.9, actor_network=actor,
                 value_network=TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"]))
    with pytest.raises(KeyError, match="action_log_prob"):
        est(_rollout().exclude("action_log_prob"))


def test_a2c_with_vtrace_and_dqn_refuses_it():
    net, actor = _actor()
    critic = TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])
    loss = A2CLoss(actor, critic)
    loss.make_value_estimator(ValueEstimators.VTrace, gamma=0.9)
    assert isinstance(loss.value_estimator, VTrace)
    out = loss(_rollout())
    out["loss_objective"].backward()
    assert net.weight.grad is not None
    dqn = DQNLoss(TensorDictModule(nn.Linear(3, 4), ["observation"], ["action_value"]),
                  action_space="categorical")
    with pytest.raises(NotImplementedError, match="supports value estimators"):
        dqn.make_value_estimator(ValueEstimators.VTrace)


def test_estimator_takes_the_next_values_as_an_argument():
    """``value_estimate(td, next_value=...)`` (TorchRL's argument) in place of the value
    network's V(s')."""
    _, actor = _actor()
    critic = TensorDictModule(nn.Linear(3, 1), ["observation"], ["state_value"])
    est = VTrace(gamma=0.9, actor_network=actor, value_network=critic)
    td = _rollout()
    expected = est.value_estimate(td.copy())
    with torch.no_grad():
        nv = critic(td["next"].copy())["state_value"]
    keys = set(td.keys(True, True))
    torch.testing.assert_close(est.value_estimate(td, next_value=nv), expected)
    assert ("next", "state_value") not in td.keys(True)
    assert not torch.allclose(est.value_estimate(td, next_value=nv + 1.0), expected)
    assert set(td.keys(True, True)) - keys <= {"state_value"}
