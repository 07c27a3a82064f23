"""TorchRL 0.14's ``compilable`` flag on storages, writers and buffers, and writers used on
their own (register_storage, add, extend)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    CompressedListStorage,
    LazyMemmapStorage,
    LazyStackStorage,
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
    RoundRobinWriter,
    TensorDictMaxValueWriter,
    TensorDictReplayBuffer,
    TensorDictRoundRobinWriter,
    TensorStorage,
)
from streamrl.data.replay_buffers.writers import ImmutableDatasetWriter

STORAGES = [
    lambda c: ListStorage(10, compilable=c),
    lambda c: LazyTensorStorage(10, compilable=c),
    lambda c: LazyMemmapStorage(10, compilable=c),
    lambda c: CompressedListStorage(10, compilable=c),
    lambda c: LazyStackStorage(10, compilable=c),
    lambda c: TensorStorage(torch.zeros(10), compilable=c),
]


@pytest.mark.parametrize("make", STORAGES)
@pytest.mark.parametrize("compilable", [False, True])
def test_storages_take_the_flag_and_work_the_same(make, compilable):
    storage = make(compilable)
    assert storage.compilable is compilable
    rb = ReplayBuffer(storage=storage, writer=RoundRobinWriter(compilable=compilable),
                      batch_size=2, compilable=compilable)
    rb.extend(torch.arange(4.0) if not isinstance(storage, LazyStackStorage)
              else [TensorDict({"x": torch.tensor(float(i))}) for i in range(4)])
    assert len(rb) == (10 if isinstance(storage, TensorStorage) else 4)
    assert rb.compilable is compilable


def test_bad_flags():
    with pytest.raises(TypeError, match="compilable must be a bool"):
        LazyTensorStorage(10, compilable="yes")
    with pytest.raises(TypeError, match="compilable must be a bool"):
        RoundRobinWriter(compilable=None)
    with pytest.raises(ValueError, match="shared=True"):
        ReplayBuffer(storage=LazyMemmapStorage(10), compilable=True, shared=True)


def test_round_robin_writer_alone():
    storage = LazyTensorStorage(3)
    writer = TensorDictRoundRobinWriter()
    writer.register_storage(storage)
    td = TensorDict({"x": torch.arange(2.0)}, [2])
    assert writer.extend(td).tolist() == [0, 1]
    assert writer.add(TensorDict({"x": torch.tensor(5.0)}, [])) == 2
    assert writer.extend(td).tolist() == [0, 1]  # the oldest slots are overwritten
    assert storage.get(torch.arange(3))["x"].tolist() == [0.0, 1.0, 5.0]


def test_max_value_writer_alone_keeps_the_best():
    storage = LazyTensorStorage(2)
    writer = TensorDictMaxValueWriter(rank_key="r", compilable=True)
    writer.register_storage(storage)
    writer.extend(TensorDict({"r": torch.tensor([1.0, 3.0])}, [2]))
    writer.extend(TensorDict({"r": torch.tensor([2.0, 0.5])}, [2]))
    assert sorted(storage.get(torch.arange(2))["r"].tolist()) == [2.0, 3.0]


def test_writer_resumes_after_what_the_storage_holds_and_errors():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(4))
    rb.extend(TensorDict({"x": torch.arange(3.0)}, [3]))
    writer = RoundRobinWriter()
    writer.register_storage(rb.storage)
    assert writer.extend(TensorDict({"x": torch.tensor([9.0])}, [1])).tolist() == [3]
    with pytest.raises(RuntimeError, match="register_storage"):
        RoundRobinWriter().extend(torch.arange(2))
    with pytest.raises(TypeError, match="streamrl storage"):
        RoundRobinWriter().register_storage([1, 2])
    frozen = ImmutableDatasetWriter(compilable=False)
    frozen.register_storage(LazyTensorStorage(2))
    with pytest.raises(RuntimeError, match="immutable"):
        frozen.extend(torch.arange(2))


def test_delayed_init_is_taken_and_checked():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), delayed_init=True, batch_size=2)
    assert rb.delayed_init and len(rb) == 0
    rb.extend(torch.arange(3.0))
    assert rb.sample().shape == (2,)
    with pytest.raises(TypeError, match="delayed_init"):
        ReplayBuffer(delayed_init="later")
