"""ActionDiscretizer: bin values per sampling strategy, per-dim counts, one-hot actions, the
continuous action kept as a state entry, a custom grid, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.data.specs import Bounded, Categorical, MultiCategorical, MultiOneHot, OneHot
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.transforms import ActionDiscretizer, TransformedEnv
from streamrl.envs.utils import check_env_specs

S = ActionDiscretizer.SamplingStrategy


def _sent(env, action):
    td = env.reset()
    td[env.action_key] = action
    env.step(td)
    return env.base_env.last_action


@pytest.mark.parametrize(
    "sampling, expected",
    [
        (None, [-0.75, -0.25, 0.25, 0.75]),
        (S.LOW, [-1.0, -0.5, 0.0, 0.5]),
        (S.HIGH, [-0.5, 0.0, 0.5, 1.0]),
    ],
)
def test_bin_values_per_strategy(counting_env, sampling, expected):
    env = TransformedEnv(counting_env(), ActionDiscretizer(4, sampling=sampling))
    assert isinstance(env.action_spec, Categorical) and env.action_spec.n == 4
    got = [_sent(env, torch.tensor([k])).item() for k in range(4)]
    assert got == pytest.approx(expected)


def test_random_strategy_stays_in_its_bin(counting_env):
    env = TransformedEnv(counting_env(batch_size=(200,)), ActionDiscretizer(4, sampling=S.RANDOM))
    sent = _sent(env, torch.full((200, 1), 2))
    assert bool(((sent >= 0.0) & (sent <= 0.5)).all()) and sent.unique().numel() > 1


def _two_dim_env(counting_env):
    env = counting_env()
    env.action_spec = Bounded(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 10.0]), shape=(2,))
    return env


def test_per_dim_counts_and_one_hot(counting_env):
    env = TransformedEnv(_two_dim_env(counting_env), ActionDiscretizer(torch.tensor([2, 3])))
    assert isinstance(env.action_spec, MultiCategorical)
    assert env.action_spec.nvec.tolist() == [2, 3]
    assert _sent(env, torch.tensor([1, 2])).tolist() == pytest.approx([0.5, 25 / 3])
    env = TransformedEnv(_two_dim_env(counting_env), ActionDiscretizer([2, 3], categorical=False))
    assert isinstance(env.action_spec, MultiOneHot) and env.action_spec.shape == (5,)
    one_hot = torch.tensor([0, 1, 0, 0, 1], dtype=torch.bool)  # the spec's dtype (bool)
    assert _sent(env, one_hot).tolist() == pytest.approx([0.5, 25 / 3])
    check_env_specs(env)
    env = TransformedEnv(counting_env(batch_size=(2,)), ActionDiscretizer(3, categorical=False))
    assert isinstance(env.action_spec, OneHot) and env.action_spec.shape == (2, 3)
    sent = _sent(env, torch.tensor([[1, 0, 0], [0, 0, 1]], dtype=torch.bool))
    assert sent.reshape(-1).tolist() == pytest.approx([-2 / 3, 2 / 3])


def test_out_action_key_keeps_the_continuous_action_as_state(counting_env):
    env = TransformedEnv(counting_env(), ActionDiscretizer(2, out_action_key="bin"))
    assert list(env.full_action_spec.keys()) == ["bin"]
    assert isinstance(env.full_state_spec["action"], Bounded)
    r = env.rollout(3, policy=lambda td: td.set("bin", torch.tensor([1])))
    assert r["action"].squeeze(-1).tolist() == [0.5, 0.5, 0.5]
    assert r["bin"].dtype == torch.int64
    assert env.base_env.last_action.tolist() == [0.5]
    assert "action" not in r["next"].keys()
    check_env_specs(env)


def test_custom_arange_changes_the_grid(counting_env):
    class EdgesOnly(ActionDiscretizer):
        def custom_arange(self, nint, device):
            return torch.tensor([0.0, 0.5], dtype=torch.float64, device=device)

    env = TransformedEnv(counting_env(), EdgesOnly(2, sampling=S.LOW))
    assert [_sent(env, torch.tensor([k])).item() for k in range(2)] == [-1.0, 0.0]


def test_bad_input(counting_env):
    with pytest.raises(ValueError, match="positive"):
        ActionDiscretizer(0)
    with pytest.raises(TypeError, match="tensor of ints"):
        ActionDiscretizer(torch.tensor([2.5]))
    with pytest.raises(ValueError, match="SamplingStrategy"):
        ActionDiscretizer(3, sampling=9)
    with pytest.raises(ValueError, match="one key"):
        ActionDiscretizer(3, action_key=["a", "b"])
    with pytest.raises(ValueError, match="TransformedEnv"):
        ActionDiscretizer(3).inv(TensorDict({"action": torch.tensor([1])}))
    env = TransformedEnv(_two_dim_env(counting_env), ActionDiscretizer([2, 3, 4]))
    with pytest.raises(ValueError, match="3 counts, the action 'action' has 2 dims"):
        _ = env.action_spec
    env = TransformedEnv(GymEnv("CartPole-v1"), ActionDiscretizer(3))
    with pytest.raises(TypeError, match="Bounded floating-point"):
        _ = env.action_spec
    env.close()
    env = TransformedEnv(counting_env(), ActionDiscretizer(3))
    _ = env.action_spec
    with pytest.raises(ValueError, match="out of range"):
        env.transform.inv(TensorDict({"action": torch.tensor([3])}))
    with pytest.raises(ValueError, match="last dim 1"):
        env.transform.inv(TensorDict({"action": torch.tensor([0, 1])}))


class TestActionDiscretizerContract(TransformContractTests):
    def make_transform(self):
        return ActionDiscretizer(5)


class TestActionDiscretizerOneHotStateContract(TransformContractTests):
    def make_transform(self):
        return ActionDiscretizer(3, out_action_key="bin", categorical=False, sampling=S.RANDOM)
