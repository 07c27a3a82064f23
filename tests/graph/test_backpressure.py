"""Bounded edges hold back a fast producer; memory stays flat."""

from __future__ import annotations

import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import Graph, Operator, Sink, Source


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class Counted:
    """Counts items produced and consumed, recording the most in flight."""

    def __init__(self):
        self.payload = torch.ones(256, 1024)
        self.produced = 0
        self.consumed = 0
        self.max_in_flight = 0

    def make(self):
        self.produced += 1
        self.max_in_flight = max(self.max_in_flight, self.produced - self.consumed)
        # 1 MiB per message: an unbounded queue would grow memory by ~40 MiB
        return TensorDict({"x": self.payload.clone()}, [256])

    def consume(self, td):
        time.sleep(0.02)  # the sink is >10x slower than the producer (a 1 MiB copy)
        self.consumed += 1


@pytest.mark.parametrize("placement", ["inline", "thread"])
async def test_fast_producer_slow_sink_stays_within_capacity(placement):
    c = Counted()
    g = Graph()
    src = g.add(Source(c.make, limit=40), name="src")
    sink = g.add(Sink(c.consume), name="sink", placement=placement)
    g.connect(src, sink, capacity=3)
    rss0 = _rss_mb()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a loaded machine makes parallel copies erratic
    try:
        await g.run(fuse=False)
    finally:
        torch.set_num_threads(threads)
    assert c.consumed == 40
    # capacity 3 queued + 1 being consumed by the sink + 1 being put by the producer
    assert c.max_in_flight <= 3 + 2, c.max_in_flight
    st = g.stats()
    edge = st.edges["src.out->sink.in"]
    assert edge.max_occupancy == 3 and edge.occupancy == 0
    assert st.operators["src"].blocked_out_s > 0.1  # the producer spent its time waiting
    assert st.bottleneck == "sink", g.report()
    assert _rss_mb() - rss0 < 20


async def test_backpressure_through_a_chain_of_threads():
    c = Counted()

    class Pass(Operator):
        def step(self, inputs):
            return {"out": inputs["in"]}

    g = Graph()
    src = g.add(Source(c.make, limit=40), name="src")
    a = g.add(Pass(), name="a", placement="thread")
    b = g.add(Pass(), name="b", placement="thread")
    sink = g.add(Sink(c.consume), name="sink", placement="thread")
    g.connect(src, a, capacity=1).connect(a, b, capacity=1).connect(b, sink, capacity=1)
    await g.run()
    assert c.consumed == 40
    # 3 edges of capacity 1 plus one item held by each of a, b, sink and the producer
    assert c.max_in_flight <= 3 + 4, c.max_in_flight
