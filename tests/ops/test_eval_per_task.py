"""Evaluation of a multi-task env: play_episodes reports the task each episode played, and
the Evaluator the mean return per task beside the overall mean."""

from __future__ import annotations

import torch

from streamrl.envs import GymEnv, SerialEnv, TransformedEnv
from streamrl.envs.tasks import PendulumFamily, SampleTask
from streamrl.ops import Evaluator
from streamrl.ops.evaluator import play_episodes

TABLE = torch.tensor([[1.0, 10.0], [2.0, 4.0]])


def _member(row):
    return lambda: TransformedEnv(GymEnv("Pendulum-v1", max_episode_steps=20),
                                  SampleTask(PendulumFamily(), tasks=TABLE, first=row,
                                             resample="never"))


def _zero(td):
    return td.set("action", torch.zeros(*td.batch_size, 1))


def test_play_episodes_reports_each_episodes_task():
    env = SerialEnv(3, [_member(0), _member(1), _member(1)])
    stats = play_episodes(env, _zero, num_episodes=5, seed=0)
    assert stats.tasks.tolist() == [0, 1, 1, 0, 1]  # two rounds, sub-env order
    plain = SerialEnv(2, lambda: GymEnv("Pendulum-v1", max_episode_steps=20))
    assert play_episodes(plain, _zero, seed=0).tasks is None
    env.close()
    plain.close()


def test_the_evaluator_reports_the_mean_return_per_task():
    evaluator = Evaluator(lambda: SerialEnv(4, [_member(0), _member(1), _member(0), _member(1)]),
                          _zero, interval=None, seed=0)
    evaluator.open()
    result = evaluator.evaluate()
    stats = play_episodes(evaluator.env, _zero, seed=0)
    assert result["eval_return/task_0"] == float(stats.returns[[0, 2]].mean())
    assert result["eval_return/task_1"] == float(stats.returns[[1, 3]].mean())
    assert result["eval_return"] == float(stats.returns.mean())
    evaluator.close()
