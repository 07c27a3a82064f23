"""ReplaySource(first_version=): the learner's version on each draw, waiting for fresh rows."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.ops import ReplaySource, ratio_buffer

KEY = ("collector", "policy_version")


def rows(*versions):
    return TensorDict({KEY: torch.tensor(versions), "x": torch.arange(len(versions))},
                      [len(versions)])


def lag_buffer(lag):
    return ratio_buffer(100, 1.0, learning_starts=1, sample_size=4, frames_per_batch=4,
                        max_policy_lag=lag, timeout=5.0)


def test_each_draw_uses_the_next_version_and_keeps_the_bound():
    rb = lag_buffer(1)
    rb.extend(rows(0, 0, 1, 2))
    source = ReplaySource(rb, 4, num_batches=2, first_version=2)
    first = source.step({})["out"][KEY]
    assert set(first.tolist()) <= {1, 2} and rb.sampler.consumer_version == 2
    second = source.step({})["out"][KEY]  # the learner is at version 3 for this draw
    assert set(second.tolist()) == {2} and rb.sampler.consumer_version == 3
    with pytest.raises(StopIteration):
        source.step({})


def test_waits_for_a_fresh_insert():
    rb = lag_buffer(0)
    rb.extend(rows(0, 0, 0, 0))
    source = ReplaySource(rb, 4, first_version=1)
    timer = threading.Timer(0.2, lambda: rb.extend(rows(1, 1, 1, 1)))
    t0 = time.monotonic()
    timer.start()
    try:
        batch = source.step({})["out"]
    finally:
        timer.cancel()
    assert time.monotonic() - t0 >= 0.15 and set(batch[KEY].tolist()) == {1}


def test_times_out_without_fresh_rows():
    rb = lag_buffer(0)
    rb.extend(rows(0, 0, 0, 0))
    source = ReplaySource(rb, 4, first_version=5, timeout=0.05)
    with pytest.raises(TimeoutError, match="max_staleness=0 of policy version 5"):
        source.step({})
    assert source.sampled == 0 and rb.rate_limiter.samples == 0  # nothing was drawn


def test_first_version_errors():
    plain = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
    with pytest.raises(TypeError, match="StalenessAwareSampler"):
        ReplaySource(plain, 4, first_version=0)
    with pytest.raises(TypeError, match="first_version must be an int"):
        ReplaySource(lag_buffer(1), 4, first_version=1.5)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        ReplaySource(lag_buffer(1), 4, first_version=0, timeout=0)
    assert "bounded lag" in repr(ReplaySource(lag_buffer(1), 4, first_version=0))
