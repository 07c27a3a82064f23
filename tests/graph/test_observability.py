"""Stats, report, text and Mermaid rendering, and operator/graph state round trips."""

from __future__ import annotations

import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import (
    Batcher,
    Collect,
    Graph,
    Map,
    Operator,
    Source,
)

from .helpers import PingPong


def _pipeline():
    g = Graph("demo")
    src = g.add(Source(TensorDict({"x": torch.zeros(16, 2)}, [16]) for _ in range(10)), name="src")
    slow = g.add(Map(lambda td: (time.sleep(0.01), td)[1]), name="slow", placement="thread")
    b = g.add(Batcher(3), name="batch")
    out = g.add(Collect(), name="out")
    g.connect(src, slow).connect(slow, b).connect(b, out)
    return g


def test_stats_count_items_batches_and_times():
    g = _pipeline()
    with pytest.raises(RuntimeError, match="has not run yet"):
        g.stats()
    g.run_sync()
    st = g.stats()
    slow = st.operators["slow"]
    assert (slow.batches_in, slow.items_in, slow.batches_out, slow.items_out) == (10, 160, 10, 160)
    assert slow.busy_s >= 0.1 and slow.placement == "thread"
    b = st.operators["batch"]
    assert (b.batches_in, b.batches_out, b.items_out) == (10, 4, 160)
    assert st.operators["src"].blocked_out_s > 0.03
    assert st.edges["src.out->slow.in"].puts == 10 and st.edges["src.out->slow.in"].gets == 10
    assert st.edges["src.out->slow.in"].max_occupancy == 2
    assert st.fused_edges == ["batch.out->out.in"]
    assert "batch.out->out.in" not in st.edges
    assert st.bottleneck == "slow"
    d = st.to_dict()
    assert d["bottleneck"] == "slow" and d["operators"]["slow"]["items_in"] == 160
    assert 0 < slow.items_per_s == d["operators"]["slow"]["items_per_s"]
    assert slow.items_per_s == pytest.approx(160 / slow.wall_s)


def test_report_names_the_bottleneck():
    g = _pipeline()
    g.run_sync()
    text = g.report()
    assert "bottleneck: slow" in text
    for name in ("src", "slow", "batch", "out", "src.out->slow.in", "fused (no queue)"):
        assert name in text


def test_text_and_mermaid():
    g = Graph("ping")
    pp, inc = g.add(PingPong(3), name="env"), g.add(Map(abs), name="policy", placement="thread")
    w = g.add(Source(range(2)), name="w")

    class Pol(Operator):
        inputs = ("obs", "weights")

        def step(self, inputs):
            return {"out": inputs["obs"]}

    pol = g.add(Pol(), name="pol")
    g.connect(pp, pol["obs"]).connect(w, pol["weights"], kind="latest")
    g.connect(pol, inc).connect(inc, pp, feedback=True, capacity=3)
    text = str(g)
    assert "Graph 'ping': 4 operators, 4 edges" in text
    assert "policy [thread]" in text
    assert "out -> env.pong  (fifo 3, feedback)" in text
    assert "out -> pol.weights  (latest)" in text
    mm = g.to_mermaid()
    assert mm.startswith("flowchart LR")
    assert 'n_policy -.->|"out→pong (fifo 3, feedback)"| n_env' in mm
    assert 'n_w ==>|"out→weights (latest)"| n_pol' in mm
    assert 'n_policy["policy<br/>thread"]' in mm
    # fused chains appear as subgraphs
    g2 = Graph()
    a, b, c = g2.add(Source(range(2)), name="a"), g2.add(Map(abs), name="b"), g2.add(Collect(), name="c")
    g2.connect(a, b).connect(b, c)
    assert "subgraph fused_0" in g2.to_mermaid()
    assert "fused: a -> b -> c" in str(g2)
    # an unfinished graph still prints
    g3 = Graph()
    g3.add(Source(range(2)), name="lonely")
    assert "out -> (unconnected)" in str(g3)


def test_operator_state_dict_round_trip():
    src = Source(range(10))
    src.open()
    for _ in range(4):
        src.step({})
    state = src.state_dict()
    assert state == {"count": 4}
    src2 = Source(range(10))
    src2.load_state_dict(state)
    g = Graph()
    out = g.add(Collect())
    g.connect(g.add(src2), out)
    g.run_sync()
    assert out.op.items == [4, 5, 6, 7, 8, 9]

    b = Batcher(3)
    b.step({"in": 1})
    b2 = Batcher(3)
    b2.load_state_dict(b.state_dict())
    assert b2.step({"in": 2}) is None and b2.step({"in": 3}) == {"out": [1, 2, 3]}
    with pytest.raises(ValueError, match=r"expected keys \['count'\], found \['n'\]"):
        Source(range(3)).load_state_dict({"n": 1})
    with pytest.raises(TypeError, match="expected a dict state"):
        Source(range(3)).load_state_dict([1])


def test_graph_state_dict_round_trip():
    g = Graph()
    pp, inc = g.add(PingPong(5), name="pp"), g.add(Map(abs), name="inc")
    g.connect(pp, inc).connect(inc, pp, feedback=True)
    g.run_sync()
    state = g.state_dict()
    assert state == {"pp": {"count": 5}, "inc": {}}
    g2 = Graph()
    pp2, inc2 = g2.add(PingPong(5), name="pp"), g2.add(Map(abs), name="inc")
    g2.connect(pp2, inc2).connect(inc2, pp2, feedback=True)
    g2.load_state_dict(state)
    assert pp2.op.count == 5
    with pytest.raises(ValueError, match=r"expected states for operators \['inc', 'pp'\]"):
        g2.load_state_dict({"pp": {}})


async def test_monitor_is_called_while_running_and_at_the_end():
    from streamrl.graph import GraphStats

    seen = []
    g = _pipeline()
    await g.run(monitor=seen.append, monitor_interval=0.03)
    assert len(seen) >= 2 and all(isinstance(s, GraphStats) for s in seen)
    assert seen[-1].operators["out"].items_in == 160  # the last call sees the final counts
    assert seen[0].operators["slow"].batches_in < 10
    with pytest.raises(ValueError, match="monitor_interval must be > 0"):
        await g.run(monitor=print, monitor_interval=0)


async def test_a_graph_runs_once_at_a_time():
    import anyio

    g = _pipeline()
    async with anyio.create_task_group() as tg:
        tg.start_soon(g.run)
        await anyio.sleep(0.02)
        with pytest.raises(RuntimeError, match="already running"):
            await g.run()
    await g.run()  # and again afterwards


def test_process_operator_state_comes_back_after_the_run():
    from streamrl.graph import Process

    g = Graph()
    src = g.add(Source(range(7)), name="src", placement="process")
    out = g.add(Collect())
    g.connect(src, out)
    g.run_sync()
    assert out.op.items == list(range(7))
    assert g.state_dict()["src"] == {"count": 7}
    g = Graph()
    src = g.add(Source(range(7)), name="src", placement=Process(sync_state=False))
    g.connect(src, g.add(Collect()))
    g.run_sync()
    assert g.state_dict()["src"] == {"count": 0}
