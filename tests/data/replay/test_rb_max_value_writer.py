"""TensorDictMaxValueWriter: what it ranks, what it refuses (TorchRL 0.14's behaviour)."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
    TensorDictMaxValueWriter,
    TensorDictReplayBuffer,
)


def _td(rewards):
    r = torch.as_tensor(rewards, dtype=torch.float32)
    return TensorDict({"x": r.clone(), "next": {"reward": r.unsqueeze(-1)}}, [len(r)])


_TENSOR, _LIST = torch.zeros(3, 1), [torch.zeros(1), torch.zeros(1)]
_TREE = {"next": {"reward": torch.zeros(3)}}


@pytest.mark.parametrize(
    "storage,data",
    [(LazyTensorStorage, _TENSOR), (LazyMemmapStorage, _TENSOR), (ListStorage, _TENSOR),
     (ListStorage, _LIST), (LazyTensorStorage, _LIST), (LazyTensorStorage, _TREE),
     (LazyMemmapStorage, _TREE)],
)
def test_refuses_data_that_is_not_a_tensor_collection(storage, data):
    rb = ReplayBuffer(storage=storage(5), writer=TensorDictMaxValueWriter())
    with pytest.raises(RuntimeError, match="expects data to be a tensor collection"):
        rb.extend(data)
    with pytest.raises(RuntimeError, match="expects data to be a tensor collection"):
        rb.add(data[0] if not isinstance(data, dict) else data)
    assert len(rb) == 0


def test_writer_alone_refuses_a_tensor_and_keeps_its_cursor():
    writer = TensorDictMaxValueWriter()
    storage = LazyTensorStorage(4)
    writer.register_storage(storage)
    with pytest.raises(RuntimeError, match="tensor collection"):
        writer.extend(torch.zeros(3, 1))
    assert len(storage) == 0
    writer.extend(_td([1.0, 2.0, 3.0]))
    assert writer._cursor == 3 and len(storage) == 3


def test_list_storage_of_tensordicts_keeps_the_best():
    rb = ReplayBuffer(storage=ListStorage(3), writer=TensorDictMaxValueWriter())
    rb.extend(_td([5.0, 1.0]))
    rb.extend(_td([0.0, 7.0, 3.0]))  # one free slot, then 3 replaces 1 (0 never gets in)
    assert sorted(float(td["x"]) for td in rb.storage) == [3.0, 5.0, 7.0]
    rb.add(_td([9.0])[0])
    assert sorted(float(td["x"]) for td in rb.storage) == [5.0, 7.0, 9.0]


@pytest.mark.parametrize(
    "reduction,winner", [("sum", 0), ("mean", 0), ("max", 0), ("min", 1), ("median", 1)]
)
def test_reductions(reduction, winner):
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(1), writer=TensorDictMaxValueWriter("r", reduction=reduction)
    )
    # row 0: sum 9, mean 3, max 6, min 1, median 2; row 1: 7.5, 2.5, 2.5, 2.5, 2.5
    r = torch.tensor([[1.0, 2.0, 6.0], [2.5, 2.5, 2.5]])
    rb.extend(TensorDict({"r": r, "id": torch.tensor([0, 1])}, [2]))
    assert int(rb.storage[0]["id"]) == winner


def test_state_dict_round_trip_keeps_the_cursor():
    w = TensorDictMaxValueWriter()
    storage = LazyTensorStorage(4)
    w.register_storage(storage)
    w.extend(_td([1.0, 2.0]))
    w2 = TensorDictMaxValueWriter()
    w2.load_state_dict(w.state_dict())
    assert w2._cursor == 2
    assert torch.equal(w2.state_dict()["ranks"], w.state_dict()["ranks"])


def test_refuses_a_multi_dim_storage():
    with pytest.raises(ValueError, match="more than one dimension"):
        TensorDictReplayBuffer(storage=LazyTensorStorage(10, ndim=2),
                               writer=TensorDictMaxValueWriter())
