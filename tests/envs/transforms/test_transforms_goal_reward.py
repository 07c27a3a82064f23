"""GoalReachingReward: HIRO's -||s + g - s'|| from a HeldDecision's anchor, per row, with the
env's reward untouched; specs check; bad input named."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential

from streamrl.data.specs import Unbounded
from streamrl.envs import Compose, PointNavigationEnv, SerialEnv, TransformedEnv
from streamrl.envs.transforms import GoalReachingReward
from streamrl.envs.utils import check_env_specs
from streamrl.modules import HeldDecision


def _hierarchy(batch_size=(3,)):
    high = TensorDictModule(lambda obs: torch.full_like(obs, 0.25), ["observation"],
                            [("hrl", "decision")])
    held = HeldDecision(high, Unbounded(2), every=4, goal_mode="relative")
    env = held.transform_env(PointNavigationEnv(batch_size=batch_size, max_steps=30,
                                                tolerance=None))
    env.append_transform(GoalReachingReward())
    low = TensorDictModule(lambda g: g * 0.3, [("hrl", "goal")], ["action"])
    return env, TensorDictSequential(held, low)


def test_the_reward_is_minus_the_distance_to_the_anchor():
    env, policy = _hierarchy()
    rollout = env.rollout(9, policy)
    anchor = rollout["hrl", "anchor"]
    reached = rollout["next", "observation"]
    expected = -(anchor - reached).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rollout["next", "hrl", "reward"], expected)
    # equivalently HIRO's -||s + g - s'|| with the relative goal the low level read
    hiro = -(rollout["observation"] + rollout["hrl", "goal"] - reached).norm(dim=-1,
                                                                             keepdim=True)
    torch.testing.assert_close(rollout["next", "hrl", "reward"], hiro)
    # the env's own reward is untouched
    goal = env.base_env.goal
    torch.testing.assert_close(rollout["next", "reward"],
                               -((reached - goal) ** 2).sum(-1, keepdim=True))


def test_specs_check_and_batched_envs_work():
    env, _ = _hierarchy(batch_size=())
    check_env_specs(env)  # the anchor comes from the primer in a random rollout
    serial = SerialEnv(2, lambda: _hierarchy(batch_size=())[0])
    check_env_specs(serial)
    serial.close()
    assert env.reset()["hrl", "reward"].tolist() == [0.0]


def test_bad_input_is_named():
    plain = TransformedEnv(PointNavigationEnv(), GoalReachingReward())
    with pytest.raises(KeyError, match=r"needs the target .*anchor.* in the step.+s input"):
        plain.rand_step(plain.reset())
    wide = TransformedEnv(PointNavigationEnv(), Compose(GoalReachingReward()))
    td = wide.reset().set(("hrl", "anchor"), torch.zeros(3))
    with pytest.raises(ValueError, match=r"has shape \[3\], the goal entry 'observation' \[2\]"):
        wide.step(td.set("action", torch.zeros(2)))
