"""Storage checkpointers and the TED layouts they write; ReplayBuffer directory checkpoints."""

import importlib.util
import os
import sys

import pytest
import torch
from tensordict import TensorDict, assert_close

from streamrl.data import (
    CompressedListStorage,
    CompressedListStorageCheckpointer,
    Flat2TED,
    FlatStorageCheckpointer,
    H5Combine,
    H5Split,
    H5StorageCheckpointer,
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    ListStorageCheckpointer,
    MinSize,
    Nested2TED,
    NestedStorageCheckpointer,
    PrioritizedSampler,
    ReplayBuffer,
    SamplerWithoutReplacement,
    StorageCheckpointerBase,
    TED2Flat,
    TED2Nested,
    TensorDictReplayBuffer,
    TensorStorageCheckpointer,
)

HAS_H5PY = importlib.util.find_spec("h5py") is not None


def _ted(n=7, ends=(2, 4), start=0):
    """TED steps whose next observation is the following step's inside a trajectory."""
    done = torch.zeros(n, 1, dtype=torch.bool)
    for t in ends:
        if t < n:
            done[t] = True
    traj = torch.cat([torch.zeros(1, dtype=torch.long), done[:-1, 0].long().cumsum(0)])
    obs = (traj * 100 + torch.arange(n) + start).float()
    return TensorDict(
        {
            "obs": obs[:, None].expand(n, 2).clone(),
            "action": torch.arange(n) + start,
            "done": torch.zeros(n, 1, dtype=torch.bool),
            "terminated": torch.zeros(n, 1, dtype=torch.bool),
            "collector": {"traj_ids": traj},
            "next": {
                "obs": (obs + 1)[:, None].expand(n, 2).clone(),
                "done": done,
                "terminated": done.clone(),
                "reward": torch.arange(n).float()[:, None] + start,
                "info": torch.ones(n, 3),
            },
        },
        [n],
    )


def _rows(storage):
    return storage.get(torch.arange(len(storage)))


CHECKPOINTERS = {
    "tensor": TensorStorageCheckpointer,
    "flat": FlatStorageCheckpointer,
    "nested": NestedStorageCheckpointer,
    "h5": pytest.param(
        H5StorageCheckpointer,
        marks=pytest.mark.skipif(not HAS_H5PY, reason="h5py is not installed"),
    ),
}


class TestLayouts:
    def test_flat_round_trip_and_row_counts(self):
        ted = _ted()
        flat = TED2Flat()(ted)
        assert flat.batch_size == ()
        # 3 trajectories (ends at 2, 4 and the last row): 7 steps + 3 final observations
        assert flat["obs"].shape == (10, 2) and flat["reward"].shape == (7, 1)
        assert ("next", "obs") not in flat.keys(True) and ("next", "info") in flat.keys(True)
        assert int(flat["shift"]) == 7 and not bool(flat["is_full"])
        assert_close(Flat2TED()(flat), ted)

    def test_shift_of_a_full_storage_ends_a_trajectory(self):
        ted = _ted(n=6, ends=())
        # rows 0-1 are the newest writes, rows 2-5 the oldest: the trajectory breaks at row 1
        ted["next", "obs"][1] = -5.0
        layout = TED2Flat()
        layout.shift, layout.is_full = 2, True
        flat = layout(ted)
        assert flat["obs"].shape[0] == 8 and int(flat["shift"]) == 2 and bool(flat["is_full"])
        assert_close(Flat2TED()(flat), ted)

    def test_flat_out_and_path(self, tmp_path):
        ted = _ted()
        TED2Flat()(ted, tmp_path / "flat")
        flat = TensorDict.load_memmap(tmp_path / "flat")
        out = torch.zeros_like(TensorDict.cat([ted, ted]))
        assert Flat2TED()(flat, out) is out
        assert_close(out[:7], ted)
        assert bool((out[7:]["action"] == 0).all())

    def test_nested_rows_are_trajectories(self, tmp_path):
        ted = _ted()
        nested = TED2Nested()(ted, tmp_path / "nested")
        assert [t.shape[0] for t in nested["obs"].unbind(0)] == [4, 3, 3]
        assert [t.shape[0] for t in nested["action"].unbind(0)] == [3, 2, 2]
        assert_close(Nested2TED()(TensorDict.load_memmap(tmp_path / "nested")), ted)

    def test_h5_split_and_combine(self):
        nested = TED2Nested()(_ted())
        split = H5Split()(nested)
        assert sorted(k for k in split.keys() if k.isdigit()) == ["0", "1", "2"]
        assert split["1", "action"].tolist() == [3, 4]
        assert_close(Nested2TED()(H5Combine()(split)), _ted())

    def test_bad_input(self):
        with pytest.raises(TypeError, match="takes a TensorDict"):
            TED2Flat()(torch.zeros(3))
        with pytest.raises(ValueError, match="one non-empty batch dim"):
            TED2Flat()(_ted()[:0])
        with pytest.raises(KeyError, match="done key"):
            TED2Flat(done_key=("next", "missing"))(_ted())
        flat = TED2Flat()(_ted())
        flat["extra"] = torch.zeros(4)
        with pytest.raises(ValueError, match=r"expected 7 \(steps\) or 10"):
            Flat2TED()(flat)
        with pytest.raises(ValueError, match="not nested"):
            H5Split()(TensorDict({"obs": torch.zeros(3)}, []))
        with pytest.raises(ValueError, match=r"'0' \.\. 'n-1'"):
            H5Combine()(TensorDict({"1": {"obs": torch.zeros(3)}}, []))


@pytest.mark.parametrize("ckpt", list(CHECKPOINTERS.values()), ids=list(CHECKPOINTERS))
class TestTensorCheckpointers:
    @pytest.mark.parametrize("n", [7, 13])  # partly filled; wrapped around (head in the middle)
    def test_buffer_round_trip(self, ckpt, n, tmp_path):
        storage = LazyMemmapStorage(10, scratch_dir=tmp_path / "mm")
        storage.checkpointer = ckpt()
        rb = TensorDictReplayBuffer(storage=storage, sampler=SamplerWithoutReplacement())
        rb.extend(_ted(n=n, ends=(2, 4, 9)))
        rb.sample(3)
        rb.dumps(tmp_path / "rb")
        assert sorted(os.listdir(tmp_path / "rb")) == ["buffer.pt", "storage"]
        fresh = LazyTensorStorage(10)
        fresh.checkpointer = ckpt()
        rb2 = TensorDictReplayBuffer(storage=fresh, sampler=SamplerWithoutReplacement())
        rb2.loads(tmp_path / "rb")
        assert len(rb2) == len(rb) and fresh.head == storage.head
        assert_close(_rows(fresh), _rows(storage))
        assert rb2.writer.state_dict() == rb.writer.state_dict()
        assert torch.equal(rb2.sample(4)["index"], rb.sample(4)["index"])

    def test_empty_storage_round_trip(self, ckpt, tmp_path):
        storage = LazyTensorStorage(5)
        storage.checkpointer = ckpt()
        storage.dumps(tmp_path / "a")
        fresh = LazyTensorStorage(5)
        fresh.checkpointer = ckpt()
        fresh.loads(tmp_path / "a")
        assert len(fresh) == 0 and not fresh.allocated
        rb = ReplayBuffer(storage=storage)
        rb.extend(_ted())
        rb.empty()
        storage.dumps(tmp_path / "b")
        fresh.loads(tmp_path / "b")
        assert len(fresh) == 0 and set(fresh.schema()) == set(storage.schema())

    def test_written_by_another_checkpointer_is_refused(self, ckpt, tmp_path):
        storage = LazyTensorStorage(10)
        ReplayBuffer(storage=storage).extend(_ted())
        other = TensorStorageCheckpointer if ckpt is not TensorStorageCheckpointer else (
            FlatStorageCheckpointer)
        other().dumps(storage, tmp_path / "s")
        with pytest.raises(ValueError, match=f"written by '{other.__name__}'"):
            ckpt().loads(LazyTensorStorage(10), tmp_path / "s")


def test_tensor_checkpointer_items_with_batch_dims(tmp_path):
    storage = LazyTensorStorage(4)
    rb = ReplayBuffer(storage=storage)
    rb.add(TensorDict({"x": torch.arange(6.0).reshape(3, 2)}, [3]))
    rb.add(TensorDict({"x": -torch.ones(3, 2)}, [3]))
    TensorStorageCheckpointer().dumps(storage, tmp_path / "s")
    fresh = LazyTensorStorage(4)
    TensorStorageCheckpointer().loads(fresh, tmp_path / "s")
    assert fresh.item_batch == (3,)
    assert_close(_rows(fresh), _rows(storage))


class TestListCheckpointers:
    @pytest.mark.parametrize("kind", ["list", "compressed"])
    def test_buffer_round_trip(self, kind, tmp_path):
        make, ckpt = {
            "list": (ListStorage, ListStorageCheckpointer),
            "compressed": (CompressedListStorage, CompressedListStorageCheckpointer),
        }[kind]
        storage = make(6)
        storage.checkpointer = ckpt()
        rb = ReplayBuffer(storage=storage, sampler=PrioritizedSampler(6, 0.7, 0.9))
        rb.extend(torch.arange(16.0).reshape(8, 2))
        rb.update_priority(torch.tensor([0, 1]), torch.tensor([5.0, 0.1]))
        rb.dumps(tmp_path / "rb")
        fresh = make(6)
        fresh.checkpointer = ckpt()
        rb2 = ReplayBuffer(storage=fresh, sampler=PrioritizedSampler(6, 0.7, 0.9))
        rb2.loads(tmp_path / "rb")
        assert torch.equal(torch.stack(_rows(fresh)), torch.stack(_rows(storage)))
        assert fresh.head == storage.head == 2
        assert torch.equal(rb2.sample(5, return_info=True)[1]["index"],
                           rb.sample(5, return_info=True)[1]["index"])

    def test_bad_input(self, tmp_path):
        with pytest.raises(TypeError, match="checkpoints a CompressedListStorage"):
            CompressedListStorageCheckpointer().dumps(ListStorage(3), tmp_path / "x")
        ckpt = ListStorageCheckpointer()
        ckpt.register_save_hook(lambda x: x)
        with pytest.raises(ValueError, match="does not run save or load hooks"):
            ckpt.dumps(ListStorage(3), tmp_path / "x")
        storage = ListStorage(3)
        ReplayBuffer(storage=storage).extend([object()])
        with pytest.raises(TypeError, match="cannot be checkpointed"):
            ListStorageCheckpointer().dumps(storage, tmp_path / "y")
        assert not os.path.exists(tmp_path / "y")
        with pytest.raises(FileNotFoundError, match="no storage checkpoint"):
            ListStorageCheckpointer().loads(ListStorage(3), tmp_path / "missing")


class TestBufferIntegration:
    def test_without_checkpointer_one_file(self, tmp_path):
        rb = ReplayBuffer(storage=LazyTensorStorage(4))
        rb.extend(torch.arange(3))
        assert rb.storage.checkpointer is None
        rb.dumps(tmp_path / "rb.pt")
        assert os.path.isfile(tmp_path / "rb.pt")

    def test_register_hooks_on_the_buffer(self, tmp_path):
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
        rb.register_save_hook(TED2Flat())
        assert isinstance(rb.storage.checkpointer, TensorStorageCheckpointer)
        rb.extend(_ted())
        rb.dumps(tmp_path / "rb")
        flat = TensorDict.load_memmap(tmp_path / "rb" / "storage" / "data")
        assert flat["obs"].shape[0] == 10
        rb2 = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
        rb2.register_load_hook(Flat2TED())
        rb2.loads(tmp_path / "rb")
        assert_close(_rows(rb2.storage), _rows(rb.storage))

    def test_dump_replaces_an_older_checkpoint(self, tmp_path):
        storage = LazyTensorStorage(10)
        storage.checkpointer = FlatStorageCheckpointer()
        rb = ReplayBuffer(storage=storage)
        rb.extend(_ted())
        rb.dumps(tmp_path / "rb")
        rb.extend(_ted(n=3, ends=(), start=50))
        rb.dumps(tmp_path / "rb")
        fresh = LazyTensorStorage(10)
        fresh.checkpointer = FlatStorageCheckpointer()
        ReplayBuffer(storage=fresh).loads(tmp_path / "rb")
        assert len(fresh) == 10 and _rows(fresh)["action"][-1].item() == 52

    def test_bad_input(self, tmp_path):
        with pytest.raises(TypeError, match="StorageCheckpointerBase or None"):
            LazyTensorStorage(3).checkpointer = "flat"
        with pytest.raises(TypeError, match="must be callable"):
            StorageCheckpointerBase().register_save_hook(3)
        with pytest.raises(TypeError, match="checkpoints a LazyTensorStorage"):
            TensorStorageCheckpointer().dumps(ListStorage(3), tmp_path / "x")
        tensors = LazyTensorStorage(4)
        ReplayBuffer(storage=tensors).extend(torch.arange(3))
        tensors.register_save_hook(TED2Flat())
        with pytest.raises(ValueError, match="save hooks need a TensorDict storage"):
            tensors.dumps(tmp_path / "t")
        storage = LazyTensorStorage(10)
        storage.checkpointer = TensorStorageCheckpointer()
        rb = ReplayBuffer(storage=storage)
        rb.extend(_ted())
        rb.dumps(tmp_path / "rb")
        limited = ReplayBuffer(storage=LazyTensorStorage(10),
                               rate_limiter=MinSize(1))
        with pytest.raises(ValueError, match="rate limiter"):
            limited.loads(tmp_path / "rb")
        with pytest.raises(ValueError, match="max_size 10"):
            TensorStorageCheckpointer().loads(LazyTensorStorage(4), tmp_path / "rb" / "storage")

    def test_h5_without_h5py(self, tmp_path, monkeypatch):
        monkeypatch.setitem(sys.modules, "h5py", None)  # as if not installed: import fails
        storage = LazyTensorStorage(10)
        ReplayBuffer(storage=storage).extend(_ted())
        with pytest.raises(ImportError, match="needs h5py"):
            H5StorageCheckpointer().dumps(storage, tmp_path / "h5")
