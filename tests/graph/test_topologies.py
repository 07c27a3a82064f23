"""Linear chains, fan-in, fan-out, feedback cycles, edge kinds and operator kinds."""

from __future__ import annotations

import anyio
import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import (
    Batcher,
    Collect,
    Graph,
    Many,
    Map,
    Operator,
    Sink,
    Source,
)

from .helpers import PingPong

PLACEMENTS = ["inline", "thread", "process"]


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_linear_chain_each_placement(placement):
    g = Graph()
    src = g.add(Source(range(20)), name="src")
    sq = g.add(Map(lambda x: x * x), name="square", placement=placement)
    out = g.add(Collect(), name="out")
    g.connect(src, sq).connect(sq, out)
    await g.run()
    assert out.op.items == [i * i for i in range(20)]
    st = g.stats()
    assert st.operators["square"].placement == placement
    assert st.operators["square"].batches_in == 20
    assert st.operators["out"].items_in == 20


async def test_fused_and_unfused_give_same_result():
    results = []
    for fuse in (True, False):
        g = Graph()
        src = g.add(Source(range(50)))
        a = g.add(Map(lambda x: x + 1))
        b = g.add(Batcher(7))
        out = g.add(Collect())
        g.connect(src, a).connect(a, b).connect(b, out)
        await g.run(fuse=fuse)
        results.append(out.op.items)
        fused = g.stats().fused_edges
        assert bool(fused) == fuse
    assert results[0] == results[1]
    assert results[0][-1] == [50]  # finish() flushed the partial batch


async def test_fan_out_each_consumer_gets_every_item():
    g = Graph()
    src = g.add(Source(range(30)))
    outs = [g.add(Collect(), name=f"c{i}") for i in range(3)]
    for o in outs:
        g.connect(src, o)
    await g.run()
    for o in outs:
        assert o.op.items == list(range(30))


@pytest.mark.parametrize("mode_placement", ["inline", "thread"])
async def test_fan_in_merges_all_producers(mode_placement):
    g = Graph()
    a = g.add(Source(range(0, 100)), name="a")
    b = g.add(Source(range(1000, 1040)), name="b", placement=mode_placement)
    out = g.add(Collect(), name="out")
    g.connect(a, out).connect(b, out)
    await g.run()
    items = out.op.items
    assert sorted(items) == list(range(100)) + list(range(1000, 1040))
    # each producer's order is kept
    assert [x for x in items if x < 1000] == list(range(100))
    assert [x for x in items if x >= 1000] == list(range(1000, 1040))


class Zip(Operator):
    inputs = ("a", "b")

    def step(self, inputs):
        return {"out": (inputs["a"], inputs["b"])}


class Merge(Operator):
    inputs = ("a", "b")
    input_mode = "any"

    def step(self, inputs):
        return {"out": Many(sorted(inputs.items()))}


async def test_all_mode_zips_and_ends_with_the_shortest():
    g = Graph()
    a, b = g.add(Source(range(5)), name="a"), g.add(Source("xyz"), name="b")
    z, out = g.add(Zip()), g.add(Collect())
    g.connect(a, z["a"]).connect(b, z["b"]).connect(z, out)
    await g.run()
    assert out.op.items == [(0, "x"), (1, "y"), (2, "z")]


async def test_any_mode_takes_whatever_is_ready_until_all_end():
    g = Graph()
    a, b = g.add(Source(range(5)), name="a"), g.add(Source("xyz"), name="b")
    m, out = g.add(Merge()), g.add(Collect())
    g.connect(a, m["a"]).connect(b, m["b"]).connect(m, out)
    await g.run()
    assert sorted(v for p, v in out.op.items if p == "a") == list(range(5))
    assert [v for p, v in out.op.items if p == "b"] == list("xyz")


@pytest.mark.parametrize("placement", ["inline", "thread", "process"])
async def test_feedback_ping_pong(placement):
    g = Graph()
    pp = g.add(PingPong(rounds=10), name="pp")
    inc = g.add(Map(lambda x: x + 100), name="inc", placement=placement)
    g.connect(pp, inc).connect(inc, pp, feedback=True, capacity=1)
    await g.run()
    # 0 -> 100 -> 101 -> 201 -> 202 ...: each round adds 101
    assert pp.op.seen == [100 + 101 * i for i in range(10)]
    assert pp.op.count == 10


async def test_feedback_with_several_primed_items_within_capacity():
    g = Graph()
    pp = g.add(PingPong(rounds=9, prime=3), name="pp")
    inc = g.add(Map(lambda x: x + 10), name="inc")
    g.connect(pp, inc, capacity=2).connect(inc, pp, feedback=True, capacity=3)
    await g.run()
    assert sorted(pp.op.seen)[:3] == [10, 11, 12]
    assert pp.op.count == 9


async def test_source_stop_iteration_in_the_middle_of_a_chain_flushes_downstream():
    class StopAt(Operator):
        def __init__(self):
            self.n = 0

        def step(self, inputs):
            self.n += 1
            if self.n > 4:
                raise StopIteration
            return {"out": inputs["in"]}

    g = Graph()
    src, stop = g.add(Source(range(100)), name="src"), g.add(StopAt(), name="stop")
    b, out = g.add(Batcher(3)), g.add(Collect())
    g.connect(src, stop).connect(stop, b).connect(b, out)
    with anyio.fail_after(5):
        await g.run(fuse=False)
    assert out.op.items == [[0, 1, 2], [3]]


class Policy(Operator):
    inputs = ("obs", "weights")
    state_keys = ("w",)

    def __init__(self):
        self.w = 0

    def step(self, inputs):
        if "weights" in inputs:
            self.w = inputs["weights"]
        return {"out": (inputs["obs"], self.w)}


async def test_latest_edge_does_not_trigger_and_delivers_newest():
    g = Graph()
    obs = g.add(Source(range(6)), name="obs")
    weights = g.add(Source([1, 2, 3]), name="weights")
    pol, out = g.add(Policy()), g.add(Collect())
    g.connect(obs, pol["obs"]).connect(weights, pol["weights"], kind="latest").connect(pol, out)
    await g.run()
    items = out.op.items
    assert [o for o, _ in items] == list(range(6))  # stepped once per obs, never per weight
    ws = [w for _, w in items]
    assert ws == sorted(ws) and set(ws) <= {0, 1, 2, 3}


class CountingLimiter:
    """Allows sampling only after ``min_size`` rows were inserted."""

    def __init__(self, min_size):
        self.min_size = min_size
        self.inserted = 0
        self.sampled = 0
        self._event = anyio.Event()

    async def acquire_insert(self, n):
        self.inserted += n
        self._event.set()
        self._event = anyio.Event()

    async def acquire_sample(self, n):
        while self.inserted < self.min_size:
            await self._event.wait()
        self.sampled += n


async def test_rate_limited_edge_calls_the_limiter_with_rows():
    lim = CountingLimiter(min_size=24)
    seen_inserted = []

    def record(td):
        seen_inserted.append(lim.inserted)

    g = Graph()
    src = g.add(Source(TensorDict({"x": torch.full((8, 2), float(i))}, [8]) for i in range(5)))
    sink = g.add(Sink(record))
    g.connect(src, sink, capacity=4, limiter=lim)
    await g.run()
    assert lim.inserted == 40 and lim.sampled == 40
    assert seen_inserted[0] >= 24  # the first sample waited for the minimum size
    assert g.stats().edges["source.out->sink.in"].kind == "limited"


async def test_tensordict_batches_and_batcher_cat():
    g = Graph()
    src = g.add(Source(TensorDict({"obs": torch.full((4, 3), float(i))}, [4]) for i in range(5)))
    b = g.add(Batcher(2))
    out = g.add(Collect())
    g.connect(src, b).connect(b, out)
    await g.run()
    assert [td.batch_size for td in out.op.items] == [torch.Size([8])] * 2 + [torch.Size([4])]
    assert out.op.items[2]["obs"].eq(4).all()
    assert g.stats().operators["batcher"].items_in == 20


async def test_async_hook_inline():
    class AsyncMap(Operator):
        async def step(self, inputs):
            await anyio.sleep(0)
            return {"out": -inputs["in"]}

    g = Graph()
    src, m, out = g.add(Source(range(3))), g.add(AsyncMap()), g.add(Collect())
    g.connect(src, m).connect(m, out)
    await g.run()
    assert out.op.items == [0, -1, -2]
    with pytest.raises(TypeError, match="async hooks"):
        g2 = Graph()
        s2, m2, o2 = g2.add(Source(range(3))), g2.add(AsyncMap(), placement="thread"), g2.add(Collect())
        g2.connect(s2, m2).connect(m2, o2)
        await g2.run()


def test_run_sync_and_iterate_from_sync_code():
    g = Graph()
    src, m = g.add(Source(range(10))), g.add(Map(lambda x: x * 3), placement="thread")
    g.connect(src, m)
    assert list(g.iterate(m)) == [3 * i for i in range(10)]
    out = g.add(Collect())
    g.connect(m, out)
    g.run_sync()
    assert out.op.items == [3 * i for i in range(10)]


def test_iterate_break_cancels_an_endless_graph():
    from .helpers import Forever, LeakCheck

    leaks = LeakCheck()
    g = Graph()
    src = g.add(Forever())
    m = g.add(Map(lambda x: x), placement="thread")
    g.connect(src, m)
    got = []
    for x in g.iterate(m):
        got.append(x)
        if len(got) == 5:
            break
    assert got == [1, 2, 3, 4, 5]
    leaks.assert_clean()


def test_iterating_a_graph_that_is_already_running_raises_instead_of_waiting():
    """A run refused before it starts still closes the iterated port: the reader gets the
    refusal, not a wait forever."""
    from .helpers import Forever

    g = Graph()
    src = g.add(Forever())
    m = g.add(Map(lambda x: x), placement="thread")
    g.connect(src, m)
    first = g.iterate(m)
    assert next(first) == 1
    try:
        with pytest.raises(RuntimeError, match="already running"):
            next(g.iterate(m))
    finally:
        first.close()
    again = g.iterate(m)  # the first run has ended: the graph runs again
    assert next(again) > 1  # (its source goes on counting)
    again.close()


async def test_stream_from_async_code():
    from streamrl.graph import OperatorError

    from .helpers import Boom, Forever, LeakCheck

    leaks = LeakCheck()
    g = Graph()
    src, m = g.add(Forever()), g.add(Map(lambda x: x * 2), placement="thread")
    g.connect(src, m)
    got = []
    async with g.stream(m) as items:
        async for x in items:
            got.append(x)
            if len(got) == 4:
                break
    assert got == [2, 4, 6, 8]
    leaks.assert_clean()

    g = Graph()
    src, boom = g.add(Source(range(10))), g.add(Boom(at=3), name="boom", placement="process")
    g.connect(src, boom)
    got = []
    with pytest.raises(OperatorError, match="'boom'"):
        async with g.stream(boom) as items:
            async for x in items:
                got.append(x)
    assert got == [0, 1]


async def test_thread_capacity_limiter_bounds_concurrent_hooks():
    import threading
    import time

    from streamrl.graph import Thread

    active, peak, lock = [0], [0], threading.Lock()

    def work(x):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.005)
        with lock:
            active[0] -= 1
        return x

    def build(limiter):
        g = Graph()
        outs = []
        for i in range(3):
            src = g.add(Source(range(10)), name=f"s{i}")
            m = g.add(Map(work), name=f"m{i}", placement=Thread(limiter=limiter))
            out = g.add(Collect(), name=f"c{i}")
            g.connect(src, m).connect(m, out)
            outs.append(out)
        return g, outs

    g, outs = build(anyio.CapacityLimiter(1))
    await g.run()
    assert all(o.op.items == list(range(10)) for o in outs)
    assert peak[0] == 1
    peak[0] = 0
    g, outs = build(None)
    await g.run()
    assert peak[0] > 1
    with pytest.raises(TypeError, match="CapacityLimiter"):
        Thread(limiter=2)


async def test_many_items_and_nested_tensordicts_through_a_process():
    class Unbatch(Operator):
        def step(self, inputs):
            td = inputs["in"]
            return {"out": Many([td[:2], td[2:]])}

    g = Graph()
    src = g.add(Source(
        TensorDict({"obs": torch.full((4, 3), float(i)), "next": {"r": torch.ones(4, 1) * i}}, [4])
        for i in range(3)
    ))
    u = g.add(Unbatch(), placement="process")
    out = g.add(Collect())
    g.connect(src, u).connect(u, out)
    await g.run()
    items = out.op.items
    assert len(items) == 6 and all(td.batch_size == torch.Size([2]) for td in items)
    assert [td["next", "r"][0, 0].item() for td in items] == [0, 0, 1, 1, 2, 2]
    # the structure may change between messages (new shared buffers are sent)
    g = Graph()
    src = g.add(Source([TensorDict({"a": torch.ones(2)}, [2]), TensorDict({"b": torch.zeros(5, 2)}, [5]),
                        "not a tensordict", TensorDict({"a": torch.ones(2) * 3}, [2])]))
    m = g.add(Map(lambda x: x), placement="process")
    out = g.add(Collect())
    g.connect(src, m).connect(m, out)
    await g.run()
    a, b, s, a2 = out.op.items
    assert a["a"].tolist() == [1.0, 1.0] and b["b"].shape == (5, 2) and s == "not a tensordict"
    assert a2["a"].tolist() == [3.0, 3.0]


@pytest.mark.parametrize("window", [2, 3])
async def test_pipelined_process_operator_keeps_order(window):
    from streamrl.graph import Process

    from .helpers import LeakCheck

    leaks = LeakCheck()
    g = Graph()
    src = g.add(Source(TensorDict({"x": torch.full((16, 4), float(i))}, [16]) for i in range(50)))
    m = g.add(Map(lambda td: td + 1), name="m", placement=Process(max_in_flight=window))
    b = g.add(Batcher(7))
    out = g.add(Collect())
    g.connect(src, m).connect(m, b).connect(b, out)
    await g.run()
    values = [v for td in out.op.items for v in td["x"][::16, 0].tolist()]
    assert values == [float(i + 1) for i in range(50)]
    assert g.stats().operators["m"].calls == 50 + 2  # steps + open + finish
    leaks.assert_clean()


async def test_pipelined_process_source_and_stop_iteration():
    from streamrl.graph import OperatorError, Process

    from .helpers import Boom

    g = Graph()
    src = g.add(Source(range(20)), name="src", placement=Process(max_in_flight=2))
    out = g.add(Collect())
    g.connect(src, out)
    await g.run()
    assert out.op.items == list(range(20))
    assert g.state_dict()["src"] == {"count": 20}

    class StopAt(Operator):
        def step(self, inputs):
            if inputs["in"] == 5:
                raise StopIteration
            return {"out": inputs["in"]}

        def finish(self):
            return {"out": "flushed"}

    g = Graph()
    src = g.add(Source(range(20)))
    s = g.add(StopAt(), placement=Process(max_in_flight=3))
    out = g.add(Collect())
    g.connect(src, s).connect(s, out)
    await g.run()
    assert out.op.items == [0, 1, 2, 3, 4, "flushed"]

    g = Graph()
    src = g.add(Source(range(20)))
    boom = g.add(Boom(at=4), name="boom", placement=Process(max_in_flight=2))
    g.connect(src, boom).connect(boom, g.add(Collect()))
    with pytest.raises(OperatorError, match="'boom' raised in step"):
        await g.run()
    with pytest.raises(ValueError, match="max_in_flight"):
        Process(max_in_flight=0)


async def test_endless_inline_source_on_a_latest_edge_does_not_starve_the_loop():
    from .helpers import Forever

    g = Graph()
    weights = g.add(Forever(), name="weights")
    obs = g.add(Source(range(50)), name="obs")
    pol, out = g.add(Policy()), g.add(Collect())
    g.connect(obs, pol["obs"]).connect(weights, pol["weights"], kind="latest").connect(pol, out)
    with anyio.fail_after(5):
        await g.run()  # ends when obs ends: the endless weights source stops with it
    assert [o for o, _ in out.op.items] == list(range(50))
    ws = [w for _, w in out.op.items]
    assert ws[-1] > ws[0]  # the policy saw newer weights as they came
