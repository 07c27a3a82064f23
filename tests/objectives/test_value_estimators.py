"""Value estimators against per-step reference loops (terminations and truncations mid-batch)."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.objectives.value import (
    GAE,
    MultiAgentGAE,
    TD0Estimator,
    TD1Estimator,
    TDLambdaEstimator,
    ValueEstimators,
    generalized_advantage_estimate,
    make_estimator,
    reverse_linear_scan,
    td0_return_estimate,
    td1_return_estimate,
    td_lambda_return_estimate,
)

# ------------------------------------------------------------------ references (plain Python)


def ref_gae(gamma, lmbda, v, nv, r, done, term):
    T = len(r)
    adv = [0.0] * T
    nxt = 0.0
    for t in reversed(range(T)):
        delta = r[t] + gamma * (0.0 if term[t] else nv[t]) - v[t]
        cont = 0.0 if (done[t] or t == T - 1) else 1.0
        nxt = delta + gamma * lmbda * cont * nxt
        adv[t] = nxt
    return adv, [a + b for a, b in zip(adv, v)]


def ref_td_lambda(gamma, lmbda, nv, r, done, term):
    T = len(r)
    out = [0.0] * T
    for t in reversed(range(T)):
        boot = 0.0 if term[t] else 1.0
        if done[t] or t == T - 1:
            out[t] = r[t] + gamma * boot * nv[t]
        else:
            out[t] = r[t] + gamma * boot * ((1 - lmbda) * nv[t] + lmbda * out[t + 1])
    return out


def _rows(x):
    return [row.squeeze(-1).tolist() for row in x]


@pytest.fixture
def batch():
    """Two rows of 12 steps, with a termination and a truncation mid-row."""
    g = torch.Generator().manual_seed(0)
    B, T = 2, 12
    r = torch.randn(B, T, 1, generator=g)
    v = torch.randn(B, T, 1, generator=g)
    nv = torch.randn(B, T, 1, generator=g)
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    term = torch.zeros(B, T, 1, dtype=torch.bool)
    done[0, 3] = term[0, 3] = True  # row 0: terminates at 3
    done[0, 7] = True  # row 0: truncated at 7 (bootstraps)
    done[1, 0] = True  # row 1: truncated at the first step
    done[1, 9] = term[1, 9] = True  # row 1: terminates at 9
    done[1, 10] = True  # row 1: one-step trajectory, truncated
    return r, v, nv, done, term


@pytest.mark.parametrize("lmbda", [0.0, 0.5, 0.95, 1.0])
def test_gae_matches_loop(batch, lmbda):
    r, v, nv, done, term = batch
    adv, target = generalized_advantage_estimate(0.9, lmbda, v, nv, r, done, term)
    for b in range(r.shape[0]):
        ref_adv, ref_target = ref_gae(0.9, lmbda, *(_rows(x)[b] for x in (v, nv, r, done, term)))
        torch.testing.assert_close(adv[b, :, 0], torch.tensor(ref_adv), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(target[b, :, 0], torch.tensor(ref_target), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lmbda", [0.0, 0.3, 0.95, 1.0])
def test_td_lambda_matches_loop(batch, lmbda):
    r, _, nv, done, term = batch
    out = td_lambda_return_estimate(0.8, lmbda, nv, r, done, term)
    for b in range(r.shape[0]):
        ref = ref_td_lambda(0.8, lmbda, *(_rows(x)[b] for x in (nv, r, done, term)))
        torch.testing.assert_close(out[b, :, 0], torch.tensor(ref), atol=1e-5, rtol=1e-5)


def test_td1_and_td0_are_lambda_limits(batch):
    r, _, nv, done, term = batch
    torch.testing.assert_close(
        td1_return_estimate(0.8, nv, r, done, term),
        td_lambda_return_estimate(0.8, 1.0, nv, r, done, term),
    )
    torch.testing.assert_close(
        td0_return_estimate(0.8, nv, r, term),
        td_lambda_return_estimate(0.8, 0.0, nv, r, done, term),
    )


def test_truncation_bootstraps_termination_does_not():
    r = torch.ones(1, 2, 1)
    nv = torch.full((1, 2, 1), 10.0)
    done = torch.tensor([[[True], [True]]])
    term = torch.tensor([[[True], [False]]])
    out = td0_return_estimate(0.5, nv, r, term)
    assert out.flatten().tolist() == [1.0, 6.0]
    out = td1_return_estimate(0.5, nv, r, done, term)
    assert out.flatten().tolist() == [1.0, 6.0]


def test_missing_terminated_falls_back_to_done():
    r = torch.ones(1, 3, 1)
    nv = torch.full((1, 3, 1), 10.0)
    done = torch.tensor([[[False], [True], [False]]])
    out = td1_return_estimate(0.5, nv, r, done)
    # step 1 is a terminal end; step 2 bootstraps at the end of the axis
    assert out.flatten().tolist() == [1.5, 1.0, 6.0]


def test_long_horizon_and_large_batch_match_loop():
    g = torch.Generator().manual_seed(1)
    B, T = 3, 300
    r = torch.randn(B, T, 1, generator=g)
    v = torch.randn(B, T, 1, generator=g)
    nv = torch.randn(B, T, 1, generator=g)
    done = torch.rand(B, T, 1, generator=g) < 0.02
    term = done & (torch.rand(B, T, 1, generator=g) < 0.5)
    adv, _ = generalized_advantage_estimate(0.99, 0.95, v, nv, r, done, term)
    for b in range(B):
        ref, _ = ref_gae(0.99, 0.95, *(_rows(x)[b] for x in (v, nv, r, done, term)))
        torch.testing.assert_close(adv[b, :, 0], torch.tensor(ref), atol=1e-4, rtol=1e-4)


def test_time_dim_argument():
    g = torch.Generator().manual_seed(2)
    r, v, nv = (torch.randn(5, 3, generator=g) for _ in range(3))  # [time, batch]
    done = torch.zeros(5, 3, dtype=torch.bool)
    done[2, 1] = True
    adv_t, _ = generalized_advantage_estimate(0.9, 0.9, v, nv, r, done, time_dim=0)
    adv_b, _ = generalized_advantage_estimate(0.9, 0.9, v.T, nv.T, r.T, done.T, time_dim=-1)
    torch.testing.assert_close(adv_t, adv_b.T)


def test_tensor_gamma_per_step():
    r = torch.ones(1, 3, 1)
    nv = torch.zeros(1, 3, 1)
    done = torch.zeros(1, 3, 1, dtype=torch.bool)
    gamma = torch.tensor([0.5, 0.1, 0.9]).view(1, 3, 1)
    out = td1_return_estimate(gamma, nv, r, done)
    # G2 = 1, G1 = 1 + 0.1 * 1, G0 = 1 + 0.5 * 1.1
    torch.testing.assert_close(out.flatten(), torch.tensor([1.55, 1.1, 1.0]))


def test_reverse_linear_scan_single_step_and_zeros():
    a = torch.tensor([[2.0]])
    assert reverse_linear_scan(a, torch.tensor([[0.7]])).item() == 2.0
    a = torch.arange(1.0, 9.0)
    c = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    expected = torch.tensor([3.0, 2.0, 12.0, 9.0, 5.0, 21.0, 15.0, 8.0])
    torch.testing.assert_close(reverse_linear_scan(a, c), expected)


@pytest.mark.parametrize(
    "bad",
    ["reward", "done", "value"],
)
def test_shape_mismatch_is_an_error(bad):
    shapes = {"reward": (2, 4, 1), "done": (2, 4, 1), "value": (2, 4, 1)}
    shapes[bad] = (2, 4)
    r = torch.zeros(shapes["reward"])
    d = torch.zeros(shapes["done"], dtype=torch.bool)
    v = torch.zeros(shapes["value"])
    with pytest.raises(ValueError, match="shape"):
        generalized_advantage_estimate(0.9, 0.9, v, v if bad != "value" else r, r, d)
    with pytest.raises(ValueError, match="shape"):
        td_lambda_return_estimate(0.9, 0.9, v, r, d)


def test_bad_coefficients():
    x = torch.zeros(2, 3, 1)
    d = torch.zeros(2, 3, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="gamma"):
        td1_return_estimate(torch.zeros(5), x, x, d)
    with pytest.raises(TypeError, match="gamma"):
        td1_return_estimate("0.9", x, x, d)
    with pytest.raises(ValueError, match="gamma"):
        GAE(gamma=1.5, lmbda=0.9)
    with pytest.raises(ValueError, match="lmbda"):
        GAE(gamma=0.9, lmbda=-0.1)


# ------------------------------------------------------------------ estimator modules


def _td(batch, *, with_values=True, terminated=True):
    r, v, nv, done, term = batch
    data = {"next": {"reward": r, "done": done, "observation": torch.randn(*r.shape[:2], 3)},
            "observation": torch.randn(*r.shape[:2], 3)}
    if terminated:
        data["next"]["terminated"] = term
    if with_values:
        data["state_value"] = v
        data["next"]["state_value"] = nv
    return TensorDict(data, batch_size=r.shape[:2])


def test_gae_module_writes_advantage_and_target(batch):
    td = _td(batch)
    GAE(gamma=0.9, lmbda=0.8)(td)
    r, v, nv, done, term = batch
    adv, target = generalized_advantage_estimate(0.9, 0.8, v, nv, r, done, term)
    torch.testing.assert_close(td["advantage"], adv)
    torch.testing.assert_close(td["value_target"], target)


def test_gae_module_average_gae(batch):
    td = _td(batch)
    GAE(gamma=0.9, lmbda=0.8, average_gae=True)(td)
    assert abs(td["advantage"].mean().item()) < 1e-5
    assert abs(td["advantage"].std().item() - 1.0) < 1e-4


def test_estimator_calls_value_network_when_values_missing(batch):
    torch.manual_seed(0)
    critic = TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["state_value"])
    td = _td(batch, with_values=False)
    GAE(gamma=0.9, lmbda=0.8, value_network=critic)(td)
    assert "state_value" in td.keys() and ("next", "state_value") in td.keys(True)
    with torch.no_grad():
        v = critic.module(td["observation"])
        nv = critic.module(td["next", "observation"])
    r, _, _, done, term = batch
    adv, _ = generalized_advantage_estimate(0.9, 0.8, v, nv, r, done, term)
    torch.testing.assert_close(td["advantage"], adv)
    assert not td["advantage"].requires_grad  # not differentiable by default


def test_estimator_without_values_or_network_names_the_key(batch):
    td = _td(batch, with_values=False)
    with pytest.raises(KeyError, match="state_value"):
        GAE(gamma=0.9, lmbda=0.8)(td)
    del td["next", "reward"]
    with pytest.raises(KeyError, match="reward"):
        TD0Estimator(gamma=0.9).value_estimate(td)


def test_td_estimators_modules(batch):
    r, v, nv, done, term = batch
    td = _td(batch)
    torch.testing.assert_close(TD0Estimator(gamma=0.7).value_estimate(td),
                               td0_return_estimate(0.7, nv, r, term))
    torch.testing.assert_close(TD1Estimator(gamma=0.7).value_estimate(td),
                               td1_return_estimate(0.7, nv, r, done, term))
    est = TDLambdaEstimator(gamma=0.7, lmbda=0.4)
    est(td)
    expected = td_lambda_return_estimate(0.7, 0.4, nv, r, done, term)
    torch.testing.assert_close(td["value_target"], expected)
    torch.testing.assert_close(td["advantage"], expected - v)


def test_estimator_terminated_fallback(batch):
    r, _, nv, done, _ = batch
    td = _td(batch, terminated=False)
    torch.testing.assert_close(TD1Estimator(gamma=0.7).value_estimate(td),
                               td1_return_estimate(0.7, nv, r, done, done))


def test_estimator_set_keys(batch):
    r, _, nv, _done, term = batch
    td = _td(batch)
    td.rename_key_(("next", "reward"), ("next", "rew"))
    est = TD0Estimator(gamma=0.5).set_keys(reward="rew", value_target="vt")
    est(td)
    torch.testing.assert_close(td["vt"], td0_return_estimate(0.5, nv, r, term))
    with pytest.raises(ValueError, match="no key"):
        est.set_keys(nope="x")


def test_estimator_needs_time_dim():
    td = TensorDict({"state_value": torch.zeros(1), "next": {
        "reward": torch.zeros(1), "done": torch.zeros(1, dtype=torch.bool),
        "state_value": torch.zeros(1)}}, [])
    with pytest.raises(ValueError, match="time"):
        GAE(gamma=0.9, lmbda=0.9)(td)


def test_make_estimator():
    assert isinstance(make_estimator(ValueEstimators.GAE, gamma=0.9, lmbda=0.9), GAE)
    assert isinstance(make_estimator("TD0", gamma=0.9), TD0Estimator)
    assert isinstance(make_estimator("MAGAE", gamma=0.9, lmbda=0.9), MultiAgentGAE)
    assert isinstance(make_estimator("TD(lambda)", gamma=0.9, lmbda=0.5), TDLambdaEstimator)
    with pytest.raises(ValueError, match="lmbda"):
        make_estimator(ValueEstimators.GAE, gamma=0.9)
    with pytest.raises(ValueError, match="lmbda"):
        make_estimator(ValueEstimators.TD0, gamma=0.9, lmbda=0.5)
    with pytest.raises(ValueError, match="unknown"):
        make_estimator("TD2", gamma=0.9)


def test_scan_is_differentiable():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(2, 9, generator=g, requires_grad=True)
    c = torch.rand(2, 9, generator=g)
    reverse_linear_scan(a, c).sum().backward()
    # d(sum z)/d a[t] = sum over k <= t of prod(c[k..t-1])
    expected = torch.zeros(2, 9)
    for b in range(2):
        for t in range(9):
            total, prod = 0.0, 1.0
            for k in range(t, -1, -1):
                if k < t:
                    prod *= c[b, k].item()
                total += prod
            expected[b, t] = total
    torch.testing.assert_close(a.grad, expected)


def test_differentiable_estimator_sends_gradients_to_the_critic(batch):
    critic = TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["state_value"])
    td = _td(batch, with_values=False)
    GAE(gamma=0.9, lmbda=0.8, value_network=critic, differentiable=True)(td)
    td["value_target"].sum().backward()
    assert critic.module.weight.grad is not None


def test_multiagent_gae_broadcasts_team_signals_by_hand():
    # 2 steps, 2 agents, gamma=0.5, lmbda=0.5; the episode ends (terminates) at step 1
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).unsqueeze(-1)
    next_values = torch.tensor([[3.0, 4.0], [9.0, 9.0]]).unsqueeze(-1)
    td = TensorDict({"state_value": values, "next": {
        "reward": torch.tensor([[1.0], [2.0]]), "state_value": next_values,
        "done": torch.tensor([[False], [True]])}}, [2])
    MultiAgentGAE(gamma=0.5, lmbda=0.5)(td)
    # step 1: delta = 2 - V(s1) (no bootstrap) = [-1, -2]
    # step 0: delta = 1 + 0.5 * V(s1) - V(s0) = [1.5, 1.0]; A0 = delta + 0.25 * A1
    expected = torch.tensor([[1.5 - 0.25, 1.0 - 0.5], [-1.0, -2.0]]).unsqueeze(-1)
    torch.testing.assert_close(td["advantage"], expected)
    torch.testing.assert_close(td["value_target"], expected + values)


def test_multiagent_gae_per_agent_rewards_and_bad_shapes():
    values = torch.zeros(3, 2, 1)
    per_agent = TensorDict({"state_value": values, "next": {
        "reward": torch.ones(3, 2, 1), "done": torch.zeros(3, 2, 1, dtype=torch.bool),
        "state_value": values}}, [3])
    team = per_agent.clone()
    team["next", "reward"] = torch.ones(3, 1)
    team["next", "done"] = torch.zeros(3, 1, dtype=torch.bool)
    est = MultiAgentGAE(gamma=0.9, lmbda=0.9)
    torch.testing.assert_close(est(per_agent)["advantage"], est(team)["advantage"])
    bad = team.clone()
    bad["next", "reward"] = torch.ones(3)
    with pytest.raises(ValueError, match="without the agent dim"):
        est(bad)
    with pytest.raises(TypeError, match="agent_dim"):
        MultiAgentGAE(gamma=0.9, lmbda=0.9, agent_dim=1.5)


_ESTIMATORS = {
    "td0": lambda: TD0Estimator(gamma=0.7),
    "td1": lambda: TD1Estimator(gamma=0.7),
    "td_lambda": lambda: TDLambdaEstimator(gamma=0.7, lmbda=0.4),
    "gae": lambda: GAE(gamma=0.7, lmbda=0.4),
    "multiagent_gae": lambda: MultiAgentGAE(gamma=0.7, lmbda=0.4),
}


@pytest.mark.parametrize("name", sorted(_ESTIMATORS))
def test_next_value_argument_equals_the_next_value_entry(batch, name):
    """TorchRL's ``value_estimate(td, next_value=...)``: the given V(s') gives the targets the
    ``("next", "state_value")`` entry gives, and ``td`` is left as it was."""
    est = _ESTIMATORS[name]()
    expected = est.value_estimate(_td(batch))
    td = _td(batch)
    given = td["next", "state_value"] * 1.0
    del td["next", "state_value"]
    keys = set(td.keys(True, True))
    torch.testing.assert_close(est.value_estimate(td, next_value=given), expected)
    assert set(td.keys(True, True)) == keys
    # another V(s') gives other targets
    assert not torch.allclose(est.value_estimate(td, next_value=given + 1.0), expected)


def test_next_value_wins_over_the_entry_and_the_value_network(batch):
    r, _, nv, _, term = batch
    critic = TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["state_value"])
    td = _td(batch, with_values=False)
    target = TD0Estimator(gamma=0.7, value_network=critic).value_estimate(td, next_value=nv)
    torch.testing.assert_close(target, td0_return_estimate(0.7, nv, r, term))
    assert ("next", "state_value") not in td.keys(True)  # the network was not called
    td = _td(batch)  # an entry that disagrees with the argument
    target = TD0Estimator(gamma=0.7).value_estimate(td, next_value=nv + 2.0)
    torch.testing.assert_close(target, td0_return_estimate(0.7, nv + 2.0, r, term))


def test_next_value_argument_bad_input(batch):
    td = _td(batch, with_values=False)
    with pytest.raises(TypeError, match=r"next_value must be a torch\.Tensor, found list"):
        TD0Estimator(gamma=0.7).value_estimate(td, next_value=[0.0])
    with pytest.raises(ValueError, match=r"next_state_value has shape \(2, 12\)"):
        TD0Estimator(gamma=0.7).value_estimate(td, next_value=torch.zeros(2, 12))
