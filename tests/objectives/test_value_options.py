"""The value estimators' TorchRL keyword arguments: skip_existing, the deprecated key
arguments, device, time_dim (constructor and call), shifted, average_rewards, vectorized and
the params / target_params of a call."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.objectives.value import GAE, TD0Estimator, TD1Estimator, TDLambdaEstimator


def _critic(bias=0.0):
    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.fill_(bias)
    return TensorDictModule(lin, ["obs"], ["state_value"])


def _batch(T=4, B=None):
    shape = (T,) if B is None else (B, T)
    done = torch.zeros(*shape, 1, dtype=torch.bool)
    return TensorDict({"obs": torch.randn(*shape, 2), "next": {
        "obs": torch.randn(*shape, 2), "reward": torch.ones(*shape, 1), "done": done,
        "terminated": done.clone()}}, list(shape))


def test_values_are_recomputed_by_default_and_kept_with_skip_existing():
    critic = _critic(1.0)
    gae = GAE(gamma=0.9, lmbda=0.9, value_network=critic)
    td = gae(_batch())
    assert torch.allclose(td["state_value"], torch.ones(4, 1))
    with torch.no_grad():
        critic.module.bias.fill_(2.0)
    td = gae(td)  # a second epoch sees the critic's new weights (TorchRL's default)
    assert torch.allclose(td["state_value"], torch.full((4, 1), 2.0))
    keep = GAE(gamma=0.9, lmbda=0.9, value_network=critic, skip_existing=True)
    td["state_value"] = torch.zeros(4, 1)
    assert torch.allclose(keep(td)["state_value"], torch.zeros(4, 1))
    with pytest.raises(TypeError, match="skip_existing must be a bool"):
        GAE(gamma=0.9, lmbda=0.9, skip_existing="yes")


def test_without_a_network_values_are_read():
    td = _batch()
    td["state_value"] = torch.zeros(4, 1)
    td["next", "state_value"] = torch.zeros(4, 1)
    out = TD0Estimator(gamma=0.5)(td)
    assert torch.allclose(out["value_target"], torch.ones(4, 1))


def test_deprecated_key_arguments_rename_the_keys():
    est = GAE(gamma=0.9, lmbda=0.9, value_network=TensorDictModule(
        nn.Linear(2, 1), ["obs"], ["v"]), advantage_key="adv", value_target_key="vt",
        value_key="v")
    td = est(_batch())
    assert {"adv", "vt", "v"} <= set(td.keys())
    assert (est.tensor_keys.advantage, est.tensor_keys.value) == ("adv", "v")


def test_time_dim_in_the_constructor_and_the_call():
    critic = _critic(0.5)
    td = _batch(T=5, B=3)  # [B, T]: time is the last dim
    ref = GAE(gamma=0.9, lmbda=0.8, value_network=critic)(td.clone())["advantage"]
    swapped = td.clone().transpose(0, 1)  # [T, B]
    est = GAE(gamma=0.9, lmbda=0.8, value_network=critic, time_dim=0)
    torch.testing.assert_close(est(swapped.clone())["advantage"].transpose(0, 1), ref)
    plain = GAE(gamma=0.9, lmbda=0.8, value_network=critic)
    torch.testing.assert_close(plain(swapped.clone(), time_dim=0)["advantage"].transpose(0, 1), ref)
    with pytest.raises(ValueError, match="time_dim=2 is not a batch dim"):
        plain(swapped.clone(), time_dim=2)
    with pytest.raises(TypeError, match="time_dim must be an int"):
        GAE(gamma=0.9, lmbda=0.8, time_dim=1.0)


def test_params_and_target_params_of_a_call():
    critic = _critic(1.0)
    est = TD0Estimator(gamma=0.5, value_network=critic)
    params = TensorDict.from_module(critic)
    target = params.clone().apply(lambda t: t.detach().clone().fill_(3.0))
    td = est(_batch(), target_params=target)
    # r + gamma * V'(s') with V' from the target parameters: 1 + 0.5 * 3 (weights are 3
    # too: obs terms enter), so compare with a critic built from those parameters
    with target.to_module(critic):
        expected_next = critic(_batch().get("next").clone().set("obs", td["next", "obs"]))["state_value"]
    torch.testing.assert_close(td["value_target"], 1 + 0.5 * expected_next)
    torch.testing.assert_close(td["state_value"], torch.ones(4, 1))  # params: the module's own
    assert torch.allclose(critic.module.bias, torch.ones(1))  # the module is left as it was


def test_average_rewards_standardises_the_rewards():
    td = _batch()
    td["next", "reward"] = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    td["next", "state_value"] = torch.zeros(4, 1)
    td["state_value"] = torch.zeros(4, 1)
    out = TD0Estimator(gamma=0.9, average_rewards=True)(td)
    r = td["next", "reward"]
    torch.testing.assert_close(out["value_target"], (r - r.mean()) / r.std())
    for cls, kw in ((TD1Estimator, {}), (TDLambdaEstimator, {"lmbda": 0.5})):
        assert cls(gamma=0.9, average_rewards=True, **kw).average_rewards is True
    with pytest.raises(TypeError, match="average_rewards must be a bool"):
        TD0Estimator(gamma=0.9, average_rewards=1)


def _stream(B=2, T=6):
    """Rows of one continuing stream: each step's next observation is the following step's
    observation, except after a done (a reset); row 0 is truncated at step 2 (not
    terminated), row 1 terminated at step 3."""
    torch.manual_seed(0)
    obs = torch.randn(B, T + 1, 2)
    nxt = obs[:, 1:].clone()
    done = torch.zeros(B, T, 1, dtype=torch.bool)
    terminated = done.clone()
    done[0, 2] = True
    done[1, 3] = terminated[1, 3] = True
    nxt[0, 2] = torch.tensor([9.0, -9.0])  # the truncated episode's last state, not the reset
    nxt[1, 3] = torch.tensor([7.0, 7.0])
    return TensorDict({"obs": obs[:, :T], "next": {
        "obs": nxt, "reward": torch.randn(B, T, 1), "done": done,
        "terminated": terminated}}, [B, T])


def test_shifted_makes_one_call_and_equals_two_calls_for_a_markov_critic():
    torch.manual_seed(1)
    critic = TensorDictModule(nn.Linear(2, 1), ["obs"], ["state_value"])
    calls = []
    critic.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].batch_size)))
    two = GAE(gamma=0.9, lmbda=0.8, value_network=critic)(_stream())
    calls.clear()
    one = GAE(gamma=0.9, lmbda=0.8, value_network=critic, shifted=True)(_stream())
    # one call over [2, 6 + 1] steps, one for the truncation inside row 0
    assert calls == [(2, 7), (1, 1)]
    for key in ("advantage", "value_target", "state_value"):
        torch.testing.assert_close(one[key], two[key])
    used = ~one["next", "terminated"]  # a terminal state's value is not used (nor computed)
    torch.testing.assert_close(one["next", "state_value"][used], two["next", "state_value"][used])
    with pytest.raises(ValueError, match="one set of parameters: found distinct target_params"):
        GAE(gamma=0.9, lmbda=0.8, value_network=critic, shifted=True)(
            _stream(), target_params=TensorDict.from_module(critic).clone())
    with pytest.raises(TypeError, match="shifted must be a bool, found str"):
        GAE(gamma=0.9, lmbda=0.8, shifted="yes")


def test_shifted_values_after_an_unseen_done_are_the_following_step_s():
    critic = TensorDictModule(nn.Linear(2, 1), ["obs"], ["state_value"])
    td = _stream()
    td.set(("next", "trial_end"), torch.zeros(2, 6, 1, dtype=torch.bool))
    est = GAE(gamma=0.9, lmbda=0.8, value_network=critic, shifted=True)
    est.set_keys(done="trial_end", terminated="trial_end")
    est(td)
    with torch.no_grad():
        following = critic(td.select("obs").clone())["state_value"]
    # an episode end the estimator does not see: the value of the next input (the reset)
    torch.testing.assert_close(td["next", "state_value"][:, :-1], following[:, 1:])


def test_shifted_device_and_vectorized():
    est = GAE(gamma=torch.tensor(0.9), lmbda=0.9, device="cpu", vectorized=False)
    assert est.gamma.device == torch.device("cpu") and est.vectorized is True
    with pytest.raises(TypeError, match="vectorized must be a bool"):
        TDLambdaEstimator(gamma=0.9, lmbda=0.9, vectorized="no")
