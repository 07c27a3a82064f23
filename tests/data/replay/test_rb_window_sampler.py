"""WindowSampler: windows that end where an inner sampler points, stopped at trajectory
changes, at the storage's start and at a full circular storage's write head."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    RandomSampler,
    Sampler,
    StalenessAwareSampler,
    TensorDictReplayBuffer,
    WindowSampler,
)


class _Fixed(Sampler):
    """Points at given indices."""

    def __init__(self, ends):
        super().__init__(seed=0)
        self.ends = torch.tensor(ends)

    def sample(self, storage, batch_size):
        assert batch_size == len(self.ends)
        return self.ends, {}


def _windows(storage, ends, window=3):
    sampler = WindowSampler(_Fixed(ends), window, traj_key="traj")
    index, info = sampler.sample(storage, window * len(ends))
    starts = info["is_init"].squeeze(-1)
    assert starts.shape == index.shape and bool(starts[0])
    return [w.tolist() for w in torch.tensor_split(index, starts.nonzero().squeeze(-1)[1:])]


def _storage(traj, size):
    storage = LazyTensorStorage(size)
    storage.set(torch.arange(len(traj)) % size,
                TensorDict({"traj": torch.tensor(traj)}, [len(traj)]))
    return storage


def test_windows_stop_at_trajectory_changes_and_the_first_row():
    storage = _storage([0, 0, 0, 0, 1, 1, 1], 10)
    assert _windows(storage, [3, 4, 6, 1, 0]) == [[1, 2, 3], [4], [4, 5, 6], [0, 1], [0]]


def test_windows_wrap_a_full_storage_but_not_across_its_write_head():
    # 7 rows of one trajectory in a storage of 5: rows 5, 6 overwrote 0, 1; the head is at 2
    storage = _storage([0] * 7, 5)
    assert storage.head == 2 and len(storage) == 5
    # slot 1 holds the newest step (6), slot 0 the one before (5), slot 4 the one before that
    assert _windows(storage, [1, 3, 2]) == [[4, 0, 1], [2, 3], [2]]


def test_sample_through_a_buffer_and_the_inner_samplers_staleness_bound():
    inner = StalenessAwareSampler(max_staleness=0, version_key="v")
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(20),
                                sampler=WindowSampler(inner, 4, traj_key="traj"), batch_size=16)
    rb.extend(TensorDict({"traj": torch.zeros(12, dtype=torch.long),
                          "v": torch.arange(12) // 4}, [12]))
    rb.sampler.consumer_version = 2
    assert inner.consumer_version == 2
    sample = rb.sample()
    starts = sample["is_init"].squeeze(-1)
    ends = torch.cat([starts[1:], torch.ones(1, dtype=torch.bool)])
    assert int(starts.sum()) == 4
    assert bool((sample["v"][ends] == 2).all())  # the windows end at fresh rows only
    assert rb.can_sample(16)
    rb.sampler.consumer_version = 9  # nothing fresh enough
    assert not rb.can_sample(16)
    state = rb.sampler.state_dict()
    assert state["sampler"]["consumer_version"] == 9
    other = WindowSampler(StalenessAwareSampler(version_key="v"), 4, traj_key="traj")
    other.load_state_dict(state)
    assert other.consumer_version == 9


def test_errors_say_what_was_expected():
    with pytest.raises(TypeError, match="sampler must be a Sampler"):
        WindowSampler(object(), 4, traj_key="traj")
    with pytest.raises(ValueError, match="window must be a positive int"):
        WindowSampler(RandomSampler(), 0, traj_key="traj")
    sampler = WindowSampler(RandomSampler(), 4, traj_key="traj")
    storage = _storage([0, 0], 4)
    with pytest.raises(ValueError, match="not a multiple of window=4"):
        sampler.sample(storage, 6)
    with pytest.raises(KeyError, match="'episode'"):
        WindowSampler(RandomSampler(), 2, traj_key="episode").sample(storage, 2)
    with pytest.raises(AttributeError, match="RandomSampler has no consumer_version"):
        sampler.consumer_version = 1
    assert not hasattr(sampler, "consumer_version")
