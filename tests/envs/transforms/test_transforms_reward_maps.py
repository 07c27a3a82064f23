"""Crop, BinarizeReward, LineariseRewards, TargetReturn, Reward2GoTransform: values, specs,
resets, bad input and the transform contract."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.data.specs import Bounded, Categorical, Composite, Unbounded
from streamrl.envs import EnvBase, check_env_specs
from streamrl.envs.transforms import (
    BinarizeReward,
    Compose,
    Crop,
    LineariseRewards,
    Reward2GoTransform,
    RewardScaling,
    TargetReturn,
    ToTensorImage,
    TransformedEnv,
)


# ---------------------------------------------------------------------------- Crop
def test_crop_window_spec_and_bad_args(counting_env):
    env = TransformedEnv(
        # TorchRL's order: Crop(w, h) keeps w rows and h columns
        counting_env(pixels=True, hw=(8, 6)), Compose(ToTensorImage(), Crop(2, 4, top=5, left=1))
    )
    assert env.observation_spec["pixels"].shape == (3, 2, 4)
    assert env.rand_step(env.reset())["next", "pixels"].shape == (3, 2, 4)
    img = torch.arange(30.0).reshape(5, 6)
    assert Crop(2, top=3, left=4)(TensorDict({"pixels": img}))["pixels"].tolist() == [
        [22.0, 23.0],
        [28.0, 29.0],
    ]
    # past the bottom edge: zeros there (torchvision's crop, as TorchRL)
    assert Crop(3, 1, top=3, left=0)(TensorDict({"pixels": img}))["pixels"].tolist() == [
        [18.0], [24.0], [0.0]]
    with pytest.raises(ValueError, match="top must be"):
        Crop(2, top=-1)
    with pytest.raises(ValueError, match="w must be"):
        Crop(0)


# ---------------------------------------------------------------------------- Binarize
def test_binarize_reward(counting_env):
    env = TransformedEnv(counting_env(), BinarizeReward())
    spec = env.full_reward_spec["reward"]
    assert isinstance(spec, Bounded) and spec.dtype == torch.int8
    r = env.rollout(3)["next", "reward"]
    assert r.dtype == torch.int8 and r.squeeze(-1).tolist() == [1, 1, 1]
    td = BinarizeReward(["r"], ["b"])(TensorDict({"r": torch.tensor([0.0, 3.0, -1.0])}))
    # positive rewards map to 1, zero and negative ones to 0 (as TorchRL's BinarizeReward)
    assert td["b"].tolist() == [0, 1, 0] and td["r"].tolist() == [0.0, 3.0, -1.0]
    leaf = BinarizeReward().transform_reward_spec(Unbounded((2, 1)))  # a leaf spec, as TorchRL
    assert isinstance(leaf, Bounded) and leaf.shape == (2, 1) and leaf.dtype == torch.int8


# ---------------------------------------------------------------------------- Linearise
def test_linearise_rewards_values_and_specs():
    t = LineariseRewards(["reward"], weights=[2.0, -1.0])
    out = t(TensorDict({"reward": torch.tensor([[1.0, 3.0], [2.0, 0.5]])}, [2]))
    assert out["reward"].tolist() == [[-1.0], [3.5]]
    spec = t._transform_spec(Bounded(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 2.0]), (2,)))
    assert spec.shape == (1,) and spec.low.tolist() == [-2.0] and spec.high.tolist() == [3.0]
    assert LineariseRewards(["r"])._transform_spec(Unbounded((4, 3))).shape == (4, 1)
    ints = LineariseRewards(["r"])(TensorDict({"r": torch.tensor([1, 2])}))["r"]
    assert ints.dtype == torch.float32 and ints.tolist() == [3.0]
    with pytest.raises(ValueError, match="2 weights for a reward with 3"):
        t(TensorDict({"reward": torch.zeros(3)}))
    with pytest.raises(ValueError, match="needs in_keys"):
        LineariseRewards(None)
    with pytest.raises(ValueError, match=r"unidimensional tensor .*found shape \(1, 1\)"):
        LineariseRewards(["r"], weights=[[1.0]])
    with pytest.raises(NotImplementedError, match="discrete values is not supported"):
        LineariseRewards(["reward"]).transform_reward_spec(Categorical(2))


class _TwoObjectiveEnv(EnvBase):
    """Rewards of shape [2] (not [1]) and done flags given as python bools."""

    def __init__(self):
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded((1,)))
        self.action_spec = Unbounded((1,))
        self.reward_spec = Unbounded((2,))

    def _set_seed(self, seed):
        pass

    def _reset(self, tensordict):
        return TensorDict({"observation": torch.zeros(1)})

    def _step(self, tensordict):
        return TensorDict({"observation": torch.zeros(1), "reward": torch.tensor([1.0, 2.0]),
                           "done": False, "terminated": False})


def test_linearise_rewards_of_a_multi_objective_env_into_a_nested_key():
    env = TransformedEnv(_TwoObjectiveEnv(), Compose(
        LineariseRewards(["reward"], [("agent", "r")], weights=[1.0, -1.0]),
        RewardScaling(0.0, 2.0, in_keys=[("agent", "r")]),
    ))
    assert env.step_buffers(3) is None  # a [2] reward does not fit the flat buffers
    check_env_specs(env)
    roll = env.rollout(3)
    assert roll["next", "agent", "r"].squeeze(-1).tolist() == [-2.0, -2.0, -2.0]
    assert roll["next", "done"].shape == (3, 1)  # the python bools got their trailing dim
    assert "agent" not in roll.keys()  # no empty sub-tensordict left at the root


# ---------------------------------------------------------------------------- TargetReturn
def test_target_return_reduce_constant_and_resets(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,), max_count=2), TargetReturn(10.0))
    assert env.observation_spec["target_return"].shape == (2, 1)
    roll = env.rollout(3, break_when_any_done=False)
    # rewards 1, 2 then the episode restarts: 10 - 1, 10 - 1 - 2, reset to 10 then - 1
    assert roll["next", "target_return"][0].squeeze(-1).tolist() == [9.0, 7.0, 9.0]
    assert roll["target_return"][0].squeeze(-1).tolist() == [10.0, 9.0, 10.0]
    const = TransformedEnv(counting_env(), TargetReturn(5, mode="constant"))
    assert const.rollout(2)["next", "target_return"].squeeze(-1).tolist() == [5.0, 5.0]
    td = env.reset()
    td["target_return"] = torch.tensor([[1.0], [2.0]])
    td["_reset"] = torch.tensor([[False], [True]])
    assert env.reset(td)["target_return"].squeeze(-1).tolist() == [1.0, 10.0]
    plain = TargetReturn(3.0)(TensorDict({"reward": torch.zeros(4, 1)}, [4]))
    assert plain["target_return"].squeeze(-1).tolist() == [3.0] * 4


def test_target_return_bad_input(counting_env):
    with pytest.raises(ValueError, match="mode must be"):
        TargetReturn(1.0, mode="sum")
    with pytest.raises(TypeError, match="number"):
        TargetReturn("1")
    with pytest.raises(ValueError, match="not unique"):
        TargetReturn(1.0, in_keys=[("a", "r"), ("a", "s")])
    env = TransformedEnv(counting_env(), TargetReturn(1.0, in_keys=["nope"]))
    with pytest.raises(KeyError, match="not a reward entry"):
        _ = env.observation_spec


# ---------------------------------------------------------------------------- Reward2Go
def test_reward2go_batched_trajectories_and_buffer():
    reward = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]]).unsqueeze(-1)
    done = torch.tensor([[False, True, False, False], [False, False, False, True]]).unsqueeze(-1)
    td = TensorDict({"next": {"reward": reward, "done": done}}, [2, 4])
    out = Reward2GoTransform(gamma=1.0).inv(td)
    assert out["next", "reward"].squeeze(-1).tolist() == [
        [3.0, 2.0, 7.0, 4.0],
        [4.0, 3.0, 2.0, 1.0],
    ]
    assert td["next", "reward"].squeeze(-1)[0].tolist() == [1.0, 2.0, 3.0, 4.0]  # inv copies
    half = Reward2GoTransform(0.5, out_keys=["r2g"]).inv(td[1])
    assert half["r2g"].squeeze(-1).tolist() == [1.875, 1.75, 1.5, 1.0]
    same = Reward2GoTransform()(td.clone())  # the sample path leaves data as it is
    assert same["next", "reward"].squeeze(-1)[0].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_reward2go_time_dim_is_the_rewards_second_to_last():
    # a [2] TensorDict holding [2, 3, 1] rewards: time is the reward's dim -2, as in TorchRL
    reward = torch.ones(2, 3, 1)
    done = torch.tensor([[False, True, False], [False, False, False]])
    td = TensorDict({"next": {"reward": reward, "done": done}}, [2])
    out = Reward2GoTransform(out_keys=["r2g"]).inv(td)["r2g"].squeeze(-1)
    assert out.tolist() == [[2.0, 1.0, 1.0], [3.0, 2.0, 1.0]]
    with pytest.raises(ValueError, match=r"expected done flags of shape \(2, 3\)"):
        Reward2GoTransform().inv(TensorDict({"next": {"reward": reward,
                                                      "done": torch.zeros(2, 1)}}, [2]))


def test_reward2go_refuses_envs_and_bad_input(counting_env):
    with pytest.raises(ValueError, match=Reward2GoTransform.ENV_ERR):
        TransformedEnv(counting_env(), Reward2GoTransform())
    env = TransformedEnv(counting_env())
    with pytest.raises(ValueError, match=Reward2GoTransform.ENV_ERR):
        env.append_transform(Compose(Reward2GoTransform()))  # through a Compose too
    assert len(env.transform) == 0  # nothing was added
    with pytest.raises(ValueError, match=Reward2GoTransform.ENV_ERR):
        env.transform.insert(0, Reward2GoTransform())
    with pytest.raises(KeyError, match="Could not find the reward"):
        Reward2GoTransform().inv(TensorDict({"reward": torch.ones(2, 1),
                                             "next": {"done": torch.ones(2, 1)}}, [2]))
    with pytest.raises(ValueError, match="gamma"):
        Reward2GoTransform(gamma=1.5)
    with pytest.raises(ValueError, match="time dim"):
        Reward2GoTransform().inv(TensorDict({"next": {"reward": torch.ones(1),
                                                      "done": torch.zeros(1, dtype=bool)}}))
    with pytest.raises(KeyError, match="done"):
        Reward2GoTransform().inv(TensorDict({"next": {"reward": torch.ones(2, 1)}}, [2]))


# ---------------------------------------------------------------------------- contract
class TestCropContract(TransformContractTests):
    base_kwargs = {"pixels": True, "hw": (5, 4)}

    def make_transform(self):
        return Compose(ToTensorImage(), Crop(2, 3, top=1, left=1))


class TestBinarizeContract(TransformContractTests):
    def make_transform(self):
        return BinarizeReward()


class TestLineariseContract(TransformContractTests):
    def make_transform(self):
        return LineariseRewards(["observation"], ["obs_sum"], weights=[1.0, 2.0, -1.0])


class TestTargetReturnContract(TransformContractTests):
    def make_transform(self):
        return TargetReturn(4.0)
