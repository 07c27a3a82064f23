"""CompleteTrajectories: whole episodes out of fixed-size batches."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import Many
from streamrl.ops import CompleteTrajectories


def batch(ids, done):
    """[envs, T] (or [T]) batch with ids, done flags and a step value equal to the id."""
    ids = torch.tensor(ids)
    return TensorDict(
        {"x": ids.float(), "next": {"done": torch.tensor(done)[..., None]},
         "collector": {"traj_ids": ids}},
        ids.shape,
    )


def test_episodes_spanning_batches_are_joined_per_env():
    op = CompleteTrajectories(None)
    # two envs: env 0 runs trajectory 0 over both batches, env 1 ends 1 and starts 2
    out = op.step({"in": batch([[0, 0], [1, 2]], [[False, False], [True, False]])})["out"]
    assert out["collector", "traj_ids"].tolist() == [1]  # only trajectory 1 ended
    out = op.step({"in": batch([[0, 0], [2, 2]], [[False, True], [False, True]])})["out"]
    assert out["collector", "traj_ids"].tolist() == [0, 0, 0, 0, 2, 2, 2]


def test_nothing_completed_is_an_empty_batch_or_a_pending_count():
    assert len(CompleteTrajectories(None).step({"in": batch([0, 0], [False, False])})["out"]) == 0
    op = CompleteTrajectories(3, report_pending=True)
    assert op.step({"in": batch([0, 0, 1], [False, True, True])}) == {"out": 2}
    assert CompleteTrajectories(3).step({"in": batch([0], [True])}) is None


def test_several_batches_at_once_and_the_cat_format():
    op = CompleteTrajectories(1, traj_format="cat")
    out = op.step({"in": batch([0, 1, 1, 2], [True, False, True, True])})["out"]
    assert isinstance(out, Many)
    assert [t["x"].tolist() for t in out.items] == [[0.0], [1.0, 1.0], [2.0]]


def test_an_episode_cut_by_a_reset_is_dropped():
    op = CompleteTrajectories(None)
    op.step({"in": batch([0, 0], [False, False])})
    out = op.step({"in": batch([1, 1], [False, True])})["out"]  # reset: 0 never ends
    assert out["collector", "traj_ids"].tolist() == [1, 1]


def test_workers_rows_do_not_mix():
    op = CompleteTrajectories(None, num_workers=2)
    op.step({"in": batch([0, 0], [False, False])})  # worker 0
    op.step({"in": batch([1, 1], [False, False])})  # worker 1
    out = op.step({"in": batch([0, 0], [False, True])})["out"]
    assert out["x"].tolist() == [0.0] * 4


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="trajs_per_batch"):
        CompleteTrajectories(0)
    with pytest.raises(ValueError, match="traj_format"):
        CompleteTrajectories(1, traj_format="nested")
    with pytest.raises(ValueError, match="num_workers"):
        CompleteTrajectories(1, num_workers=0)
    with pytest.raises(KeyError, match="traj_ids"):
        CompleteTrajectories(1).step({"in": TensorDict({"x": torch.zeros(2)}, [2])})
    with pytest.raises(TypeError, match="TensorDicts"):
        CompleteTrajectories(1).step({"in": 3})
