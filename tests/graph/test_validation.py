"""Invalid graphs are rejected with messages that say what is wrong."""

from __future__ import annotations

import pytest

from streamrl.graph import (
    Collect,
    Graph,
    GraphValidationError,
    Many,
    Map,
    Operator,
    Source,
)

from .helpers import PingPong


class Two(Operator):
    inputs = ("a", "b")
    outputs = ("x", "y")

    def step(self, inputs):
        return None


def test_unconnected_input_and_output():
    g = Graph()
    g.add(Source(range(3)), name="src")
    with pytest.raises(GraphValidationError, match=r"output port src\.out is not connected"):
        g.validate()
    g = Graph()
    g.add(Collect(), name="sink")
    with pytest.raises(GraphValidationError, match=r"input port sink\.in is not connected"):
        g.validate()


def test_unknown_port_and_ambiguous_port():
    g = Graph()
    src, two = g.add(Source(range(3))), g.add(Two(), name="two")
    with pytest.raises(GraphValidationError, match=r"has no port 'c'"):
        two["c"]
    with pytest.raises(GraphValidationError, match=r"'two' has 2 input ports \('a', 'b'\)"):
        g.connect(src, two)
    with pytest.raises(GraphValidationError, match=r"no input port 'x'"):
        g.connect(src, two["x"])
    with pytest.raises(GraphValidationError, match=r"unknown operator 'nope'"):
        g.connect("nope", two["a"])


def test_duplicate_names_and_ops():
    g = Graph()
    op = Collect()
    g.add(op, name="c")
    with pytest.raises(GraphValidationError, match="duplicate operator name 'c'"):
        g.add(Collect(), name="c")
    with pytest.raises(GraphValidationError, match="already in this graph"):
        g.add(op, name="d")
    with pytest.raises(ValueError, match="operator names"):
        g.add(Collect(), name="a.b")
    assert g.add(Collect()).name == "collect"
    assert g.add(Collect()).name == "collect_2"


def test_bad_arguments():
    g = Graph()
    a, b = g.add(Source(range(3))), g.add(Collect())
    with pytest.raises(TypeError, match=r"expected a streamrl\.graph\.Operator"):
        g.add(lambda x: x)
    with pytest.raises(ValueError, match="capacity must be an int >= 1, found 0"):
        g.connect(a, b, capacity=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        g.connect(a, b, kind="lifo")
    with pytest.raises(TypeError, match="acquire_insert"):
        g.connect(a, b, limiter=object())
    with pytest.raises(ValueError, match="placement must be"):
        g.add(Collect(), placement="gpu")

    class BadMode(Operator):
        input_mode = "some"

    with pytest.raises(ValueError, match="input_mode must be one of"):
        g.add(BadMode())
    g.connect(a, b)
    with pytest.raises(GraphValidationError, match="already connected"):
        g.connect(a, b)
    with pytest.raises(GraphValidationError, match="no operators"):
        Graph().validate()


def test_cycle_without_feedback_edge():
    g = Graph()
    pp, inc = g.add(PingPong(3), name="pp"), g.add(Map(abs), name="inc")
    g.connect(pp, inc).connect(inc, pp)
    with pytest.raises(GraphValidationError,
                       match=r"cycle pp -> inc -> pp has no feedback edge.*feedback=True"):
        g.validate()


def test_feedback_edge_that_closes_no_cycle():
    g = Graph()
    g.connect(g.add(Source(range(3)), name="s"), g.add(Collect(), name="c"), feedback=True)
    with pytest.raises(GraphValidationError, match=r"s\.out->c\.in is declared feedback"):
        g.validate()


def test_cycle_capacity_cannot_hold_primed_items():
    g = Graph()
    pp, inc = g.add(PingPong(3, prime=4), name="pp"), g.add(Map(abs), name="inc")
    g.connect(pp, inc, capacity=1).connect(inc, pp, feedback=True, capacity=2)
    # fused (default): the pp->inc edge holds nothing, so only 2 fit
    with pytest.raises(GraphValidationError, match=r"4 items primed .* hold only 2"):
        g.validate()
    # unfused: 1 + 2 = 3 still < 4
    with pytest.raises(GraphValidationError, match=r"hold only 3"):
        g.validate(fuse=False)


def test_undeclared_primes_are_checked_when_the_run_starts():
    class Sneaky(PingPong):
        primes = 0  # lies: open() emits 3 items

        def open(self):
            return {"ping": Many([0, 1, 2])}

    op = Sneaky(3, prime=0)
    g = Graph()
    pp, inc = g.add(op, name="pp"), g.add(Map(abs), name="inc")
    g.connect(pp, inc).connect(inc, pp, feedback=True, capacity=1)
    g.validate()
    with pytest.raises(GraphValidationError, match=r"3 items emitted by open\(\)"):
        g.run_sync()


def test_emitting_on_an_unknown_port_names_the_operator():
    class Wrong(Operator):
        def step(self, inputs):
            return {"output": 1}

    g = Graph()
    s, w = g.add(Source(range(3))), g.add(Wrong(), name="wrong")
    g.connect(s, w).connect(w, g.add(Collect()))
    with pytest.raises(Exception, match=r"'wrong' emitted on unknown output port 'output'"):
        g.run_sync()

    class NotDict(Operator):
        def step(self, inputs):
            return 1

    g = Graph()
    s, w = g.add(Source(range(3))), g.add(NotDict(), name="nd")
    g.connect(s, w).connect(w, g.add(Collect()))
    with pytest.raises(Exception, match=r"'nd' must return None or a dict"):
        g.run_sync()


def test_mixed_edge_kinds_on_one_port():
    g = Graph()
    a, b, c = g.add(Source(range(2))), g.add(Source(range(2))), g.add(Collect(), name="c")
    g.connect(a, c).connect(b, c, kind="latest")
    with pytest.raises(GraphValidationError, match=r"c\.in mixes edge kinds"):
        g.validate()
