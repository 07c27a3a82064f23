"""ReplayBuffer API: writers, transforms, prefetch, rate limiting, concurrency."""

import threading
import time

import anyio
import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    ListStorage,
    MinSize,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    RoundRobinWriter,
    SampleToInsertRatio,
    TensorDictMaxValueWriter,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)


def _td(n, start=0):
    x = torch.arange(start, start + n)
    return TensorDict({"x": x, "next": {"reward": x[:, None].float()}}, [n])


def test_round_robin_writer_plan():
    w = RoundRobinWriter()
    p = w.plan(3, 0, 5)
    assert p.index.tolist() == [0, 1, 2] and p.start == 0 and p.new_len == 3
    p = w.plan(4, 3, 5)
    assert p.index.tolist() == [3, 4, 0, 1] and p.new_len == 5
    p = w.plan(12, 5, 5)
    assert p.source.tolist() == [7, 8, 9, 10, 11] and p.index.tolist() == [4, 0, 1, 2, 3]
    w2 = RoundRobinWriter()
    w2.load_state_dict(w.state_dict())
    assert w2.plan(1, 5, 5).index.tolist() == [4]
    with pytest.raises(ValueError, match="writer state"):
        TensorDictMaxValueWriter().load_state_dict(w.state_dict())


def test_max_value_writer_keeps_the_best():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(4), writer=TensorDictMaxValueWriter())
    rb.extend(_td(3, start=10))  # ranks 10, 11, 12
    rb.extend(_td(3, start=0))  # one free slot: the best of the batch (2) takes it
    assert sorted(rb[torch.arange(4)]["x"].tolist()) == [2, 10, 11, 12]
    rb.extend(_td(3, start=20))  # 20, 21, 22 replace 2, 10, 11
    assert sorted(rb[torch.arange(4)]["x"].tolist()) == [12, 20, 21, 22]
    rb.extend(_td(1, start=12))  # tie with the stored 12: stored wins
    assert sorted(rb[torch.arange(4)]["x"].tolist()) == [12, 20, 21, 22]
    fresh = TensorDictReplayBuffer(
        storage=LazyTensorStorage(4), writer=TensorDictMaxValueWriter(rank_key="score")
    )
    with pytest.raises(ValueError, match="rank key 'score' not found"):
        fresh.extend(_td(2))
    assert len(fresh) == 0
    with pytest.raises(ValueError, match="reduction"):
        TensorDictMaxValueWriter(reduction="mode")


def test_transform_getitem_iter_and_repr():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=4, transform=lambda t: t * 2)
    rb.extend(torch.arange(10))
    s = rb.sample()
    assert s.shape == (4,) and (s % 2 == 0).all()
    assert rb[torch.tensor([1, 2])].tolist() == [1, 2]
    assert rb[3].item() == 3
    it = iter(rb)
    assert all(next(it).shape == (4,) for _ in range(5))  # random sampler: endless
    assert "LazyTensorStorage" in repr(rb)
    data, info = rb.sample(3, return_info=True)
    assert data.shape == (3,)
    assert info["index"].shape == (3,)
    with pytest.raises(TypeError, match="PrioritizedSampler"):
        rb.update_priority(0, 1.0)
    with pytest.raises(TypeError, match="storage must be a Storage"):
        ReplayBuffer(storage=[1, 2])
    with pytest.raises(ValueError, match="batch_size"):
        ReplayBuffer(batch_size=0)
    with pytest.raises(ValueError, match="prefetch needs"):
        ReplayBuffer(prefetch=2)


def test_list_storage_defaults():
    rb = ReplayBuffer()
    rb.extend([torch.zeros(2), torch.ones(2)])
    assert rb.sample(5).shape == (5, 2)  # default collate stacks tensors
    assert torch.equal(rb[1], torch.ones(2))
    assert rb[:].shape == (2, 2) and rb[1:].shape == (1, 2)
    rb2 = ReplayBuffer()
    rb2.extend(["a", "b"])
    assert rb2[0] == "a" and rb2[1:] == ["b"]
    assert rb2.storage.get(slice(0, 2)) == ["a", "b"]
    assert set(rb2.sample(4)) <= {"a", "b"}
    with pytest.raises(TypeError, match="sequence"):
        rb2.extend(5)
    with pytest.raises(TypeError, match="sequence"):
        rb2.extend("abc")
    rb3 = PrioritizedReplayBuffer(alpha=1.0, beta=1.0, storage=ListStorage(3))
    rb3.extend(["a", "b", "c", "d"])
    assert len(rb3) == 3 and rb3.storage.get(torch.tensor([0]))[0] == "d"


def test_td_prioritized_extend_with_priorities():
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=1.0, beta=1.0, eps=0.0, storage=LazyTensorStorage(8)
    )
    td = _td(3)
    td["td_error"] = torch.tensor([[1.0, 5.0], [2.0, 0.0], [3.0, 1.0]])
    rb.extend(td)
    assert list(rb.sampler._sum_tree)[:4] == [5.0, 2.0, 3.0, 0.0]
    rb.extend(_td(1))  # no priorities: max seen so far
    assert rb.sampler._sum_tree[3] == 5.0
    s = rb.sample(4)
    s["td_error"] = torch.full((4,), 0.5)
    rb.update_tensordict_priority(s)
    assert all(rb.sampler._sum_tree[i] == 0.5 for i in s["index"].tolist())
    del s["td_error"]
    with pytest.raises(ValueError, match="td_error"):
        rb.update_tensordict_priority(s)
    # bad initial priorities are rejected before anything is written
    bad = _td(2)
    bad["td_error"] = torch.tensor([1.0, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        rb.extend(bad)
    bad["td_error"] = torch.tensor([1.0, -2.0])
    with pytest.raises(ValueError, match=">= 0"):
        rb.extend(bad)
    assert len(rb) == 4
    # extra dims are reduced per item (max by default, or as configured)
    s = rb.sample(2)
    s["td_error"] = torch.tensor([[1.0, 3.0], [2.0, 4.0]])
    rb.update_tensordict_priority(s)
    assert rb.sampler._sum_tree[int(s["index"][1])] == 4.0
    mean_rb = TensorDictPrioritizedReplayBuffer(
        alpha=1.0, beta=1.0, eps=0.0, storage=LazyTensorStorage(8), reduction="mean"
    )
    td = _td(2)
    td["td_error"] = torch.tensor([[1.0, 3.0], [2.0, 4.0]])
    mean_rb.extend(td)
    assert list(mean_rb.sampler._sum_tree)[:2] == [2.0, 3.0]
    with pytest.raises(ValueError, match="reduction"):
        TensorDictReplayBuffer(reduction="mode")
    # non-prioritized buffers ignore priority updates
    plain = TensorDictReplayBuffer(storage=LazyTensorStorage(4))
    plain.extend(_td(2))
    plain.update_tensordict_priority(plain.sample(2))


def test_prefetch_thread_and_errors():
    rb = ReplayBuffer(storage=LazyTensorStorage(100), batch_size=8, prefetch=3)
    with pytest.raises(RuntimeError, match="empty"):
        rb.sample()  # error from the thread is re-raised here
    rb.extend(torch.arange(100))
    for _ in range(20):
        assert rb.sample().shape == (8,)
    assert rb.sample(5).shape == (5,)  # other sizes bypass the prefetcher
    thread = rb._prefetcher._thread
    rb.close()
    rb.close()
    assert not thread.is_alive()


def test_prefetch_blocked_on_the_limiter_closes_promptly():
    rb = ReplayBuffer(
        storage=LazyTensorStorage(10), batch_size=2, prefetch=1, rate_limiter=MinSize(100)
    )
    rb.extend(torch.arange(5))
    rb._start_prefetch()  # what sample() does first, without blocking this thread on it
    thread = rb._prefetcher._thread
    time.sleep(0.05)
    assert thread.is_alive()  # blocked: MinSize(100) never allows sampling
    t0 = time.monotonic()
    rb.close()
    assert time.monotonic() - t0 < 1.0 and not thread.is_alive()
    assert rb.rate_limiter.samples == 0


def test_rate_limited_buffer_blocks_and_times_out():
    rb = ReplayBuffer(
        storage=LazyTensorStorage(100), rate_limiter=MinSize(5), rate_limit_timeout=0.05
    )
    rb.extend(torch.arange(3))
    with pytest.raises(TimeoutError):
        rb.sample(2)
    assert rb.rate_limiter.samples == 0
    rb.extend(torch.arange(2))
    assert rb.sample(2).shape == (2,)
    # a bad batch does not consume insert permits
    with pytest.raises(ValueError):
        rb.extend(torch.zeros(2, 3))
    assert rb.rate_limiter.inserts == 5
    # the buffer (limiter, lock included) survives pickling, e.g. to spawned workers
    import pickle

    clone = pickle.loads(pickle.dumps(rb))
    assert clone.rate_limiter.inserts == 5 and len(clone) == 5
    assert clone.sample(2).shape == (2,)


async def test_async_buffer_with_ratio_limiter():
    lim = SampleToInsertRatio(1.0, 10, 64.0, max_sample_batch=16, max_insert_batch=10)
    rb = ReplayBuffer(storage=LazyTensorStorage(1000), rate_limiter=lim)
    got = []

    async def produce():
        for i in range(30):
            await rb.aextend(torch.arange(i * 10, i * 10 + 10))

    async def consume():
        for _ in range(18):
            got.append(await rb.asample(16))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            tg.start_soon(produce)
    assert len(got) == 18 and lim.inserts == 300 and lim.samples == 288


def test_concurrent_extend_sample_update_stress():
    cap = 2048
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=0.6, beta=0.4, storage=LazyTensorStorage(cap), batch_size=64
    )
    rb.extend(_td(64))
    stop = threading.Event()
    errors = []

    def writer():
        i = 64
        try:
            while not stop.is_set():
                rb.extend(_td(97, start=i))
                i += 97
        except BaseException as e:
            errors.append(e)

    def reader():
        try:
            while not stop.is_set():
                s = rb.sample()
                # every sampled row is a written one: x and reward agree, x was written
                assert (s["x"].float() == s["next", "reward"].squeeze(-1)).all()
                assert (s["index"] < len(rb)).all()
                s["td_error"] = torch.rand(64)
                rb.update_tensordict_priority(s)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(2)
    ]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors, errors
    sampler = rb.sampler
    leaves = torch.from_numpy(sampler._sum_tree.leaves)
    n = len(rb)
    assert (leaves[n:] == 0).all() and (leaves[:n] > 0).all()
    assert sampler._sum_tree.total() == pytest.approx(float(leaves.sum()), rel=1e-9)
    assert sampler._min_tree.min() == pytest.approx(float(leaves[:n].min()))
    assert sampler._sum_tree._verify() and sampler._min_tree._verify()


@pytest.mark.parametrize("storage", [LazyTensorStorage, ListStorage])
def test_item_assignment_overwrites_in_place(storage):
    rb = ReplayBuffer(storage=storage(10), collate_fn=torch.stack if storage is ListStorage
                      else None)
    rb.append_transform(lambda x: x * 10, invert=True)  # a write transform runs on it too
    rb.extend(torch.arange(6))
    rb[1:3] = torch.tensor([7, 8])
    rb[torch.tensor([4])] = torch.tensor([9])
    rb[5] = torch.tensor(1)
    assert rb[torch.arange(6)].tolist() == [0, 70, 80, 30, 90, 10]
    assert len(rb) == 6 and rb.storage.head == 6  # length and cursor are kept
    assert rb.extend(torch.tensor([2])).tolist() == [6]
    with pytest.raises(IndexError):
        rb[7] = torch.tensor(0)  # only stored items can be overwritten
    with pytest.raises(ValueError, match="slot"):
        rb[0:2] = torch.tensor([1, 2, 3])


@pytest.mark.parametrize("storage", [ListStorage, LazyTensorStorage])
def test_items_with_batch_dims_get_spread_index_and_weights(storage):
    from streamrl.data import TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0, eps=0.0, storage=storage(5),
                                           batch_size=3, reduction="max")
    for i in range(3):  # three [4]-step trajectories, one item each
        rb.add(TensorDict({"obs": torch.full((4,), float(i))}, [4]))
    s = rb.sample()
    assert s.batch_size == (3, 4) and s["index"].shape == (3, 4)
    assert (s["index"] == s["index"][:, :1]).all() and s["_weight"].shape == (3, 4)
    assert (s["obs"] == s["index"].float()).all()
    s.set("td_error", torch.arange(12.0).reshape(3, 4))
    rb.update_tensordict_priority(s)
    leaves = rb.sampler.state_dict()["leaves"]
    for row in range(3):  # the max over each sampled item's steps
        assert leaves[int(s["index"][row, 0])] == pytest.approx(4.0 * row + 3.0) or (
            s["index"][:, 0] == s["index"][row, 0]).sum() > 1


def test_extend_update_priority_and_sample_include_info():
    from streamrl.data import TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0, eps=0.0,
                                           storage=LazyTensorStorage(4), batch_size=2)
    batch = TensorDict({"x": torch.zeros(2), "td_error": torch.tensor([3.0, 5.0])}, [2])
    rb.extend(batch)  # the batch's priorities are used
    rb.extend(batch.clone(), update_priority=False)  # not used: the max priority so far
    assert rb.sampler.state_dict()["leaves"][:4].tolist() == [3.0, 5.0, 5.0, 5.0]
    assert "td_error" not in rb.storage[:].keys()
    with pytest.raises(TypeError, match="update_priority"):
        rb.extend(batch, update_priority=1)
    assert {"index", "_weight"} <= set(rb.sample(include_info=True).keys())
    bare, info = rb.sample(include_info=False, return_info=True)
    assert set(bare.keys()) == {"x"} and "index" in info
    with pytest.raises(TypeError, match="include_info"):
        rb.sample(include_info="yes")
    plain = ReplayBuffer(storage=LazyTensorStorage(4))
    assert plain.extend(torch.arange(2), update_priority=True).tolist() == [0, 1]
