"""dumps/loads: full state, atomic writes, no pickle."""

import os
import pickle

import pytest
import torch
from tensordict import TensorDict

import streamrl.data.replay_buffers.checkpoint as ckpt
from streamrl.data import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    ReplayBuffer,
    SamplerWithoutReplacement,
    SampleToInsertRatio,
    TensorDictPrioritizedReplayBuffer,
)


def _td(n, start=0):
    x = torch.arange(start, start + n)
    return TensorDict({"x": x, "obs": x.float()[:, None].expand(n, 3).clone()}, [n])


def _prb(storage):
    return TensorDictPrioritizedReplayBuffer(
        alpha=0.6,
        beta=0.4,
        storage=storage,
        batch_size=8,
        rate_limiter=SampleToInsertRatio(1.0, 4, 1000.0, max_sample_batch=8, max_insert_batch=50),
    )


@pytest.mark.parametrize("kind", ["tensor", "memmap"])
def test_roundtrip_restores_everything(kind, tmp_path):
    def storage(name):
        if kind == "tensor":
            return LazyTensorStorage(64)
        return LazyMemmapStorage(64, scratch_dir=tmp_path / name)

    rb = _prb(storage("a"))
    for i in range(3):
        rb.extend(_td(30, start=30 * i))  # wraps
    s = rb.sample()
    s["td_error"] = torch.rand(8) * 5
    rb.update_tensordict_priority(s)
    path = tmp_path / "ckpt" / "rb.pt"
    rb.dumps(path)
    assert sorted(os.listdir(path.parent)) == ["rb.pt"]  # no temp file left

    rb2 = _prb(storage("b"))
    rb2.loads(path)
    assert len(rb2) == 64 and rb2.storage.head == rb.storage.head
    assert (rb2.sampler._sum_tree.leaves == rb.sampler._sum_tree.leaves).all()
    assert rb2.sampler._max_leaf == rb.sampler._max_leaf
    assert rb2.rate_limiter.state_dict() == rb.rate_limiter.state_dict()
    for _ in range(3):
        a, b = rb.sample(), rb2.sample()
        assert (a == b).all()
    assert rb.extend(_td(5)).tolist() == rb2.extend(_td(5)).tolist()


def test_checkpoint_holds_only_the_written_rows(tmp_path):
    rb = ReplayBuffer(storage=LazyTensorStorage(100_000))
    rb.extend(torch.zeros(10, 8))
    rb.dumps(tmp_path / "small.pt")
    assert os.path.getsize(tmp_path / "small.pt") < 100_000  # not 100k x 8 floats


def test_sampler_without_replacement_epoch_is_restored(tmp_path):
    rb = ReplayBuffer(storage=LazyTensorStorage(20), sampler=SamplerWithoutReplacement())
    rb.extend(torch.arange(20))
    rb.sample(7)
    rb.dumps(tmp_path / "w.pt")
    rest = torch.cat([rb.sample(7), rb.sample(7)])
    rb2 = ReplayBuffer(storage=LazyTensorStorage(20), sampler=SamplerWithoutReplacement())
    rb2.loads(tmp_path / "w.pt")
    assert torch.equal(torch.cat([rb2.sample(7), rb2.sample(7)]), rest)


def test_list_storage_safe_subset_and_error(tmp_path):
    rb = ReplayBuffer(storage=ListStorage(10), collate_fn=lambda x: x)
    rb.extend([1, "two", 3.0, None, torch.ones(2), _td(2), [1, (2, 3)], {"k": torch.zeros(1)}])
    rb.dumps(tmp_path / "l.pt")
    rb2 = ReplayBuffer(storage=ListStorage(10), collate_fn=lambda x: x)
    rb2.loads(tmp_path / "l.pt")
    got = rb2[torch.arange(8)]
    assert got[:4] == [1, "two", 3.0, None]
    assert torch.equal(got[4], torch.ones(2))
    assert (got[5] == _td(2)).all()
    assert got[6] == [1, (2, 3)]
    assert torch.equal(got[7]["k"], torch.zeros(1))

    class Thing:
        pass

    rb.add(Thing())
    with pytest.raises(TypeError, match=r"item 8 cannot be checkpointed.*Thing"):
        rb.dumps(tmp_path / "bad.pt")
    assert not os.path.exists(tmp_path / "bad.pt")


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    rb = ReplayBuffer(storage=LazyTensorStorage(8))
    rb.extend(torch.arange(4))
    path = tmp_path / "rb.pt"
    rb.dumps(path)
    before = path.read_bytes()
    rb.extend(torch.arange(4))

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        rb.dumps(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["rb.pt"]


class _Evil:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Evil.ran = True
    return "pwned"


def test_loading_never_runs_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "streamrl.replay_buffer/1", "payload": _Evil()}, path)
    rb = ReplayBuffer(storage=LazyTensorStorage(8))
    with pytest.raises(ValueError, match="cannot read the checkpoint") as info:
        rb.loads(path)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert not _Evil.ran


def test_load_errors(tmp_path):
    rb = ReplayBuffer(storage=LazyTensorStorage(8))
    rb.extend(torch.arange(4))
    rb.dumps(tmp_path / "a.pt")
    with pytest.raises(ValueError, match="max_size 8"):
        ReplayBuffer(storage=LazyTensorStorage(16)).loads(tmp_path / "a.pt")
    with pytest.raises(ValueError, match="sampler state"):
        ReplayBuffer(storage=LazyTensorStorage(8), sampler=SamplerWithoutReplacement()).loads(
            tmp_path / "a.pt"
        )
    with pytest.raises(FileNotFoundError):
        rb.loads(tmp_path / "missing.pt")
    wrong = ReplayBuffer(storage=LazyTensorStorage(8))
    wrong.extend(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="schema"):
        wrong.loads(tmp_path / "a.pt")
