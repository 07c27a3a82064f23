"""SuccessReward and TerminateTransform."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.data.specs import Bounded
from streamrl.envs.transforms import SuccessReward, TerminateTransform, TransformedEnv


# ---------------------------------------------------------------------------- SuccessReward
class TestSuccessRewardContract(TransformContractTests):
    def make_transform(self):
        return SuccessReward(success_key="terminated", scale=5.0)


def test_success_reward_in_env(counting_env):
    env = TransformedEnv(counting_env(max_count=3), SuccessReward("terminated", scale=5.0))
    spec = env.full_reward_spec["reward"]
    assert isinstance(spec, Bounded) and spec.shape == (1,) and spec.dtype == torch.float32
    assert spec.space.low.item() == 0.0 and spec.space.high.item() == 5.0
    roll = env.rollout(3)
    assert roll["next", "reward"].squeeze(-1).tolist() == [0.0, 0.0, 5.0]  # success on step 3


def test_success_reward_plain_data_and_negative_scale():
    td = TensorDict({"ok": torch.tensor([[1], [0]])}, [2])
    out = SuccessReward("ok", ("n", "r"), scale=-2.0)(td)
    assert out["n", "r"].squeeze(-1).tolist() == [-2.0, 0.0]


def test_success_reward_bad_input():
    with pytest.raises(TypeError, match="scale"):
        SuccessReward(scale="big")
    with pytest.raises(TypeError, match="scale"):
        SuccessReward(scale=float("inf"))
    with pytest.raises(ValueError, match="0/1"):
        SuccessReward()(TensorDict({"success": torch.tensor([0.5])}))
    with pytest.raises(KeyError, match="success"):
        SuccessReward()(TensorDict({"other": torch.tensor([True])}))


# ---------------------------------------------------------------------------- TerminateTransform
def _reached_two(td):
    return td["observation"][..., 0] >= 2


class TestTerminateContract(TransformContractTests):
    def make_transform(self):
        return TerminateTransform(_reached_two)


def test_terminate_ends_rollout_early(counting_env):
    env = TransformedEnv(counting_env(max_count=10), TerminateTransform(_reached_two))
    roll = env.rollout(8)
    assert roll.shape == (2,)
    assert roll["next", "terminated"].squeeze(-1).tolist() == [False, True]
    assert roll["next", "done"].squeeze(-1).tolist() == [False, True]


def test_terminate_batched_flags_only_the_stopped_rows(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), max_count=10),
        TerminateTransform(lambda td: td["observation"][..., 0] >= torch.tensor([1.0, 3.0])),
    )
    td = env.step(env.rand_action(env.reset()))
    assert td["next", "done"].squeeze(-1).tolist() == [True, False]


def test_terminate_write_done_false_and_scalar_flag():
    td = TensorDict(
        {
            "terminated": torch.zeros(2, 1, dtype=torch.bool),
            "done": torch.zeros(2, 1, dtype=torch.bool),
        },
        [2],
    )
    out = TerminateTransform(lambda td: True, write_done=False)(td)
    assert out["terminated"].all() and not out["done"].any()


def test_terminate_bad_input():
    with pytest.raises(TypeError, match="callable"):
        TerminateTransform(3)
    td = TensorDict({"terminated": torch.zeros(2, 1, dtype=torch.bool)}, [2])
    with pytest.raises(TypeError, match="bool"):
        TerminateTransform(lambda td: torch.ones(2))(td)
    with pytest.raises(ValueError, match="does not fit"):
        TerminateTransform(lambda td: torch.ones(3, dtype=torch.bool))(td)
    with pytest.raises(KeyError, match="terminated"):
        TerminateTransform(lambda td: True)(TensorDict({"x": torch.ones(1)}))
