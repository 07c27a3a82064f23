"""OfflineToOnlineReplayBuffer: the exact split of each batch, annealing, the online rows
aligned to the dataset's keys and dtypes, the rate limiter, state and bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    OfflineToOnlineReplayBuffer,
    ReplayBuffer,
    SampleToInsertRatio,
)


def _rows(n, value, *, extra=False, reward_dtype=torch.float32):
    td = TensorDict({
        "observation": torch.full((n, 3), float(value)),
        "action": torch.full((n, 1), float(value)),
        "next": {"observation": torch.full((n, 3), float(value)),
                 "reward": torch.full((n, 1), float(value), dtype=reward_dtype),
                 "done": torch.zeros(n, 1, dtype=torch.bool),
                 "terminated": torch.zeros(n, 1, dtype=torch.bool)},
    }, [n])
    if extra:  # what a collector adds
        td["collector", "traj_ids"] = torch.zeros(n, dtype=torch.long)
        td["loc"] = torch.zeros(n, 1)
    return td


def _dataset(n=200):
    """A dataset of 0-valued rows with a float64 reward and an episode id (as Minari's)."""
    rb = ReplayBuffer(storage=LazyTensorStorage(n))
    rows = _rows(n, 0, reward_dtype=torch.float64)
    rows["episode"] = torch.arange(n) // 50
    rb.extend(rows)
    return rb


def test_each_batch_is_split_exactly():
    rb = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=100, offline_fraction=0.3)
    assert torch.equal(rb.sample(10)["observation"][:, 0], torch.zeros(10))  # none online yet
    rb.extend(_rows(20, 1, extra=True))
    for _ in range(5):
        obs = rb.sample(10)["observation"][:, 0]
        assert obs.tolist() == [0.0] * 3 + [1.0] * 7
    assert len(rb) == 220 and rb.write_count == 20


def test_anneal_moves_the_fraction_to_zero():
    rb = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=100, offline_fraction=0.5,
                                     batch_size=8)
    rb.extend(_rows(20, 1))
    rb.anneal(50, 100)
    assert rb.offline_fraction == 0.25
    assert rb.sample()["observation"][:, 0].tolist() == [0.0] * 2 + [1.0] * 6
    rb.anneal(100, 100)
    assert rb.offline_fraction == 0.0
    assert torch.equal(rb.sample()["observation"][:, 0], torch.ones(8))
    with pytest.raises(ValueError, match="total_steps must be a positive int, found 0"):
        rb.anneal(1, 0)


def test_online_rows_take_the_dataset_keys_and_dtypes():
    rb = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=100, batch_size=10)
    rb.extend(_rows(10, 1, extra=True))  # float32 reward, no episode id, collector keys
    stored = rb.online_buffer.sample(4)
    assert ("collector", "traj_ids") not in stored.keys(True) and "loc" not in stored.keys()
    assert stored["next", "reward"].dtype == torch.float64
    batch = rb.sample()
    assert batch.batch_size == torch.Size([10])
    assert "episode" not in batch.keys()  # the dataset's bookkeeping: only where both have it


def test_a_batch_without_a_transition_key_is_refused_and_not_stored():
    rb = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=100)
    bad = _rows(5, 1).exclude(("next", "reward"))
    with pytest.raises(ValueError, match=r"no \('next', 'reward'\), which the dataset's rows"):
        rb.extend(bad)
    assert len(rb.online_buffer) == 0
    with pytest.raises(TypeError, match="TensorDict of transitions, found list"):
        rb.extend([1, 2])


def test_the_rate_limiter_counts_online_inserts_and_whole_batches():
    limiter = SampleToInsertRatio(2.0, min_size_to_sample=10, error_buffer=30,
                                  max_sample_batch=8, max_insert_batch=10)
    rb = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=100, rate_limiter=limiter,
                                     rate_limit_timeout=0.2)
    assert not limiter.can_sample(8)  # nothing collected: the dataset alone does not count
    rb.extend(_rows(10, 1))
    assert limiter.inserts == 10
    rb.sample(8)
    rb.sample(8)
    assert limiter.samples == 16
    with pytest.raises(TimeoutError):
        for _ in range(10):  # beyond 2 sampled rows per insert plus the slack
            rb.sample(8)


def _loose():
    return SampleToInsertRatio(100.0, min_size_to_sample=1, error_buffer=10_000,
                               max_sample_batch=6, max_insert_batch=30)


def test_state_round_trip_continues_the_same_draws():
    a = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=100, batch_size=6,
                                    rate_limiter=_loose())
    a.extend(TensorDict.cat([_rows(1, i) for i in range(30)]))
    a.anneal(30, 100)
    state = a.state_dict()
    assert "storage" not in state["offline_sampler"]  # the dataset's rows are not in it
    b = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=100, batch_size=6,
                                    rate_limiter=_loose())
    b.load_state_dict(state)
    assert b.offline_fraction == a.offline_fraction and len(b.online_buffer) == 30
    for _ in range(3):
        assert torch.equal(a.sample()["observation"], b.sample()["observation"])
    with pytest.raises(ValueError, match="has a rate limiter, this buffer has none"):
        OfflineToOnlineReplayBuffer(_dataset(), online_capacity=10).load_state_dict(state)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="one of online_storage or online_capacity, found both"):
        OfflineToOnlineReplayBuffer(_dataset(), online_capacity=10,
                                    online_storage=LazyTensorStorage(10))
    with pytest.raises(ValueError, match="found neither"):
        OfflineToOnlineReplayBuffer(_dataset())
    with pytest.raises(ValueError, match=r"offline_fraction must be in \(0, 1\), found 1.0"):
        OfflineToOnlineReplayBuffer(_dataset(), online_capacity=10, offline_fraction=1.0)
    with pytest.raises(ValueError, match="offline_dataset is empty"):
        OfflineToOnlineReplayBuffer(ReplayBuffer(storage=LazyTensorStorage(5)),
                                    online_capacity=10)
    with pytest.raises(TypeError, match="for a dataset given by its id"):
        OfflineToOnlineReplayBuffer(_dataset(), online_capacity=10, root="/tmp")
    with pytest.raises(ValueError, match="batch_size is needed to build the dataset"):
        OfflineToOnlineReplayBuffer("minari:x/y-v0", online_capacity=10)
    rb = OfflineToOnlineReplayBuffer(_dataset(), online_capacity=10)
    with pytest.raises(ValueError, match="needs a batch_size"):
        rb.sample()
