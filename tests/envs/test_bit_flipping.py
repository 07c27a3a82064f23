"""BitFlippingEnv: the env contract (one board and a batch of them), the flip, the reward and
the episode ends, seeded resets, partial resets of a batch, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrl.envs import BitFlippingEnv
from streamrl.envs.custom import BitFlippingEnv as FromCustom
from streamrl.testing import EnvContractTests


class TestOneBoardContract(EnvContractTests):
    def make_env(self):
        return BitFlippingEnv(4, seed=0)


class TestBatchContract(EnvContractTests):
    def make_env(self):
        return BitFlippingEnv(3, batch_size=[5], seed=0)


def test_both_import_paths_are_one_class():
    assert BitFlippingEnv is FromCustom


def test_a_step_flips_one_bit_and_the_goal_ends_the_episode():
    env = BitFlippingEnv(3, seed=0)
    td = env.reset()
    goal = td["desired_goal"]
    assert not (td["observation"] == goal).all()
    td["observation"] = torch.where(torch.arange(3) == 1, 1 - goal, goal)  # one bit off
    td["achieved_goal"] = td["observation"].clone()
    out = env.step(td.set("action", torch.tensor(0)))["next"]  # flips the wrong bit
    assert out["observation"].tolist() == [1 - goal[0].item(), 1 - goal[1].item(),
                                           goal[2].item()]
    assert out["reward"].item() == -1 and not out["done"].item()
    assert (out["achieved_goal"] == out["observation"]).all() and out["step"].item() == 1
    back = env.step(out.clone().set("action", torch.tensor(0)))["next"]
    fixed = env.step(back.clone().set("action", torch.tensor(1)))["next"]
    assert (fixed["observation"] == goal).all()
    assert fixed["reward"].item() == 0 and fixed["terminated"].item()
    assert not fixed["truncated"].item() and fixed["done"].item()


def test_episodes_are_truncated_after_max_steps():
    env = BitFlippingEnv(6, max_steps=2, seed=1)
    td = env.reset()
    td["observation"] = 1 - td["desired_goal"]  # far from the goal: two flips cannot reach it
    rollout = env.rollout(2, tensordict=td, auto_reset=False)
    assert rollout["next", "truncated"].squeeze(-1).tolist() == [False, True]
    assert not rollout["next", "terminated"].any()


def test_compute_reward_takes_numpy_or_tensors_of_any_leading_shape():
    a = np.zeros((2, 3, 4), dtype=np.float32)
    b = a.copy()
    b[0, 1, 2] = 1
    reward = BitFlippingEnv.compute_reward(a, b, {})
    assert reward.shape == (2, 3)
    assert reward.tolist() == [[0.0, -1.0, 0.0], [0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match=r"achieved_goal has shape \[2, 4\], desired_goal "
                                         r"\[2, 3\]; expected the same"):
        BitFlippingEnv.compute_reward(torch.zeros(2, 4), torch.zeros(2, 3))


def test_seeded_resets_repeat_and_a_partial_reset_keeps_the_other_boards():
    a, b = BitFlippingEnv(8, batch_size=[4], seed=3), BitFlippingEnv(8, batch_size=[4], seed=3)
    first = a.reset()
    assert (first == b.reset()).all()
    moved = a.step(first.clone().set("action", torch.zeros(4, dtype=torch.int64)))["next"]
    mask = torch.tensor([[True], [False], [False], [True]])
    again = a.reset(moved.clone().set("_reset", mask))
    kept = ~mask.squeeze(-1)
    assert (again["observation"][kept] == moved["observation"][kept]).all()
    assert (again["step"][kept] == 1).all() and (again["step"][~kept] == 0).all()
    assert not (again["observation"] == again["desired_goal"]).all(-1).any()


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be an int >= 1, found 0"):
        BitFlippingEnv(0)
    with pytest.raises(ValueError, match="max_steps must be an int >= 1, found 0"):
        BitFlippingEnv(3, max_steps=0)


def test_the_stepped_rewards_equal_compute_reward():
    env = BitFlippingEnv(4, batch_size=[2], seed=0)
    rows = env.rollout(8, break_when_any_done=False).reshape(-1)
    torch.testing.assert_close(
        rows["next", "reward"].squeeze(-1),
        env.compute_reward(rows["next", "achieved_goal"], rows["next", "desired_goal"]))
