"""Deterministic mode: same events and results every time; step-by-step execution."""

from __future__ import annotations

import random

import pytest

from streamrl.graph import (
    Batcher,
    Collect,
    DeadlockError,
    Graph,
    Map,
    Operator,
    OperatorError,
    Source,
    StepEvent,
)

from .helpers import Boom, PingPong


class Merge(Operator):
    inputs = ("a", "b")
    input_mode = "any"

    def step(self, inputs):
        return {"out": sorted(inputs.items())}


def _graph(seed):
    rng = random.Random(seed)
    g = Graph()
    a = g.add(Source(lambda: rng.random(), limit=30), name="a", placement="thread")
    b = g.add(Source(range(17)), name="b", placement="process")
    m = g.add(Merge(), name="merge")
    batch = g.add(Batcher(4), name="batch")
    pp = g.add(PingPong(rounds=12), name="pp")
    inc = g.add(Map(lambda x: x + 1), name="inc")
    out, out2 = g.add(Collect(), name="out"), g.add(Collect(), name="out2")
    g.connect(a, m["a"]).connect(b, m["b"]).connect(m, batch).connect(batch, out)
    g.connect(pp, inc).connect(inc, pp, feedback=True, capacity=1).connect(inc, out2)
    return g, out, out2


def test_identical_results_and_events_twice():
    runs = []
    for _ in range(2):
        g, out, out2 = _graph(seed=0)
        events = [(ev.operator, ev.hook, repr(ev.outputs)) for ev in g.stepper()]
        runs.append((events, out.op.items, out2.op.items))
    assert runs[0] == runs[1]
    events, items, pings = runs[0]
    # merge zips a with b while both have items (17), then takes a alone (13): 30 steps
    assert [len(batch) for batch in items] == [4] * 7 + [2]
    assert sum(len(merged) for batch in items for merged in batch) == 30 + 17
    assert pings[:3] == [1, 3, 5]  # 0 -> inc -> 1 -> pp -> 2 -> inc -> 3 ...
    assert events[0][:2] == ("a", "open")


def test_run_deterministic_and_run_flag():
    g, out, _ = _graph(seed=1)
    g.run_deterministic()
    first = out.op.items
    g, out, _ = _graph(seed=1)
    g.run_sync(deterministic=True)
    assert out.op.items == first
    assert g.stats().operators["merge"].batches_in > 0


async def test_async_run_with_deterministic_flag():
    g, out, _ = _graph(seed=2)
    await g.run(deterministic=True)
    assert len(out.op.items) > 0


def test_stepper_step_by_step_and_max_steps():
    g = Graph()
    src, dbl, out = g.add(Source(range(3))), g.add(Map(lambda x: 2 * x)), g.add(Collect())
    g.connect(src, dbl).connect(dbl, out)
    st = g.stepper()
    first = st.step()
    assert first == StepEvent("source", "open", None, None)
    st.run(max_steps=5)  # 2 more opens, then source, map, collect steps
    assert out.op.items == [0]
    st.run()
    assert out.op.items == [0, 2, 4]
    assert st.step() is None


def test_deterministic_error_and_deadlock():
    g = Graph()
    src, boom = g.add(Source(range(10))), g.add(Boom(at=2), name="boom")
    g.connect(src, boom).connect(boom, g.add(Collect()))
    with pytest.raises(OperatorError, match="'boom' raised in step"):
        g.run_deterministic()

    class Stuck(Operator):
        inputs = ("a", "b")

        def step(self, inputs):
            return {"out": 0}

    g = Graph()
    src, stuck = g.add(Source(range(10)), name="src"), g.add(Stuck(), name="stuck")
    echo = g.add(Map(abs), name="echo")
    g.connect(src, stuck["a"]).connect(stuck, echo).connect(echo, stuck["b"], feedback=True)
    with pytest.raises(DeadlockError, match=r"src waits to put src\.out->stuck\.a \(2/2\)"):
        g.run_deterministic()


@pytest.mark.parametrize("fuse", [True, False])
def test_both_engines_count_the_same(fuse):
    # one scheduling core: the same phases count the same calls, batches and items
    class Zip(Operator):
        inputs = ("a", "b")

        def step(self, inputs):
            return {"out": inputs["a"] + inputs["b"]}

    def build():
        g = Graph()
        a, b = g.add(Source(range(5)), name="a"), g.add(Source(range(5)), name="b")
        z, batch = g.add(Zip(), name="zip"), g.add(Batcher(2), name="batch")
        g.connect(a, z["a"]).connect(b, z["b"]).connect(z, batch)
        g.connect(batch, g.add(Map(len), name="len")).connect("len", g.add(Collect(), name="out"))
        return g

    def counts(g):
        return {name: (s.calls, s.batches_in, s.items_in, s.batches_out, s.items_out, s.state)
                for name, s in g.stats().operators.items()}

    g = build()
    g.run_deterministic()
    expected = counts(g)
    g = build()
    g.run_sync(fuse=fuse)
    assert counts(g) == expected
    assert expected["zip"][:3] == (7, 5, 10)  # open, 5 steps, finish; 2 items a step
    assert expected["a"][1] == 0  # a source takes no inputs
    assert g["out"].op.items == [2, 2, 1]
