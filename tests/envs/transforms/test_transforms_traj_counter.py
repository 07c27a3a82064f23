"""TrajCounter: numbers per reset, partial resets of a batched env, sharing between copies
and ParallelEnv workers, bad input, contract."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv

from streamrl.envs import ParallelEnv
from streamrl.envs.transforms import TrajCounter, TransformedEnv


def test_traj_counter_numbers_each_reset(counting_env):
    env = TransformedEnv(counting_env(max_count=2), TrajCounter())
    roll = env.rollout(6, break_when_any_done=False)
    assert roll["next", "traj_count"].squeeze(-1).tolist() == [0, 0, 1, 1, 2, 2]
    assert roll["traj_count"].squeeze(-1).tolist() == [0, 0, 1, 1, 2, 2]
    assert env.observation_spec["traj_count"].dtype == torch.int64


def test_traj_counter_partial_resets(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,), max_count=2), TrajCounter("tc"))
    td = env.reset()
    assert td["tc"].squeeze(-1).tolist() == [0, 1]
    td["_reset"] = torch.tensor([[False], [True]])
    assert env.reset(td)["tc"].squeeze(-1).tolist() == [0, 2]


def test_traj_counter_shared_by_copies_not_by_pickle(counting_env):
    t = TrajCounter()
    a = TransformedEnv(counting_env(), t)
    b = TransformedEnv(counting_env(), copy.deepcopy(t))
    assert a.reset()["traj_count"].item() == 0
    assert b.reset()["traj_count"].item() == 1
    assert a.reset()["traj_count"].item() == 2
    c = pickle.loads(pickle.dumps(t))
    assert c._take(1).item() == 3 and t._take(1).item() == 3


def test_traj_counter_shared_across_parallel_workers():
    t = TrajCounter()
    env = ParallelEnv(
        2,
        lambda: TransformedEnv(CountingEnv(max_count=2), copy.deepcopy(t)),
        mp_start_method="fork",
    )
    try:
        roll = env.rollout(6, break_when_any_done=False)
        numbers = roll["next", "traj_count"].squeeze(-1)
        # 2 workers x 3 trajectories each, numbered without repeats across workers (which
        # worker draws which number, and a number drawn by a reset after the last step,
        # depend on how the workers interleave)
        first, second = (set(row.tolist()) for row in numbers)
        assert len(first) == 3 and len(second) == 3 and not first & second
        assert max(first | second) < 8
    finally:
        env.close()


def test_traj_counter_bad_input():
    with pytest.raises(ValueError, match="one key"):
        TrajCounter(["a", "b"])
    with pytest.raises(ValueError, match="TransformedEnv"):
        TrajCounter()(TensorDict({}))


class TestTrajCounterContract(TransformContractTests):
    def make_transform(self):
        return TrajCounter()
