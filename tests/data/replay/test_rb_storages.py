"""A contract suite every storage passes, plus memmap persistence and bad input."""

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from streamrl.data import (
    CompressedListStorage,
    LazyMemmapStorage,
    LazyStackStorage,
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
    TensorDictReplayBuffer,
)


def _batch(n, start=0):
    x = torch.arange(start, start + n)
    return TensorDict(
        {
            "observation": x[:, None].float().expand(n, 4).clone(),
            "action": x % 2,
            "next": {
                "observation": x[:, None].float().expand(n, 4) + 1,
                "reward": x[:, None].float(),
                "done": (x % 5 == 4)[:, None],
            },
        },
        [n],
    )


FACTORIES = {
    "list": lambda cap, tmp: ListStorage(cap),
    "tensor": lambda cap, tmp: LazyTensorStorage(cap),
    "memmap": lambda cap, tmp: LazyMemmapStorage(cap, scratch_dir=tmp),
    "lazy_stack": lambda cap, tmp: LazyStackStorage(cap),
    "compressed": lambda cap, tmp: CompressedListStorage(cap),
}


@pytest.fixture(params=list(FACTORIES))
def make_storage(request, tmp_path):
    dirs = iter(range(100))
    return lambda cap: FACTORIES[request.param](cap, tmp_path / f"mm{next(dirs)}")


class TestStorageContract:
    def test_fill_wrap_and_read_back(self, make_storage):
        rb = TensorDictReplayBuffer(storage=make_storage(10))
        assert len(rb) == 0
        idx = rb.extend(_batch(6))
        assert idx.tolist() == list(range(6)) and len(rb) == 6
        idx = rb.extend(_batch(7, start=6))
        assert idx.tolist() == [6, 7, 8, 9, 0, 1, 2] and len(rb) == 10
        got = rb[torch.arange(10)]
        want = [10, 11, 12, 3, 4, 5, 6, 7, 8, 9]
        assert got["action"].tolist() == [w % 2 for w in want]
        assert got["next", "reward"].reshape(-1).tolist() == [float(w) for w in want]
        assert rb.storage.head == 3

    def test_indexing_and_iteration_read_the_slots(self, make_storage):
        storage = make_storage(5)
        rb = TensorDictReplayBuffer(storage=storage)
        rb.extend(_batch(3))
        assert storage[1]["next", "reward"].item() == 1.0  # storage[i] is get(i)
        rewards = [float(item["next", "reward"].item()) for item in storage]
        assert rewards == [0.0, 1.0, 2.0]  # iteration: the stored items, in slot order
        with pytest.raises(IndexError):
            storage[3]

    def test_set_writes_at_given_slots(self, make_storage):
        storage = make_storage(6)
        storage.set(range(3), _batch(3))  # TorchRL's storage.set(cursor, data)
        assert len(storage) == 3 and storage.head == 3
        storage.set(4, _batch(1, start=40)[0])  # an int cursor: one item
        assert len(storage) == 5 and storage.head == 5
        assert storage[4]["next", "reward"].item() == 40.0
        storage.set(torch.tensor([0, 1]), _batch(2, start=10), set_cursor=False)
        assert len(storage) == 5 and storage.head == 5  # set_cursor=False: cursor stays
        assert storage[1]["next", "reward"].item() == 11.0
        storage.set(slice(2, 4), _batch(2, start=20))
        assert storage[3]["next", "reward"].item() == 21.0

    def test_set_bad_input(self, make_storage):
        storage = make_storage(4)
        with pytest.raises(ValueError, match="3 slot"):
            storage.set(range(3), _batch(2))
        with pytest.raises(IndexError, match="out of the storage's slots"):
            storage.set([4], _batch(1))
        with pytest.raises(TypeError, match="integers"):
            storage.set(torch.tensor([0.5]), _batch(1))
        assert len(storage) == 0

    def test_batch_larger_than_capacity_keeps_the_last_items(self, make_storage):
        rb = TensorDictReplayBuffer(storage=make_storage(4))
        rb.extend(_batch(10))
        got = rb[torch.arange(4)]["next", "reward"].reshape(-1).tolist()
        assert sorted(got) == [6.0, 7.0, 8.0, 9.0]

    def test_sample_only_written_rows(self, make_storage):
        rb = TensorDictReplayBuffer(storage=make_storage(100), batch_size=64)
        rb.extend(_batch(3))
        for _ in range(10):
            s = rb.sample()
            assert s.batch_size == (64,)
            assert set(s["next", "reward"].reshape(-1).tolist()) <= {0.0, 1.0, 2.0}
            assert s["index"].max() < 3

    def test_empty(self, make_storage):
        rb = TensorDictReplayBuffer(storage=make_storage(8))
        rb.extend(_batch(5))
        rb.empty()
        assert len(rb) == 0
        with pytest.raises(RuntimeError, match="empty"):
            rb.sample(1)
        assert rb.extend(_batch(2)).tolist() == [0, 1]

    def test_index_out_of_range(self, make_storage):
        rb = TensorDictReplayBuffer(storage=make_storage(8))
        rb.extend(_batch(3))
        with pytest.raises(IndexError, match="index 3 out of range"):
            rb.storage.get(torch.tensor([0, 3]))
        with pytest.raises(IndexError):
            rb.storage.get(-1)

    def test_capacity_must_be_positive(self, make_storage):
        for bad in (0, -3):
            with pytest.raises(ValueError, match="max_size must be a positive int"):
                make_storage(bad)

    def test_state_dict_roundtrip(self, make_storage, tmp_path):
        a = TensorDictReplayBuffer(storage=make_storage(8))
        a.extend(_batch(11))
        state = a.storage.state_dict()
        b = make_storage(8)
        b.load_state_dict(state)
        assert len(b) == 8 and b.head == a.storage.head
        x, y = a.storage.get(torch.arange(8)), b.get(torch.arange(8))
        if isinstance(x, list):
            x, y = torch.stack(x), torch.stack(y)
        assert (x == y).all()

    def test_default_checkpointer_roundtrip(self, make_storage, tmp_path):
        a = TensorDictReplayBuffer(storage=make_storage(8))
        a.extend(_batch(11))
        a.storage.dumps(tmp_path / "ckpt")
        b = make_storage(8)
        b.loads(tmp_path / "ckpt")
        assert len(b) == 8 and b.head == a.storage.head
        x, y = a.storage.get(torch.arange(8)), b.get(torch.arange(8))
        if isinstance(x, list):
            x, y = torch.stack(x), torch.stack(y)
        assert (x == y).all()
        with pytest.raises(ValueError, match="max_size"):
            make_storage(9).loads(tmp_path / "ckpt")

    def test_state_dict_of_another_storage_type_is_refused(self, make_storage):
        a = make_storage(8)
        TensorDictReplayBuffer(storage=a).extend(_batch(3))
        other = ListStorage(8) if not isinstance(a, ListStorage) else LazyTensorStorage(8)
        TensorDictReplayBuffer(storage=other).extend(_batch(3))
        with pytest.raises(ValueError, match="storage state is for"):
            a.load_state_dict(other.state_dict())

    def test_add_stores_one_item(self, make_storage):
        # Defect 1 (issue 12): add() of a [10] TensorDict wrote 10 rows and set len to 10.
        rb = ReplayBuffer(storage=make_storage(5))
        traj = _batch(10)
        assert rb.add(traj) == 0 and len(rb) == 1
        assert rb.add(_batch(10, start=10)) == 1 and len(rb) == 2
        s = rb.sample(6)
        assert s.batch_size == (6, 10)
        assert s["next", "reward"].shape == (6, 10, 1)
        first = rb[0]
        assert first.batch_size == (10,)
        assert first["next", "reward"].reshape(-1).tolist() == [float(i) for i in range(10)]

    def test_lazy_allocation_and_write_head(self, make_storage):
        s = make_storage(6)
        assert len(s) == 0 and s.head == 0
        rb = TensorDictReplayBuffer(storage=s)
        rb.extend(_batch(4))
        assert len(s) == 4 and s.head == 4
        if hasattr(s, "allocated"):
            assert s.allocated and s.schema()[("action",)] == ((), torch.int64)


class TestBadInput:
    @pytest.mark.parametrize("kind", ["tensor", "memmap"])
    def test_mismatch_raises_and_writes_nothing(self, kind, tmp_path):
        rb = TensorDictReplayBuffer(storage=FACTORIES[kind](16, tmp_path))
        rb.extend(_batch(4))
        before = rb.storage.state_dict()
        before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in before.items()}
        before_t = [t.clone() for t in rb.storage.state_dict()["tensors"]]

        bad = _batch(3)
        bad["observation"] = torch.zeros(3, 5)
        with pytest.raises(
            ValueError, match=r"'observation' expected item shape \(4,\).*found item shape \(5,\)"
        ):
            rb.extend(bad)
        bad = _batch(3)
        bad["action"] = bad["action"].float()
        with pytest.raises(ValueError, match=r"'action'.*dtype torch.int64.*dtype torch.float32"):
            rb.extend(bad)
        bad = _batch(3)
        del bad["next", "done"]
        with pytest.raises(ValueError, match=r"missing key\(s\) \('next', 'done'\)"):
            rb.extend(bad)
        bad = _batch(3)
        bad["extra"] = torch.zeros(3)
        with pytest.raises(ValueError, match=r"unexpected key.*'extra'"):
            rb.extend(bad)
        with pytest.raises(TypeError, match=r"pytrees of tensors, found leaves of type \['int'"):
            rb.extend([1, 2])
        with pytest.raises(TypeError, match="holds TensorDicts or tensors, found pytrees"):
            rb.extend([torch.zeros(3), torch.zeros(3)])
        with pytest.raises(TypeError, match="holds TensorDicts or tensors, found str"):
            rb.extend("abc")
        with pytest.raises(ValueError, match="batch dim"):
            rb.extend(_batch(1)[0])

        assert len(rb) == 4 and rb.storage.head == before["head"]
        after_t = rb.storage.state_dict()["tensors"]
        assert all(torch.equal(x, y) for x, y in zip(before_t, after_t))
        assert rb.extend(_batch(2)).tolist() == [4, 5]

    def test_tensor_storage_of_tensors(self):
        rb = ReplayBuffer(storage=LazyTensorStorage(5), batch_size=3)
        rb.extend(torch.ones(2, 3))
        with pytest.raises(
            ValueError, match=r"expected item shape \(3,\).*found item shape \(4,\)"
        ):
            rb.extend(torch.ones(2, 4))
        with pytest.raises(TypeError, match="holds tensors"):
            rb.extend(_batch(2))
        assert rb.sample().shape == (3, 3)
        assert rb.add(torch.zeros(3)) == 2

    def test_multi_dim_batches_are_flattened(self):
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(20))
        td = _batch(6).reshape(2, 3)
        rb.extend(td)
        assert len(rb) == 6
        assert rb[torch.arange(6)]["action"].tolist() == [0, 1, 0, 1, 0, 1]


class TestMemmap:
    def test_reopen_holds_the_same_data(self, tmp_path):
        d = tmp_path / "rb"
        s = LazyMemmapStorage(50, scratch_dir=d)
        rb = TensorDictReplayBuffer(storage=s)
        rb.extend(_batch(30))
        rb.extend(_batch(30, start=30))  # wraps: head at 10
        ref = rb[torch.arange(50)]
        s.close()
        assert os.path.exists(d / "schema.json")

        s2 = LazyMemmapStorage(50, scratch_dir=d)
        assert len(s2) == 50 and s2.head == 10
        rb2 = TensorDictReplayBuffer(storage=s2)
        got = rb2[torch.arange(50)]
        assert (got == ref).all()
        # the writer continues at the head of the reopened storage
        assert rb2.extend(_batch(2, start=100)).tolist() == [10, 11]
        with pytest.raises(ValueError, match="max_size 50"):
            LazyMemmapStorage(60, scratch_dir=d)
        s2.close()

    def test_temporary_dir_is_removed_on_close(self):
        s = LazyMemmapStorage(10)
        rb = ReplayBuffer(storage=s)
        rb.extend(_batch(3))
        d = s.scratch_dir
        assert os.path.isdir(d)
        rb.close()
        rb.close()  # idempotent
        assert not os.path.exists(d)
        with pytest.raises(RuntimeError, match="closed"):
            rb.extend(_batch(1))
        with pytest.raises(RuntimeError, match="closed"):
            rb.sample(1)

    def test_pages_are_released(self, tmp_path):
        s = LazyMemmapStorage(1000, scratch_dir=tmp_path / "m", release_bytes=1 << 16)
        rb = ReplayBuffer(storage=s)
        rb.extend(torch.ones(1000, 256, dtype=torch.uint8))
        assert s._pending < (1 << 16)
        assert rb.sample(10).sum() == 10 * 256

    def test_pickle_reopens_files(self, tmp_path):
        import pickle

        s = LazyMemmapStorage(10, scratch_dir=tmp_path / "p")
        rb = TensorDictReplayBuffer(storage=s)
        rb.extend(_batch(4))
        rb2 = pickle.loads(pickle.dumps(rb))
        assert len(rb2) == 4
        assert (rb2[torch.arange(4)] == rb[torch.arange(4)]).all()


@settings(max_examples=40, deadline=None)
@given(
    cap=st.integers(1, 12),
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=8),
    kind=st.sampled_from(["list", "tensor"]),
)
def test_round_robin_matches_a_reference_model(cap, sizes, kind):
    storage = ListStorage(cap) if kind == "list" else LazyTensorStorage(cap)
    rb = ReplayBuffer(storage=storage)
    slots = [None] * cap
    cursor, counter = 0, 0
    for n in sizes:
        items = list(range(counter, counter + n))
        counter += n
        data = torch.tensor(items, dtype=torch.long) if kind == "tensor" else items
        if kind == "tensor" and n == 0:
            data = torch.zeros(0, dtype=torch.long)
        rb.extend(data)
        for item in items:  # reference: one item at a time
            slots[cursor] = item
            cursor = (cursor + 1) % cap
        filled = [s for s in slots if s is not None]
        assert len(rb) == len(filled)
        if len(rb):
            got = rb.storage.get(torch.arange(len(rb)))
            got = got.tolist() if isinstance(got, torch.Tensor) else got
            assert got == slots[: len(rb)]
            assert rb.storage.head == cursor


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensor_storage_on_cuda():
    from streamrl.data import TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(100, device="cuda"), batch_size=16
    )
    rb.extend(_batch(40))  # CPU batch, copied to the device
    assert rb.storage.column("action").device.type == "cuda"
    s = rb.sample()
    assert s["observation"].device.type == "cuda" and s["index"].device.type == "cuda"
    s["td_error"] = torch.rand(16, device="cuda")
    rb.update_tensordict_priority(s)
    got = rb.storage.get(torch.tensor([3]))
    assert got["next", "reward"].item() == 3.0


def test_set_keeps_the_items_batch_dims_of_a_multi_dim_batch():
    storage = LazyTensorStorage(5)
    storage.set(range(3), TensorDict({"x": torch.arange(12).reshape(3, 4)}, [3, 4]))
    assert len(storage) == 3 and storage[0].batch_size == (4,)
    assert storage[2]["x"].tolist() == [8, 9, 10, 11]


@pytest.mark.parametrize("cls", [LazyTensorStorage, LazyMemmapStorage])
def test_ndim_counts_elements_of_multi_dim_batches(cls, tmp_path):
    storage = cls(100, ndim=2) if cls is LazyTensorStorage else cls(
        100, ndim=2, scratch_dir=tmp_path / "mm")
    rb = ReplayBuffer(storage=storage, batch_size=4)
    data = TensorDict({"x": torch.arange(12).reshape(4, 3), "y": torch.ones(4, 3, 2)}, [4, 3])
    rb.extend(data)
    assert len(rb) == 12 and storage.shape == (33, 3)
    assert rb.sample().shape == (4,)
    assert storage[:]["x"].tolist() == list(range(12))  # rows one after another
    rb.extend(data[:1])
    assert len(rb) == 15


def test_ndim_bad_input():
    with pytest.raises(ValueError, match="ndim must be an int >= 1"):
        LazyTensorStorage(10, ndim=0)
    rb = ReplayBuffer(storage=LazyTensorStorage(100, ndim=2))
    with pytest.raises(ValueError, match="at least 2 dims"):
        rb.extend(TensorDict({"x": torch.zeros(3)}, [3]))
    rb.extend(TensorDict({"x": torch.zeros(2, 5)}, [2, 5]))
    with pytest.raises(ValueError, match=r"dims 1..1 are \[5\]"):
        rb.extend(TensorDict({"x": torch.zeros(2, 4)}, [2, 4]))
    with pytest.raises(ValueError, match="use extend"):
        rb.add(TensorDict({"x": torch.zeros(5)}, [5]))
    assert len(rb) == 10


def test_ndim_pytree_batches():
    rb = ReplayBuffer(storage=LazyTensorStorage(50, ndim=2), batch_size=5)
    rb.extend({"a": torch.ones(4, 3, 2), "b": [torch.zeros(4, 3)]})
    assert len(rb) == 12
    s = rb.sample()
    assert s["a"].shape == (5, 2) and s["b"][0].shape == (5,)
