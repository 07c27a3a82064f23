"""TorchRL 0.14's replay-buffer surface: buffer arguments, transforms, writers, storages."""

import multiprocessing as mp

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    CompressedListStorage,
    ImmutableDatasetWriter,
    LazyMemmapStorage,
    LazyStackStorage,
    LazyTensorStorage,
    ListStorage,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SliceSampler,
    TensorDictMaxValueWriter,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
    TensorDictRoundRobinWriter,
    TensorStorage,
)


def _td(n, start=0):
    return TensorDict({"x": torch.arange(start, start + n).float()}, [n])


class TestAddOneItem:
    def test_trajectory_items_and_extend_after_add(self):
        rb = ReplayBuffer(storage=LazyTensorStorage(4))
        assert rb.add(_td(10)) == 0 and len(rb) == 1
        # a batch of such items extends item-wise, a mismatching batch is refused
        idx = rb.extend(torch.stack([_td(10, 10), _td(10, 20)]))
        assert idx.tolist() == [1, 2] and len(rb) == 3
        with pytest.raises(ValueError, match=r"items of batch size \[10\]"):
            rb.extend(_td(10))
        with pytest.raises(ValueError, match=r"items of batch size \[10\].*\[5\]"):
            rb.add(_td(5))
        assert len(rb) == 3

    def test_checkpoint_keeps_item_dims(self, tmp_path):
        rb = ReplayBuffer(storage=LazyMemmapStorage(4, scratch_dir=tmp_path / "a"))
        rb.add(_td(10))
        rb.dumps(tmp_path / "rb.pt")
        rb2 = ReplayBuffer(storage=LazyTensorStorage(4))
        rb2.loads(tmp_path / "rb.pt")
        assert rb2[0].batch_size == (10,) and len(rb2) == 1
        # the memmap directory reopens with the item dims too
        again = LazyMemmapStorage(4, scratch_dir=tmp_path / "a")
        assert again.item_batch == (10,) and again.get(0).batch_size == (10,)

    def test_old_state_without_item_batch_loads(self):
        rb = ReplayBuffer(storage=LazyTensorStorage(4))
        rb.extend(_td(3))
        state = rb.storage.state_dict()
        del state["item_batch"]  # written before the key existed
        fresh = LazyTensorStorage(4)
        fresh.load_state_dict(state)
        assert fresh.item_batch == () and fresh.get(2)["x"].item() == 2.0

    def test_prioritized_add_with_priority(self):
        rb = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0,
                                               storage=LazyTensorStorage(4))
        item = _td(5)
        item["td_error"] = torch.tensor([0.0, 3.0, 1.0, 0.0, 0.0])
        assert rb.add(item) == 0 and len(rb) == 1
        assert "td_error" not in rb[0].keys()
        assert rb.sampler._sum_tree.get(torch.tensor([0]).numpy())[0] == pytest.approx(3.0)


class TestBufferArguments:
    def test_generator_drives_sampling(self):
        def draw(seed):
            g = torch.Generator().manual_seed(seed)
            rb = ReplayBuffer(storage=LazyTensorStorage(100), generator=g)
            rb.extend(torch.arange(100))
            return rb.sample(20)

        torch.manual_seed(0)
        a = draw(5)
        torch.manual_seed(1)  # the global seed does not matter
        assert torch.equal(a, draw(5))
        assert not torch.equal(a, draw(6))
        with pytest.raises(TypeError, match=r"torch\.Generator"):
            ReplayBuffer(generator=5)

    def test_prefetch_zero_means_none(self):
        rb = ReplayBuffer(storage=LazyTensorStorage(10), prefetch=0, batch_size=2)
        rb.extend(torch.arange(10))
        assert rb.sample().shape == (2,) and rb._prefetcher is None
        with pytest.raises(ValueError, match=">= 0"):
            ReplayBuffer(prefetch=-1, batch_size=2)

    def test_transforms_in_order_and_inverted(self):
        rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=10,
                          sampler=None, transform=lambda x: x * 10)
        assert rb.append_transform(lambda x: x + 1) is rb
        rb.insert_transform(0, lambda x: -x)

        class Scale:
            def __call__(self, x):
                return x * 2

            def inv(self, x):
                return x / 2

        rb.append_transform(Scale(), invert=True)
        rb.extend(torch.ones(10))
        assert (rb.storage.get(torch.arange(10)) == 2).all()  # written through Scale()
        # sample: -x, *10, +1, then Scale.inv
        assert (rb.sample() == (-2 * 10 + 1) / 2).all()
        with pytest.raises(TypeError, match="callable"):
            rb.append_transform(3)

    def test_writes_go_through_each_inverse_last_first(self):
        calls = []

        class Logged:
            def __init__(self, name):
                self.name = name

            def __call__(self, x):
                calls.append(("fwd", self.name))
                return x

            def inv(self, x):
                calls.append(("inv", self.name))
                return x + 1 if self.name == "ctor" else x * 3

        rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=4, transform=Logged("ctor"))
        rb.append_transform(Logged("app"))
        rb.append_transform(Logged("flip"), invert=True)
        rb.extend(torch.ones(4))
        # written: flip's forward, then app.inv (x3), then ctor.inv (+1)
        assert calls == [("fwd", "flip"), ("inv", "app"), ("inv", "ctor")]
        assert (rb.storage.get(torch.arange(4)) == 4).all()
        calls.clear()
        rb.sample()
        assert calls == [("fwd", "ctor"), ("fwd", "app"), ("inv", "flip")]

    def test_env_transform_inverse_keys_on_write(self):
        # an env transform's in_keys_inv path runs when data is written, its forward on samples
        from streamrl.envs.transforms import RenameTransform

        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=4,
                                    transform=RenameTransform(["a"], ["b"], ["c"], ["d"]))
        rb.extend(_td(4).set("d", torch.zeros(4)))
        stored = rb.storage.get(torch.arange(4))
        assert "c" in stored.keys() and "d" not in stored.keys()

    def test_priority_weight_in_info(self):
        rb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5,
                                               storage=LazyTensorStorage(10), batch_size=4)
        rb.extend(_td(8))
        s, info = rb.sample(return_info=True)
        assert torch.equal(info["priority_weight"], info["_weight"])
        assert torch.equal(s["_weight"], info["_weight"])
        assert torch.equal(s["priority_weight"], s["_weight"])  # both spellings read
        prb = PrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage(10))
        prb.extend(torch.arange(5))
        assert "priority_weight" in prb.sample(3, return_info=True)[1]


def _shared_writer(rb, rounds):
    for i in range(rounds):
        rb.extend(TensorDict({"x": torch.full((4,), float(i))}, [4]))


class TestShared:
    # spawn pickles the buffer (the real test of sharing); fork is only here to stay fast
    @pytest.mark.parametrize("kind, method", [("memmap", "spawn"), ("tensor", "fork")])
    def test_worker_process_extends_parent_samples(self, kind, method):
        if kind == "memmap":
            storage = LazyMemmapStorage(64)
        else:
            storage = LazyTensorStorage(64)
            ReplayBuffer(storage=storage).extend(TensorDict({"x": torch.zeros(1)}, [1]))
        rb = ReplayBuffer(storage=storage, shared=True, batch_size=64)
        proc = mp.get_context(method).Process(target=_shared_writer, args=(rb, 5))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        assert len(rb) == 20 + (kind == "tensor")
        assert set(rb.sample()["x"].tolist()) >= {0.0, 4.0}
        rb.close()

    def test_refusals(self):
        with pytest.raises(TypeError, match="tensor storage"):
            ReplayBuffer(storage=ListStorage(4), shared=True)
        with pytest.raises(ValueError, match="allocated"):
            ReplayBuffer(storage=LazyTensorStorage(4), shared=True)
        with pytest.raises(ValueError, match="priorities"):
            PrioritizedReplayBuffer(alpha=1.0, beta=1.0, storage=LazyMemmapStorage(4),
                                    shared=True)
        with pytest.raises(ValueError, match="cache_values"):
            ReplayBuffer(storage=LazyMemmapStorage(4), shared=True,
                         sampler=SliceSampler(slice_len=2, cache_values=True))


class TestWriters:
    def test_tensordict_round_robin(self):
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(4),
                                    writer=TensorDictRoundRobinWriter())
        assert rb.extend(_td(3)).tolist() == [0, 1, 2]
        assert rb.extend(_td(3, 3)).tolist() == [3, 0, 1]
        assert rb[torch.arange(4)]["x"].tolist() == [4.0, 5.0, 2.0, 3.0]

    def test_immutable_dataset(self):
        data = TensorDict({"x": torch.arange(6)}, [6])
        rb = TensorDictReplayBuffer(storage=TensorStorage(data), writer=ImmutableDatasetWriter(),
                                    batch_size=3)
        assert len(rb) == 6 and rb.sample().batch_size == (3,)
        with pytest.raises(RuntimeError, match="immutable"):
            rb.extend(data)
        with pytest.raises(RuntimeError, match="immutable"):
            rb.add(data[0])
        assert len(rb) == 6 and rb.storage.get(0)["x"].item() == 0

    def test_max_value_writer_default_rank_key(self):
        w = TensorDictMaxValueWriter(rank_key=None)
        assert w.rank_key == ("next", "reward")
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(2), writer=w)
        rb.extend(TensorDict({"next": {"reward": torch.tensor([[1.0], [5.0], [3.0]])}}, [3]))
        assert sorted(rb[torch.arange(2)]["next", "reward"].reshape(-1).tolist()) == [3.0, 5.0]


class TestNewStorages:
    def test_tensor_storage_wraps_without_copy(self):
        data = TensorDict({"x": torch.arange(10.0).reshape(5, 2), "n": {"y": torch.zeros(5, 2, 3)}},
                          [5, 2])
        s = TensorStorage(data)
        assert len(s) == 5 and s.max_size == 5 and s.item_batch == (2,)
        assert s.get(1)["x"].tolist() == [2.0, 3.0]
        rb = ReplayBuffer(storage=s)
        rb.extend(TensorDict({"x": torch.full((1, 2), -1.0), "n": {"y": torch.ones(1, 2, 3)}},
                             [1, 2]))
        assert data["x"][0].tolist() == [-1.0, -1.0]  # written in place, round-robin from 0
        t = TensorStorage(torch.arange(4))
        assert t.get(torch.tensor([3, 1])).tolist() == [3, 1]
        with pytest.raises(ValueError, match="max_size must equal"):
            TensorStorage(torch.arange(4), max_size=8)
        with pytest.raises(TypeError, match="tensor or a TensorDict"):
            TensorStorage([1, 2])
        with pytest.raises(ValueError, match="leading dim"):
            TensorStorage(torch.tensor(1.0))

    def test_lazy_stack_storage_heterogeneous(self):
        rb = ReplayBuffer(storage=LazyStackStorage(10, stack_dim=-1))
        rb.add(TensorDict(a=torch.zeros(3, 4), batch_size=[3]))
        rb.add(TensorDict(a=torch.ones(3, 5), batch_size=[3]))
        out = rb[:]
        assert out.batch_size == (3, 2)
        assert out[:, 0]["a"].shape == (3, 4) and out[:, 1]["a"].shape == (3, 5)
        with pytest.raises(TypeError, match="holds TensorDicts"):
            rb.extend([1, 2])
        unbounded = LazyStackStorage()
        assert unbounded.max_size > 10**9

    def test_compressed_storage_round_trip_and_codecs(self):
        frames = torch.randint(0, 3, (6, 4, 84, 84), dtype=torch.uint8)
        s = CompressedListStorage(10, compression_level=9)
        rb = ReplayBuffer(storage=s)
        rb.extend(TensorDict({"obs": frames, "r": torch.arange(6.0)}, [6]))
        got = rb[torch.arange(6)]
        assert torch.equal(got["obs"], frames) and got["r"].tolist() == list(range(6))
        stored = sum(p[1].numel() for _, _, leaves in s._items for p in leaves)
        assert stored < frames.numel() / 3  # low-entropy frames compress
        calls = []

        def comp(t):
            calls.append(t.dtype)
            return t.contiguous().reshape(-1).view(torch.uint8).clone()

        custom = ReplayBuffer(storage=CompressedListStorage(
            4, compression_fn=comp, decompression_fn=lambda b: b))
        custom.extend(torch.arange(6.0).reshape(3, 2))
        assert custom[1].tolist() == [2.0, 3.0] and calls == [torch.float32] * 3
        with pytest.raises(ValueError, match="both"):
            CompressedListStorage(4, compression_fn=comp)
        with pytest.raises(ValueError, match="compression_level"):
            CompressedListStorage(4, compression_level=30)
        bad = ReplayBuffer(storage=CompressedListStorage(
            4, compression_fn=lambda t: t, decompression_fn=lambda b: b))
        with pytest.raises(TypeError, match="uint8"):
            bad.extend(torch.zeros(2, 3))
        assert len(bad) == 0


class TestEnsemble:
    def _members(self):
        from streamrl.data import ReplayBufferEnsemble  # noqa: F401

        a = TensorDictReplayBuffer(storage=LazyTensorStorage(10), transform=lambda td: td.set(
            "src", torch.zeros(td.batch_size)))
        b = TensorDictReplayBuffer(storage=LazyTensorStorage(10), transform=lambda td: td.set(
            "src", torch.ones(td.batch_size)))
        a.extend(_td(5))
        b.extend(_td(5, 100))
        return a, b

    def test_sample_from_all_and_transforms(self):
        from streamrl.data import ReplayBufferEnsemble

        a, b = self._members()
        ens = ReplayBufferEnsemble(a, b, sample_from_all=True, batch_size=6,
                                   transform=lambda td: td.set("twice", td["src"] * 2))
        s, info = ens.sample(return_info=True)
        assert s.batch_size == (2, 3)
        assert s["src"][:, 0].tolist() == [0.0, 1.0] and s["twice"][:, 0].tolist() == [0.0, 2.0]
        assert (s["x"][0] < 5).all() and (s["x"][1] >= 100).all()
        assert info["buffer_ids"].tolist() == [0, 1] and len(info["infos"]) == 2
        assert len(ens) == 2 and ens[1] is b

    def test_p_and_sampleable(self):
        from streamrl.data import ReplayBufferEnsemble

        a, b = self._members()
        ens = ReplayBufferEnsemble(a, b, p=[0.0, 1.0], num_buffer_sampled=3,
                                   generator=torch.Generator().manual_seed(0))
        assert (ens.sample(6)["src"] == 1).all()
        empty = TensorDictReplayBuffer(storage=LazyTensorStorage(10))
        ens2 = ReplayBufferEnsemble(empty, a, p="sampleable", num_buffer_sampled=4)
        assert (ens2.sample(8)["src"] == 0).all()
        state = ens.state_dict()
        x = ens.sample(6)["x"]
        ens.load_state_dict(state)
        assert torch.equal(ens.sample(6)["x"], x)

    def test_routed_writes(self):
        from streamrl.data import ReplayBufferEnsemble

        a = ReplayBuffer(storage=LazyTensorStorage(10))
        b = ReplayBuffer(storage=LazyTensorStorage(10))
        ens = ReplayBufferEnsemble(a, b, routing_key="member")
        ens.extend(TensorDict({"member": torch.tensor([1, 0, 1]), "x": torch.arange(3)}, [3]))
        assert len(a) == 1 and len(b) == 2 and b[torch.arange(2)]["x"].tolist() == [0, 2]
        by_dim = ReplayBufferEnsemble(ReplayBuffer(storage=LazyTensorStorage(10)),
                                      ReplayBuffer(storage=LazyTensorStorage(10)), routing_dim=0)
        by_dim.extend(TensorDict({"x": torch.arange(6).reshape(2, 3)}, [2, 3]))
        assert by_dim[1][torch.arange(3)]["x"].tolist() == [3, 4, 5]
        with pytest.raises(ValueError, match="one entry per member"):
            by_dim.extend(TensorDict({"x": torch.zeros(3, 2)}, [3, 2]))
        with pytest.raises(ValueError, match=r"member ids must be in \[0, 2\)"):
            ens.extend(TensorDict({"member": torch.tensor([2]), "x": torch.arange(1)}, [1]))

    def test_bad_input(self):
        from streamrl.data import ReplayBufferEnsemble

        a, b = self._members()
        with pytest.raises(ValueError, match="at least one"):
            ReplayBufferEnsemble()
        with pytest.raises(TypeError, match="member 1 must be a ReplayBuffer"):
            ReplayBufferEnsemble(a, [1])
        with pytest.raises(ValueError, match="do not pass p"):
            ReplayBufferEnsemble(a, b, p=[1, 1], sample_from_all=True)
        with pytest.raises(ValueError, match="2 non-negative weights"):
            ReplayBufferEnsemble(a, b, p=[1.0])
        with pytest.raises(ValueError, match="not a multiple"):
            ReplayBufferEnsemble(a, b).sample(5)
        with pytest.raises(RuntimeError, match="read-only"):
            ReplayBufferEnsemble(a, b).extend(_td(2))


@pytest.mark.parametrize("kind", ["tensor", "memmap"])
class TestTensorclassAndPytree:
    def _storage(self, kind, tmp_path, name="a"):
        if kind == "tensor":
            return LazyTensorStorage(10)
        return LazyMemmapStorage(10, scratch_dir=tmp_path / name)

    def test_tensorclass_round_trip(self, kind, tmp_path):
        from tensordict import tensorclass

        @tensorclass
        class Step:
            obs: torch.Tensor
            reward: torch.Tensor

        rb = ReplayBuffer(storage=self._storage(kind, tmp_path), batch_size=4)
        rb.extend(Step(obs=torch.arange(6.0).reshape(3, 2), reward=torch.arange(3.0),
                       batch_size=[3]))
        rb.add(Step(obs=torch.ones(2), reward=torch.tensor(9.0), batch_size=[]))
        s = rb.sample()
        assert isinstance(s, Step) and s.batch_size == (4,) and s.obs.shape == (4, 2)
        assert rb[3].reward.item() == 9.0 and isinstance(rb[3], Step)
        with pytest.raises(TypeError, match="holds Step tensorclasses, found pytrees"):
            rb.extend({"obs": torch.zeros(2, 2)})

    def test_pytree_round_trip_and_checkpoint(self, kind, tmp_path):
        rb = ReplayBuffer(storage=self._storage(kind, tmp_path), batch_size=4)
        rb.extend({"obs": torch.zeros(5, 3), "pair": (torch.arange(5), torch.ones(5, 1))})
        rb.add({"obs": torch.ones(3), "pair": (torch.tensor(7), torch.ones(1))})
        s = rb.sample()
        assert set(s) == {"obs", "pair"} and isinstance(s["pair"], tuple)
        assert s["obs"].shape == (4, 3) and s["pair"][1].shape == (4, 1)
        assert rb[5]["pair"][0].item() == 7
        fresh = ReplayBuffer(storage=LazyTensorStorage(10))
        fresh.load_state_dict(rb.state_dict())
        assert fresh[5]["pair"][0].item() == 7
        if kind == "memmap":  # the structure reopens with the files
            again = LazyMemmapStorage(10, scratch_dir=tmp_path / "a")
            assert again.get(5)["pair"][0].item() == 7
        with pytest.raises(ValueError, match="share their first dim"):
            rb.extend({"obs": torch.zeros(2, 3), "pair": (torch.arange(3), torch.ones(2, 1))})
        with pytest.raises(TypeError, match="pytrees of tensors"):
            rb.extend({"obs": [1, 2]})
        with pytest.raises(TypeError, match="holds pytrees, found TensorDicts"):
            rb.extend(TensorDict({"obs": torch.zeros(2, 3)}, [2]))
        assert len(rb) == 6
