"""ConsumingSampler: items are consumed after max_sample_count draws; writes reuse their slots."""

import pytest
import torch

from streamrl.data import (
    ConsumingSampler,
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
)


def _rb(storage=None, **kwargs):
    return ReplayBuffer(storage=storage if storage is not None else LazyTensorStorage(10),
                        sampler=ConsumingSampler(**kwargs), batch_size=3)


def test_each_item_is_returned_once():
    rb = _rb()
    rb.extend(torch.arange(7))
    seen = []
    while len(rb):
        batch = rb.sample()
        assert batch.numel() == len(set(batch.tolist()))  # no repeat inside a batch
        seen += batch.tolist()
    assert sorted(seen) == list(range(7))
    assert [len(b) for b in (seen[:3], seen[3:6], seen[6:])] == [3, 3, 1]
    with pytest.raises(RuntimeError, match="every item of the buffer was consumed"):
        rb.sample()


def test_max_sample_count():
    rb = _rb(max_sample_count=2)
    rb.extend(torch.arange(3))
    counts = torch.zeros(3, dtype=torch.long)
    while len(rb):
        counts += torch.bincount(rb.sample(), minlength=3)
    assert counts.tolist() == [2, 2, 2]


def test_writes_fill_consumed_slots_first_in_consumption_order():
    rb = _rb(storage=ListStorage(10))
    rb.extend([torch.tensor(i) for i in range(4)])
    _, info = rb.sample(3, return_info=True)
    consumed = info["index"].tolist()
    assert len(rb) == 1
    index = rb.extend([torch.tensor(10 + i) for i in range(5)])
    # three freed slots in the order they were consumed, then the writer's cursor (4, 5)
    assert index.tolist() == [*consumed, 4, 5]
    assert len(rb) == 6
    assert rb.storage.get(consumed[0]).item() == 10


def test_a_write_over_a_free_slot_takes_it_off_the_free_list():
    rb = _rb(storage=LazyTensorStorage(4))
    rb.extend(torch.arange(4))
    consumed = rb.sample(2).tolist()
    assert len(rb) == 2
    # a write that did not ask for free slots (the sampler used on its own) lands on one
    rb.sampler.on_write(torch.tensor([consumed[0]]), None, rb.storage)
    assert len(rb) == 3
    assert rb.sampler.free_slots(4).tolist() == [consumed[1]]


def test_free_slots_and_writer_slots_in_one_batch():
    rb = _rb(storage=LazyTensorStorage(6))
    rb.extend(torch.arange(4))
    consumed = rb.sample(1).tolist()
    index = rb.extend(torch.tensor([10, 11, 12]))
    assert index.tolist() == [*consumed, 4, 5]
    assert rb.storage.get(torch.tensor(consumed)).tolist() == [10]
    assert rb.storage.get(torch.tensor([4, 5])).tolist() == [11, 12]


def test_state_round_trip(tmp_path):
    rb = _rb()
    rb.extend(torch.arange(8))
    rb.sample()
    rb.dumps(tmp_path / "rb.pt")
    rb2 = _rb()
    rb2.loads(tmp_path / "rb.pt")
    assert len(rb2) == len(rb) == 5
    assert rb2.sampler._free == rb.sampler._free
    assert torch.equal(rb2.sample(), rb.sample())
    assert rb2.extend(torch.arange(2)).tolist() == rb.extend(torch.arange(2)).tolist()


def test_empty_resets():
    rb = _rb()
    rb.extend(torch.arange(5))
    rb.sample()
    rb.empty()
    assert len(rb) == 0 and rb.sampler.free_slots(5).numel() == 0
    rb.extend(torch.arange(2))
    assert len(rb) == 2


def test_bad_input(tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_sample_count must be an int >= 1"):
            ConsumingSampler(bad)
    with pytest.raises(RuntimeError, match=r"consumed \(or none was written"):
        _rb().sample()
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ConsumingSampler().sample(LazyTensorStorage(3), 0)
    with pytest.raises(ValueError, match="per-write state"):
        ReplayBuffer(storage=LazyMemmapStorage(4, scratch_dir=tmp_path), shared=True,
                     sampler=ConsumingSampler())
