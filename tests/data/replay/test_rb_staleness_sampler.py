"""StalenessAwareSampler: freshness weights, the hard gate, state and bad input."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
    StalenessAwareSampler,
    TensorDictReplayBuffer,
)


def _rb(versions, **kwargs):
    sampler = StalenessAwareSampler(**kwargs)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(len(versions)), sampler=sampler)
    rb.extend(TensorDict({"policy_version": torch.tensor(versions, dtype=torch.float32),
                          "i": torch.arange(len(versions))}, [len(versions)]))
    return rb, sampler


def test_gate_and_info():
    rb, sampler = _rb([0.0, 5.0, 9.0], max_staleness=4)
    sampler.consumer_version = 10
    s, info = rb.sample(200, return_info=True)
    assert set(s["i"].tolist()) <= {1, 2}  # staleness 10 > 4: item 0 is never drawn
    assert torch.equal(info["staleness"], 10.0 - s["policy_version"])


def test_weights_follow_the_weight_fn():
    # weight 1 for staleness 0, 0 otherwise: only the freshest item is drawn
    rb, sampler = _rb([1.0, 2.0], staleness_weight_fn=lambda s: (s == 0).double())
    sampler.consumer_version = 2
    assert (rb.sample(50)["i"] == 1).all()
    sampler.increment_consumer_version()  # now nothing has staleness 0
    with pytest.raises(RuntimeError, match="no item can be sampled"):
        rb.sample(4)


def test_all_stale_and_missing_key():
    rb, sampler = _rb([0.0, 0.0], max_staleness=2)
    sampler.consumer_version = 3
    with pytest.raises(RuntimeError, match="max_staleness=2"):
        rb.sample(2)
    plain = TensorDictReplayBuffer(storage=LazyTensorStorage(4), sampler=StalenessAwareSampler())
    plain.extend(TensorDict({"x": torch.zeros(2)}, [2]))
    with pytest.raises(KeyError, match="policy_version"):
        plain.sample(2)
    lists = ReplayBuffer(storage=ListStorage(4), sampler=StalenessAwareSampler())
    lists.extend([1, 2])
    with pytest.raises(TypeError, match="tensor storage"):
        lists.sample(1)


def test_state_round_trip_and_bad_arguments():
    sampler = StalenessAwareSampler(max_staleness=7)
    sampler.consumer_version = 42
    other = StalenessAwareSampler()
    other.load_state_dict(sampler.state_dict())
    assert other.consumer_version == 42 and other.max_staleness == 7
    with pytest.raises(ValueError, match="max_staleness"):
        StalenessAwareSampler(max_staleness=-2)
    with pytest.raises(TypeError, match="callable"):
        StalenessAwareSampler(staleness_weight_fn=3)
    with pytest.raises(TypeError, match="consumer_version"):
        sampler.consumer_version = 1.5
    rb, s = _rb([0.0, 1.0], staleness_weight_fn=lambda st: -st)
    s.consumer_version = 2
    with pytest.raises(ValueError, match="finite weight >= 0"):
        rb.sample(2)


def test_can_sample_says_whether_a_fresh_item_is_stored():
    sampler = StalenessAwareSampler(max_staleness=2, version_key=("collector", "policy_version"))
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), sampler=sampler, batch_size=4)
    assert not rb.can_sample()  # empty
    rb.extend(TensorDict({("collector", "policy_version"): torch.tensor([0, 1, 1])}, [3]))
    sampler.consumer_version = 3
    assert rb.can_sample() and sampler.can_sample(rb.storage, 4)
    sampler.consumer_version = 4  # every item is 3 or more versions old
    assert not rb.can_sample(4)
    rb.extend(TensorDict({("collector", "policy_version"): torch.tensor([4])}, [1]))
    assert rb.can_sample(4)
    assert set(rb.sample()[("collector", "policy_version")].tolist()) == {4}


def test_draws_follow_the_weights():
    sampler = StalenessAwareSampler(staleness_weight_fn=lambda s: (s == 0).double() * 3 + 1,
                                    seed=0)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), sampler=sampler)
    rb.extend(TensorDict({"policy_version": torch.tensor([0.0, 1.0])}, [2]))
    sampler.consumer_version = 1
    fresh = float((rb.sample(4000)["policy_version"] == 1).double().mean())
    assert 0.77 < fresh < 0.83  # weights 1 and 4: 80% of draws in expectation
