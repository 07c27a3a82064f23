"""PointNavigationEnv and NavigationFamily: the env contract, the move (clipped), the reward
(negative squared distance), the episode ends, one goal per row, partial resets, the goal
set per task by SampleTask, bad input."""

from __future__ import annotations

import pytest
import torch

from streamrl.envs import PointNavigationEnv, TransformedEnv
from streamrl.envs.tasks import NavigationFamily, SampleTask
from streamrl.testing import EnvContractTests


class TestOnePointContract(EnvContractTests):
    def make_env(self):
        return PointNavigationEnv(goal=[0.2, 0.1], max_steps=10)


class TestBatchContract(EnvContractTests):
    def make_env(self):
        return PointNavigationEnv(goal=torch.tensor([[0.2, 0.1], [-0.3, 0.4], [0.0, 0.5]]),
                                  max_steps=10, batch_size=[3])


def _act(value):
    return lambda td: td.set("action", torch.as_tensor(value).expand(*td.batch_size, 2).clone())


def test_moves_are_clipped_and_the_reward_is_the_negative_squared_distance():
    env = PointNavigationEnv(goal=[0.5, 0.0])
    out = env.step(env.reset().set("action", torch.tensor([0.3, -0.05])))["next"]
    assert out["observation"].tolist() == pytest.approx([0.1, -0.05])
    assert out["reward"].item() == pytest.approx(-(0.4 ** 2 + 0.05 ** 2))
    assert not out["done"].item()


def test_reaching_the_goal_terminates_and_the_horizon_truncates():
    env = PointNavigationEnv(goal=[0.2, 0.0], max_steps=5)
    rollout = env.rollout(5, _act([0.1, 0.0]))
    assert rollout.batch_size == (2,) and rollout["next", "terminated"][-1].item()
    assert rollout["next", "reward"][-1].item() == pytest.approx(0.0, abs=1e-6)
    far = PointNavigationEnv(goal=[0.5, 0.5], max_steps=3).rollout(5, _act([0.0, 0.0]))
    assert far.batch_size == (3,) and far["next", "truncated"][-1].item()
    assert not far["next", "terminated"].any()


def test_one_goal_per_row_and_partial_resets():
    env = PointNavigationEnv(goal=torch.tensor([[0.1, 0.0], [0.0, -0.1]]), batch_size=[2])
    out = env.step(env.reset().set("action", torch.tensor([[0.1, 0.0], [0.1, 0.0]])))["next"]
    assert out["terminated"].squeeze(-1).tolist() == [True, False]
    kept = env.reset(out.clone().set("_reset", torch.tensor([[True], [False]])))
    torch.testing.assert_close(kept["observation"], torch.tensor([[0.0, 0.0], [0.1, 0.0]]))
    assert kept["step"].squeeze(-1).tolist() == [0, 1]


def test_sample_task_sets_the_goal():
    family = NavigationFamily()
    env = TransformedEnv(PointNavigationEnv(), SampleTask(family, seed=0))
    td = env.reset()
    goal = td["task", "params"]
    assert torch.equal(env.base_env.goal, goal) and bool((goal.abs() <= 0.5).all())
    assert env.reset()["task", "params"].tolist() != goal.tolist()  # a new task per reset


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"goal must have shape \[2\] or \[4, 2\], found \[3\]"):
        PointNavigationEnv(goal=[0.0, 0.0, 0.0], batch_size=[4])
    with pytest.raises(ValueError, match="max_steps must be an int >= 1, found 0"):
        PointNavigationEnv(max_steps=0)
    with pytest.raises(ValueError, match="max_action must be > 0"):
        PointNavigationEnv(max_action=0.0)
    with pytest.raises(ValueError, match=r"tolerance >= 0 or None, found 0.1 and -1"):
        PointNavigationEnv(tolerance=-1)
    from streamrl.envs import GymEnv
    wrong = TransformedEnv(GymEnv("Pendulum-v1"), SampleTask(NavigationFamily()))
    with pytest.raises(TypeError, match="sets the goal of a PointNavigationEnv, found GymEnv"):
        wrong.reset()


def test_without_a_tolerance_every_episode_lasts_the_horizon():
    env = PointNavigationEnv(goal=[0.1, 0.0], max_steps=4, tolerance=None)
    rollout = env.rollout(4, _act([0.1, 0.0]))  # on the goal after the first step
    assert rollout["next", "reward"][0].item() == 0.0
    assert not rollout["next", "terminated"].any() and rollout["next", "truncated"][-1].item()


def test_sampled_actions_are_stored_as_sampled():
    from streamrl.collectors import SyncDataCollector
    env = PointNavigationEnv(batch_size=[2], max_steps=3)
    collector = SyncDataCollector(env, _act([0.5, -0.3]), frames_per_batch=6, total_frames=6)
    batch = next(iter(collector))
    collector.shutdown()
    assert batch["action"][0, 0].tolist() == pytest.approx([0.5, -0.3])  # not clamped
    assert batch["next", "observation"][0, 0].tolist() == pytest.approx([0.1, -0.1])  # moved 0.1
