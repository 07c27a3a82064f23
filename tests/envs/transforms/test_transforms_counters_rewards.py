"""StepCounter, InitTracker, RewardSum, RewardScaling, RewardClipping."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv

from streamrl.data.specs import Bounded, Unbounded
from streamrl.envs.transforms import (
    Compose,
    InitTracker,
    RewardClipping,
    RewardScaling,
    RewardSum,
    StepCounter,
    TransformedEnv,
)
from streamrl.envs.utils import check_env_specs


# ---------------------------------------------------------------------------- StepCounter
def test_step_counter_counts_and_resets(counting_env):
    env = TransformedEnv(counting_env(max_count=3), StepCounter())
    td = env.reset()
    assert td["step_count"].tolist() == [0] and td["step_count"].dtype == torch.int64
    roll = env.rollout(7, break_when_any_done=False)
    # steps 1, 2, 3 (done, reset), 1, 2, 3 (done, reset), 1
    assert roll["next", "step_count"].squeeze(-1).tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert roll["step_count"].squeeze(-1).tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_step_counter_max_steps_truncates(counting_env):
    env = TransformedEnv(counting_env(max_count=100), StepCounter(max_steps=4))
    roll = env.rollout(10)
    assert roll.shape == (4,)
    assert roll["next", "truncated"].squeeze(-1).tolist() == [False, False, False, True]
    assert roll["next", "done"].squeeze(-1).tolist() == [False, False, False, True]
    assert not roll["next", "terminated"].any()
    roll = env.rollout(9, break_when_any_done=False)
    assert roll["next", "step_count"].squeeze(-1).tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 1]


def test_step_counter_update_done_false(counting_env):
    env = TransformedEnv(counting_env(max_count=100), StepCounter(max_steps=2, update_done=False))
    td = env.rand_step(env.rand_step(env.reset())["next"].clone())
    assert td["next", "truncated"].item() and not td["next", "done"].item()


def test_step_counter_batched_partial_reset(counting_env):
    base = counting_env(batch_size=(2,), max_count=100)
    env = TransformedEnv(base, StepCounter())
    td = env.reset()
    for _ in range(3):
        td = env.rand_step(td)["next"].clone()
    assert td["step_count"].squeeze(-1).tolist() == [3, 3]
    td["_reset"] = torch.tensor([[True], [False]])
    out = env.reset(td)
    assert out["step_count"].squeeze(-1).tolist() == [0, 3]
    assert base.count.squeeze(-1).tolist() == [0, 3]


def test_step_counter_batched_sub_envs_truncate_independently(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,), max_count=100), StepCounter(max_steps=3))
    td = env.reset()
    td = env.rand_step(td)["next"].clone()
    td["_reset"] = torch.tensor([[True], [False]])
    td = env.reset(td)  # sub-env 0 restarts: counts [0, 1]
    counts, truncs = [], []
    for _ in range(3):
        td = env.rand_step(td)["next"].clone()
        counts.append(td["step_count"].squeeze(-1).tolist())
        truncs.append(td["truncated"].squeeze(-1).tolist())
    assert counts == [[1, 2], [2, 3], [3, 4]]
    assert truncs == [[False, False], [False, True], [True, True]]


def test_step_counter_spec_and_bad_args(counting_env):
    env = TransformedEnv(counting_env(batch_size=(4,)), StepCounter(max_steps=10))
    spec = env.observation_spec["step_count"]
    assert spec.shape == (4, 1) and spec.dtype == torch.int64
    assert spec.is_in(torch.zeros(4, 1, dtype=torch.int64))
    assert not spec.is_in(torch.full((4, 1), 11))
    check_env_specs(env, steps=12)
    with pytest.raises(ValueError, match="max_steps"):
        StepCounter(max_steps=0)
    with pytest.raises(NotImplementedError, match="TransformedEnv"):
        StepCounter()(TensorDict({}))


def test_step_counter_adds_truncated_when_missing(counting_env):
    base = counting_env()
    base.full_done_spec = base.full_done_spec.exclude("truncated")
    env = TransformedEnv(base, StepCounter(max_steps=3))
    assert "truncated" in env.full_done_spec.keys()


# ---------------------------------------------------------------------------- InitTracker
def test_init_tracker(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,), max_count=2), InitTracker())
    td = env.reset()
    assert td["is_init"].all() and td["is_init"].shape == (2, 1)
    roll = env.rollout(4, break_when_any_done=False)
    # reset, step, step(done)->reset, step: is_init at the root marks the reset states
    assert roll["is_init"][0].squeeze(-1).tolist() == [True, False, True, False]
    assert not roll["next", "is_init"].any()
    td["_reset"] = torch.tensor([[False], [True]])
    assert env.reset(td)["is_init"].squeeze(-1).tolist() == [False, True]
    check_env_specs(env)
    assert env.observation_spec["is_init"].dtype == torch.bool


# ---------------------------------------------------------------------------- RewardSum
def test_reward_sum_episode_return(counting_env):
    env = TransformedEnv(counting_env(max_count=3), RewardSum())
    assert env.reset()["episode_reward"].tolist() == [0.0]
    roll = env.rollout(5, break_when_any_done=False)
    # rewards 1, 2, 3 | 1, 2
    assert roll["next", "episode_reward"].squeeze(-1).tolist() == [1.0, 3.0, 6.0, 1.0, 3.0]
    assert roll["episode_reward"].squeeze(-1).tolist() == [0.0, 1.0, 3.0, 0.0, 1.0]
    spec = env.observation_spec["episode_reward"]
    assert spec.shape == (1,) and spec.dtype == torch.float32
    check_env_specs(env)


def test_reward_sum_after_scaling_and_partial_reset(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), max_count=100), Compose(RewardScaling(0.0, 0.5), RewardSum())
    )
    td = env.reset()
    for _ in range(2):
        td = env.rand_step(td)["next"].clone()
    assert td["episode_reward"].squeeze(-1).tolist() == [1.5, 1.5]  # 0.5 + 1.0
    td["_reset"] = torch.tensor([[False], [True]])
    assert env.reset(td)["episode_reward"].squeeze(-1).tolist() == [1.5, 0.0]


def test_reward_sum_errors(counting_env):
    with pytest.raises(KeyError, match="nope"):
        _ = TransformedEnv(counting_env(), RewardSum(in_keys=["nope"])).observation_spec
    with pytest.raises(ValueError, match="must be named 'time'"):
        RewardSum()(TensorDict({"reward": torch.ones(2, 1)}, [2]))
    t = RewardSum(in_keys=["r1", ("agent", "reward")])
    assert t.out_keys == ["episode_r1", ("agent", "episode_reward")]
    with pytest.raises(ValueError, match="same number of input and output keys"):
        RewardSum(in_keys=["r1", "r2"], out_keys=["s1"])
    with pytest.raises(ValueError, match="Could not match the env reset_keys"):
        RewardSum(in_keys=["r1", "r2"], reset_keys=["_reset"])
    with pytest.raises(TypeError, match="reward_spec must be a bool"):
        RewardSum(reward_spec="yes")
    # reset keys checked against the env's rewards once they are known
    env = TransformedEnv(counting_env(), RewardSum(reset_keys=["_reset", "_reset"]))
    with pytest.raises(ValueError, match="Could not match the env reset_keys"):
        _ = env.observation_spec


def test_reward_sum_outside_an_env_sums_along_time():
    td = TensorDict({"next": {"reward": torch.tensor([[1.0], [2.0], [3.0]])}}, [3])
    td.names = ["time"]
    out = RewardSum(in_keys=[("next", "reward")], out_keys=[("next", "ret")])(td)
    assert out["next", "ret"].squeeze(-1).tolist() == [1.0, 3.0, 6.0]
    two = TensorDict({"reward": torch.ones(2, 3, 1)}, [2, 3], names=[None, "time"])
    assert RewardSum()(two)["episode_reward"][1].squeeze(-1).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(KeyError, match="nope"):
        RewardSum(in_keys=["nope"])(two)


def test_reward_sum_as_a_reward(counting_env):
    env = TransformedEnv(counting_env(max_count=3), RewardSum(reward_spec=True))
    assert env.reward_keys == ["reward", "episode_reward"]
    assert "episode_reward" not in env.observation_spec.keys()
    assert "episode_reward" in env.full_state_spec.keys()  # carried to the next step
    check_env_specs(env)
    roll = env.rollout(4, break_when_any_done=False)
    assert roll["next", "episode_reward"].squeeze(-1).tolist() == [1.0, 3.0, 6.0, 1.0]


class _TwoRewardEnv(CountingEnv):
    """CountingEnv with a second reward, ``("bonus", "r")`` = 10 * count."""

    def __init__(self, **kwargs):
        from streamrl.data.specs import Composite

        super().__init__(**kwargs)
        b = self.batch_size
        self.full_reward_spec = Composite(
            reward=Unbounded((*b, 1)), bonus=Composite(r=Unbounded((*b, 1)), shape=b), shape=b
        )

    def _step(self, tensordict):
        out = super()._step(tensordict)
        out.set(("bonus", "r"), 10 * out["reward"])
        return out


def test_reward_sum_learns_every_reward_of_the_env_and_reset_keys():
    t = RewardSum(reset_keys=["_reset", "_reset"])
    env = TransformedEnv(_TwoRewardEnv(batch_size=(2,), max_count=2), t)
    assert t.in_keys == ["reward"]  # learnt from the env's reward spec when it is read
    _ = env.observation_spec
    assert t.in_keys == ["reward", ("bonus", "r")]
    assert t.out_keys == ["episode_reward", ("bonus", "episode_r")]
    check_env_specs(env)
    roll = env.rollout(3, break_when_any_done=False)
    assert roll["next", "episode_reward"][0].squeeze(-1).tolist() == [1.0, 3.0, 1.0]
    assert roll["next", "bonus", "episode_r"][1].squeeze(-1).tolist() == [10.0, 30.0, 10.0]


# ---------------------------------------------------------------------------- scaling/clipping
def test_reward_scaling_values():
    td = TensorDict({"reward": torch.tensor([1.0, 3.0])}, [2])
    torch.testing.assert_close(
        RewardScaling(1.0, 2.0)(td.clone())["reward"], torch.tensor([3.0, 7.0])
    )
    torch.testing.assert_close(
        RewardScaling(1.0, 2.0, standard_normal=True)(td.clone())["reward"],
        torch.tensor([0.0, 1.0]),
    )
    with pytest.raises(ValueError, match="non-zero"):
        RewardScaling(0.0, 0.0)


def test_reward_scaling_state_dict_and_spec():
    t = RewardScaling(1.0, 2.0)
    t2 = RewardScaling(0.0, 1.0)
    t2.load_state_dict(t.state_dict())
    torch.testing.assert_close(
        t2(TensorDict({"reward": torch.ones(1)}))["reward"], torch.tensor([3.0])
    )
    spec = t._transform_spec(Bounded(-1.0, 1.0, shape=(1,)))
    assert spec.low.item() == -1.0 and spec.high.item() == 3.0
    assert isinstance(t._transform_spec(Unbounded((1,))), Unbounded)


def test_reward_clipping_values_and_spec(counting_env):
    td = TensorDict({"reward": torch.tensor([-3.0, 0.5, 2.0])}, [3])
    out = RewardClipping(-1.0, 1.0)(td)["reward"]
    torch.testing.assert_close(out, torch.tensor([-1.0, 0.5, 1.0]))
    only_max = RewardClipping(clamp_max=0.0)(TensorDict({"reward": torch.tensor([-5.0, 5.0])}))
    torch.testing.assert_close(only_max["reward"], torch.tensor([-5.0, 0.0]))
    env = TransformedEnv(counting_env(), RewardClipping(0.0, 2.5))
    spec = env.reward_spec
    assert isinstance(spec, Bounded) and spec.high.item() == 2.5
    roll = env.rollout(4)
    assert roll["next", "reward"].squeeze(-1).tolist() == [1.0, 2.0, 2.5, 2.5]
    assert spec.is_in(roll["next", "reward"])
    with pytest.raises(ValueError, match="clamp_min"):
        RewardClipping(2.0, 1.0)
    with pytest.raises(ValueError):
        RewardClipping()


def test_reward_sum_zeros_follow_the_reward_spec(counting_env):
    from streamrl.data.specs import Composite

    base = counting_env()
    base.full_reward_spec = Composite(
        reward=Unbounded((2,), dtype=torch.float64), shape=base.batch_size
    )
    env = TransformedEnv(base, RewardSum())
    # no spec was read before this reset: the transform still writes the reward's layout
    out = env.reset()["episode_reward"]
    assert out.shape == (2,) and out.dtype == torch.float64 and not out.any()


# ---------------------------------------------------------------------------- contract
class TestRewardSumContract(TransformContractTests):
    def make_transform(self):
        return RewardSum()


class TestRewardSumAsRewardContract(TransformContractTests):
    def make_transform(self):
        return RewardSum(reward_spec=True)
