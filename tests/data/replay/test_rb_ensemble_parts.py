"""StorageEnsemble, SamplerEnsemble, WriterEnsemble and ReplayBufferEnsemble built from them."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    ListStorage,
    RandomSampler,
    ReplayBuffer,
    ReplayBufferEnsemble,
    RoundRobinWriter,
    SamplerEnsemble,
    SamplerWithoutReplacement,
    StorageEnsemble,
    TensorDictReplayBuffer,
    WriterEnsemble,
)


def _filled(*values, size=4):
    rbs = [ReplayBuffer(storage=LazyTensorStorage(size)) for _ in values]
    for rb, v in zip(rbs, values):
        rb.extend(torch.full((size,), float(v)))
    return rbs


class TestStorageEnsemble:
    def test_get_pair_and_index_td(self):
        a, b = _filled(1, 2)
        ens = StorageEnsemble(a.storage, b.storage, transforms=[lambda x: -x, None])
        assert len(ens) == 2 and ens[1] is b.storage
        bid, items = ens.get((0, torch.tensor([0, 1])))
        assert bid == 0 and items.tolist() == [-1.0, -1.0]
        index = TensorDict(
            {"buffer_ids": torch.tensor([1, 0]), "index": torch.tensor([[0], [3]])}, [2]
        )
        out = ens.get(index)
        assert [i for i, _ in out] == [1, 0]
        assert out[0][1].tolist() == [2.0] and out[1][1].tolist() == [-1.0]

    def test_state_round_trip_and_empty(self):
        a, b = _filled(1, 2)
        ens = StorageEnsemble(a.storage, b.storage)
        state = ens.state_dict()
        fresh = StorageEnsemble(LazyTensorStorage(4), LazyTensorStorage(4))
        fresh.load_state_dict(state)
        assert fresh[1].get(torch.arange(4)).tolist() == [2.0] * 4
        ens.empty()
        assert len(a.storage) == 0 and len(b.storage) == 0
        ens.close()
        ens.close()

    def test_bad_input(self):
        (a,) = _filled(1)
        with pytest.raises(ValueError, match="at least one"):
            StorageEnsemble()
        with pytest.raises(TypeError, match="member 1 must be a Storage"):
            StorageEnsemble(a.storage, [1])
        with pytest.raises(ValueError, match="one entry per storage"):
            StorageEnsemble(a.storage, transforms=[None, None])
        with pytest.raises(TypeError, match="callable"):
            StorageEnsemble(a.storage, transforms=[3])
        ens = StorageEnsemble(a.storage)
        with pytest.raises(IndexError, match="buffer id 1 out of range"):
            ens.get((1, 0))
        with pytest.raises(TypeError, match="buffer_id, index"):
            ens.get(torch.tensor([0]))
        with pytest.raises(ValueError, match="1 members, this ensemble 2"):
            StorageEnsemble(a.storage, ListStorage(3)).load_state_dict(ens.state_dict())


class TestSamplerEnsemble:
    def test_sample_from_all_shapes(self):
        a, b = _filled(1, 2)
        samplers = SamplerEnsemble(RandomSampler(), RandomSampler(), sample_from_all=True)
        index, info = samplers.sample(StorageEnsemble(a.storage, b.storage), 8)
        assert index["buffer_ids"].tolist() == [0, 1]
        assert index["index"].shape == (2, 4) and len(info["infos"]) == 2
        assert bool((index["index"] < 4).all()) and bool((index["index"] >= 0).all())

    def test_weights_pick_only_positive_members(self):
        a, b = _filled(1, 2)
        samplers = SamplerEnsemble(RandomSampler(), RandomSampler(), p=[0, 1],
                                   num_buffer_sampled=5)
        index, _ = samplers.sample(StorageEnsemble(a.storage, b.storage), 5)
        assert index["buffer_ids"].tolist() == [1] * 5

    def test_sampleable_excludes_empty(self):
        (a,) = _filled(1)
        empty = ReplayBuffer(storage=LazyTensorStorage(4))
        samplers = SamplerEnsemble(RandomSampler(), RandomSampler(), p="sampleable",
                                   num_buffer_sampled=6)
        assert samplers.choose([0, len(a)]).tolist() == [1] * 6
        with pytest.raises(RuntimeError, match="every buffer"):
            samplers.choose([len(empty), 0])

    def test_state_round_trip_reproduces_draws(self):
        samplers = SamplerEnsemble(SamplerWithoutReplacement(), RandomSampler(), generator=(
            torch.Generator().manual_seed(0)))
        state = samplers.state_dict()
        first = samplers.choose([3, 3])
        other = SamplerEnsemble(SamplerWithoutReplacement(), RandomSampler())
        other.load_state_dict(state)
        assert torch.equal(other.choose([3, 3]), first)
        with pytest.raises(ValueError, match="sampler state is for"):
            SamplerEnsemble(RandomSampler(), RandomSampler()).load_state_dict(state)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="at least one"):
            SamplerEnsemble()
        with pytest.raises(TypeError, match="member 0 must be a Sampler"):
            SamplerEnsemble(object())
        with pytest.raises(ValueError, match="do not pass p"):
            SamplerEnsemble(RandomSampler(), p=[1], sample_from_all=True)
        with pytest.raises(ValueError, match="'sampleable'"):
            SamplerEnsemble(RandomSampler(), p="uniform")
        with pytest.raises(ValueError, match="positive int"):
            SamplerEnsemble(RandomSampler(), num_buffer_sampled=0)
        with pytest.raises(TypeError, match=r"torch\.Generator"):
            SamplerEnsemble(RandomSampler(), generator=3)
        samplers = SamplerEnsemble(RandomSampler(), RandomSampler())
        with pytest.raises(ValueError, match="not a multiple"):
            samplers.part_size(3)
        with pytest.raises(ValueError, match="expected 2 member lengths"):
            samplers.choose([1])
        (a,) = _filled(1)
        with pytest.raises(ValueError, match="1 members, this sampler ensemble 2"):
            samplers.sample(StorageEnsemble(a.storage), 2)


class TestWriterEnsemble:
    def test_members_and_state(self):
        w = WriterEnsemble(RoundRobinWriter(), RoundRobinWriter())
        w[1].plan(3, 0, 4)
        state = w.state_dict()
        other = WriterEnsemble(RoundRobinWriter(), RoundRobinWriter())
        other.load_state_dict(state)
        assert other[1].state_dict()["cursor"] == 3
        w.empty()
        assert w[1].state_dict()["cursor"] == 0

    def test_bad_input(self):
        with pytest.raises(ValueError, match="at least one"):
            WriterEnsemble()
        with pytest.raises(TypeError, match="member 0 must be a Writer"):
            WriterEnsemble(RandomSampler())
        with pytest.raises(ValueError, match="1 members, this ensemble 2"):
            WriterEnsemble(RoundRobinWriter(), RoundRobinWriter()).load_state_dict(
                WriterEnsemble(RoundRobinWriter()).state_dict())


class TestReplayBufferEnsembleParts:
    def test_parts_of_buffers(self):
        a = TensorDictReplayBuffer(storage=LazyTensorStorage(4))
        b = TensorDictReplayBuffer(storage=LazyTensorStorage(4))
        ens = ReplayBufferEnsemble(a, b, p=[1, 3])
        assert ens.storage[0] is a.storage and ens.writer[1] is b.writer
        assert ens.sampler[0] is a.sampler and torch.equal(
            ens.sampler.p, torch.tensor([1.0, 3.0], dtype=torch.float64))

    def test_built_from_parts(self):
        storages = StorageEnsemble(LazyTensorStorage(4), LazyTensorStorage(4),
                                   transforms=[None, lambda td: td.set("x", td["x"] * 10)])
        ens = ReplayBufferEnsemble(
            storages=storages,
            samplers=SamplerEnsemble(RandomSampler(), RandomSampler(), sample_from_all=True),
            writers=WriterEnsemble(RoundRobinWriter(), RoundRobinWriter()),
            batch_size=4,
        )
        ens[0].extend(TensorDict({"x": torch.ones(4)}, [4]))
        ens[1].extend(TensorDict({"x": torch.ones(4)}, [4]))
        assert ens[1].storage is storages[1]
        s = ens.sample()
        assert s.batch_size == (2, 2) and s["x"][:, 0].tolist() == [1.0, 10.0]

    def test_parts_bad_input(self):
        parts = dict(
            storages=StorageEnsemble(LazyTensorStorage(4)),
            samplers=SamplerEnsemble(RandomSampler()),
            writers=WriterEnsemble(RoundRobinWriter()),
        )
        (a,) = _filled(1)
        with pytest.raises(ValueError, match="not both"):
            ReplayBufferEnsemble(a, **parts)
        with pytest.raises(ValueError, match="to the SamplerEnsemble"):
            ReplayBufferEnsemble(**parts, p=[1.0])
        with pytest.raises(TypeError, match="writers must be a WriterEnsemble"):
            ReplayBufferEnsemble(**{**parts, "writers": None})
        with pytest.raises(ValueError, match="as many members"):
            ReplayBufferEnsemble(**{**parts, "writers": WriterEnsemble(
                RoundRobinWriter(), RoundRobinWriter())})
        with pytest.raises(ValueError, match="collate_fns must hold 1"):
            ReplayBufferEnsemble(**parts, collate_fns=[None, None])
        with pytest.raises(ValueError, match="buffers have theirs"):
            ReplayBufferEnsemble(a, collate_fns=[None])


class TestEnsembleTorchRL014:
    def _members(self, make_storage):
        rbs = []
        for i in range(2):
            rb = ReplayBuffer(storage=make_storage())
            rb.extend(TensorDict({"x": torch.full((6,), float(i))}, [6]))
            rbs.append(rb)
        return rbs

    def test_iterating_yields_samples_with_index(self):
        ens = ReplayBufferEnsemble(*self._members(lambda: LazyTensorStorage(10)),
                                   p=[0.0, 1.0], num_buffer_sampled=2, batch_size=4)
        batch = next(iter(ens))
        assert batch.shape == (2, 2)
        assert batch["index", "buffer_ids"].tolist() == [[1, 1], [1, 1]]
        assert bool((batch["index", "index"] < 6).all())
        assert (batch["x"] == 1).all()

    def test_iterating_needs_a_batch_size(self):
        ens = ReplayBufferEnsemble(*self._members(lambda: LazyTensorStorage(10)))
        with pytest.raises(ValueError, match="batch_size"):
            next(iter(ens))

    def test_empty_tensorstorage_members(self):
        from streamrl.data import TensorStorage

        ens = ReplayBufferEnsemble(
            *self._members(lambda: TensorStorage(TensorDict(batch_size=[10]))),
            sample_from_all=True,
        )
        assert len(ens[0]) == 6
        assert ens.sample(4)["index", "buffer_ids"].tolist() == [[0, 0], [1, 1]]

    def test_drop_last_needs_a_batch_size(self):
        with pytest.raises(ValueError, match="predictable batch-size"):
            ReplayBuffer(sampler=SamplerWithoutReplacement(drop_last=True))
        ReplayBuffer(sampler=SamplerWithoutReplacement(drop_last=True), batch_size=2)
