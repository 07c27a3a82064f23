"""RayReplayBuffer: a replay buffer on a Ray actor, against a local buffer fed the same data,
shared by writer and sampler actors under a rate limiter, and cleaned up on close."""

from __future__ import annotations

import gc
import pickle
import time
from functools import partial

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    PrioritizedSampler,
    RandomSampler,
    RayReplayBuffer,
    ReplayActorDiedError,
    ReplayBuffer,
    SampleToInsertRatio,
    TensorDictReplayBuffer,
)
from streamrl.graph import Collect, Graph, Ray, Source
from streamrl.ops import ReplaySink, ReplaySource
from tests.ray_support import local_ray

NO_CPU = {"num_cpus": 0}  # the local Ray has 2 CPUs; writer and sampler tasks take none either


@pytest.fixture(scope="module")
def ray_local():
    # this test module is not importable on Ray's workers: its functions go by value
    with local_ray(__name__, object_store_memory=128 * 2**20) as ray:
        yield ray


def _replay_actors(ray) -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("streamrl:replay:")]


@pytest.fixture
def ray(ray_local):
    """Ray, checked after the test: no replay actor is left."""
    yield ray_local
    deadline = time.monotonic() + 5.0
    while _replay_actors(ray_local) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _replay_actors(ray_local)


def _td(start: int, n: int = 8) -> TensorDict:
    steps = torch.arange(start, start + n)
    return TensorDict({"obs": steps.float().unsqueeze(-1).expand(n, 3).clone(), "step": steps},
                      batch_size=[n])


def test_torchrl_example(ray):
    # TorchRL 0.14's docstring example, with `streamrl`
    buffer = ReplayBuffer(
        storage=partial(LazyTensorStorage, 100),
        batch_size=4,
        service_backend="ray",
        service_backend_options={"remote_config": {"num_cpus": 0}},
        transport="auto",
    )
    assert isinstance(buffer, RayReplayBuffer)
    buffer.extend(TensorDict({"value": torch.arange(8)}, batch_size=[8]))
    assert buffer.sample().shape == torch.Size([4])
    buffer.shutdown()
    buffer.shutdown()  # idempotent


def test_same_results_as_a_local_buffer_and_state_round_trips(ray, tmp_path):
    def parts():
        return dict(storage=LazyTensorStorage(50), batch_size=5,
                    generator=torch.Generator().manual_seed(7))

    local = ReplayBuffer(**parts())
    with RayReplayBuffer(remote_config=NO_CPU, **parts()) as remote:
        assert remote.actor_name.startswith("streamrl:replay:")
        assert remote.actor_name in _replay_actors(ray)
        assert remote.node_id == ray.get_runtime_context().get_node_id()  # the driver's node
        for i in range(3):
            assert torch.equal(remote.extend(_td(8 * i)), local.extend(_td(8 * i)))
        assert remote.add(_td(100, 1)[0]) == local.add(_td(100, 1)[0])
        assert len(remote) == len(local) == 25
        assert remote.write_count == local.write_count == 25
        for size in (None, 3):
            assert (remote.sample(size) == local.sample(size)).all()
        batch, info = remote.sample(return_info=True)
        lbatch, linfo = local.sample(return_info=True)
        assert (batch == lbatch).all() and torch.equal(info["index"], linfo["index"])
        assert (remote[2:4] == local[2:4]).all()

        state = remote.state_dict()
        remote.dumps(tmp_path / "rb.pt")  # the actor runs on the driver's node: same files
        remote.empty()
        assert len(remote) == 0
        remote.loads(tmp_path / "rb.pt")
        assert len(remote) == 25 and (remote.sample() == local.sample()).all()
        remote.load_state_dict(state)
        local2 = ReplayBuffer(**parts())
        local2.load_state_dict(state)
        assert (remote.sample() == local2.sample()).all()


def test_two_writer_actors_and_a_sampler_actor_keep_the_ratio(ray):
    limiter = SampleToInsertRatio(samples_per_insert=1.0, min_size_to_sample=8, error_buffer=16,
                                  max_sample_batch=8, max_insert_batch=8)
    rb = RayReplayBuffer(storage=partial(LazyTensorStorage, 1000), batch_size=8,
                         rate_limiter=limiter, remote_config=NO_CPU)

    @ray.remote(num_cpus=0)
    def write(client, first, batches):
        for b in range(batches):
            client.extend(_td(first + 8 * b))
        return batches

    @ray.remote(num_cpus=0)
    def sample(client, batches):
        seen = []  # (rows sampled so far, rows written when that sample had been drawn)
        for b in range(batches):
            client.sample()
            seen.append((8 * (b + 1), client.write_count))
        return seen

    try:
        writers = [write.remote(rb.client(), 1000 * w, 10) for w in range(2)]
        seen = ray.get(sample.remote(rb.client(), 10), timeout=60)
        # readers never run ahead: samples <= inserts * ratio - min_size * ratio + error_buffer
        assert all(s <= w * 1.0 - 8 + 16 for s, w in seen), seen
        # writers never run ahead: 160 rows were offered, the limiter admits at most
        # samples + min_size * ratio + error_buffer = 80 + 24 of them until more are sampled
        ready, _ = ray.wait(writers, num_returns=2, timeout=0.5)
        assert len(ready) < 2  # at least one writer is held inside extend
        state = rb.state_dict()["rate_limiter"]
        assert state["samples"] == 80 and 80 <= state["inserts"] <= 104, state
        assert rb.write_count == state["inserts"]
    finally:
        rb.close()
    # the held writers learn that the actor is gone
    with pytest.raises(ReplayActorDiedError, match="streamrl:replay:"):
        ray.get(writers, timeout=10)


def test_prefetch_keeps_calls_in_flight(ray):
    # storage and sampler as constructors, built on the actor
    with RayReplayBuffer(storage=partial(LazyTensorStorage, 100), sampler=RandomSampler,
                         batch_size=4, prefetch=2, remote_config=NO_CPU) as rb:
        rb.extend(_td(0, 16))
        assert rb.sample().batch_size == (4,)
        assert len(rb._ahead) == 2  # the next two draws are already requested
        assert rb.sample(3).batch_size == (3,)  # another size: a direct call
        assert len(rb._ahead) == 2
        assert rb.client(prefetch=0)._prefetch == 0 and rb.client()._prefetch == 2


def test_replay_sink_and_source_use_a_remote_buffer(ray):
    limiter = SampleToInsertRatio(samples_per_insert=1.0, min_size_to_sample=4, error_buffer=8,
                                  max_sample_batch=4, max_insert_batch=4)
    with RayReplayBuffer(storage=LazyTensorStorage(100), batch_size=4, rate_limiter=limiter,
                         remote_config=NO_CPU) as rb:
        g = Graph()
        src = g.add(Source([_td(4 * i, 4) for i in range(5)]), name="src")
        # the owner pickled to the sink's actor arrives there as a client
        sink = g.add(ReplaySink(rb), name="sink", placement=Ray(num_cpus=0))
        source = g.add(ReplaySource(rb.client(), 4, num_batches=5, prefetch=3), name="source",
                       placement="thread")
        out = g.add(Collect(), name="out")
        g.connect(src, sink)
        g.connect(source, out)
        g.run_sync()
        assert [td.batch_size for td in out.op.items] == [torch.Size([4])] * 5
        # prefetch never drew more than num_batches
        assert rb.state_dict()["rate_limiter"]["samples"] == 20
        assert rb.write_count == 20
    with pytest.raises(TypeError, match=r"prefetch=2 needs a buffer with sample_async"):
        ReplaySource(ReplayBuffer(), 4, prefetch=2)


def test_priorities_update_through_a_client(ray):
    with RayReplayBuffer(replay_buffer_cls=TensorDictReplayBuffer,
                         storage=partial(LazyTensorStorage, 16),
                         sampler=partial(PrioritizedSampler, 16, alpha=1.0, beta=1.0),
                         batch_size=64, remote_config=NO_CPU) as rb:
        rb.extend(_td(0, 16))
        client = pickle.loads(pickle.dumps(rb.client()))
        batch = client.sample()
        assert "index" in batch.keys() and "_weight" in batch.keys()
        batch["td_error"] = torch.where(batch["index"] == 3, 1e6, 1e-6).float()
        client.update_tensordict_priority(batch)
        assert (client.sample()["step"] == 3).float().mean() > 0.9
        client.update_priority(torch.arange(16), torch.where(torch.arange(16) == 5, 1e6, 1e-6))
        assert (rb.sample()["step"] == 5).float().mean() > 0.9


def test_client_is_picklable_and_cannot_shut_down(ray):
    with RayReplayBuffer(storage=LazyTensorStorage(10), batch_size=2,
                         remote_config=NO_CPU) as rb:
        # the buffer's own errors come back as themselves
        with pytest.raises(RuntimeError, match="Cannot sample from an empty storage") as info:
            rb.sample()
        assert "raised on a Ray actor" in "".join(getattr(info.value, "__notes__", []))
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            rb.client().sample(0)
        client = pickle.loads(pickle.dumps(rb.client()))
        client.extend(_td(0, 4))
        assert len(rb) == 4 and client.write_count == 4
        for name in ("close", "shutdown", "empty", "loads", "load_state_dict"):
            with pytest.raises(AttributeError, match=f"cannot {name}"):
                getattr(client, name)
        as_pickled = pickle.loads(pickle.dumps(rb))  # the owner travels as a client
        assert type(as_pickled) is type(client) and len(as_pickled) == 4
    with pytest.raises(ReplayActorDiedError, match=rb.actor_name):
        client.sample()
    with pytest.raises(RuntimeError, match="is closed"):
        rb.sample()


def test_bad_input_gives_clear_errors(ray):
    with pytest.raises(ValueError, match=r"transport must be one of \('auto', 'ray'\), found "
                                         r"'distributed'"):
        RayReplayBuffer(transport="distributed")
    with pytest.raises(TypeError, match=r"storage must be a Storage or a callable .* found int"):
        RayReplayBuffer(storage=5)
    with pytest.raises(ValueError, match="service_backend must be 'direct' or 'ray'"):
        ReplayBuffer(service_backend="monarch")
    with pytest.raises(ValueError, match="a direct ReplayBuffer takes transport 'auto' or "
                                         "'direct', found 'ray'"):
        ReplayBuffer(transport="ray")
    assert type(ReplayBuffer(service_backend="direct", transport="direct")) is ReplayBuffer
    with pytest.raises(ValueError, match=r"remote_config may not set \['name'\]"):
        RayReplayBuffer(remote_config={"name": "mine"})
    with pytest.raises(ValueError, match="prefetch=40 needs max_concurrency >= 42"):
        RayReplayBuffer(batch_size=2, prefetch=40)
    # a constructor that builds the wrong thing: raised from the actor, which is gone
    with pytest.raises(TypeError, match="the storage constructor must return a Storage, found "
                                        "list"):
        RayReplayBuffer(storage=list, remote_config=NO_CPU)


def test_close_and_garbage_collection_leave_no_actor(ray):
    rb = RayReplayBuffer(storage=LazyTensorStorage(10), remote_config=NO_CPU)
    name = rb.actor_name
    assert name in _replay_actors(ray)
    del rb
    gc.collect()
    assert name not in _replay_actors(ray)
