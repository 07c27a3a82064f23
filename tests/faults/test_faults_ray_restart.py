"""Faults of operators placed with ``Ray(direct=True, on_failure="restart")``.

Promises:

* an actor that dies (SIGKILL) is replaced and its operator continues from the state it had
  right after the last item the driver received: the driver sees every item once, in order,
  on each edge (also when one edge lags behind another); the replacement runs in another
  process;
* the latest-value inputs the dead actor had received reach its replacement again without
  a new value being written (also after the writer has ended its stream);
* after ``max_restarts`` replacements the next death fails the graph with an
  :class:`~streamrl.graph.OperatorError` naming the operator, its actor and node, and the
  number of restarts; nothing is left running;
* a restartable operator with a FIFO input or an edge to another actor is refused before any
  actor starts.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from streamrl.graph import (
    Collect,
    Graph,
    GraphValidationError,
    Map,
    Operator,
    OperatorError,
    Ray,
    Source,
)


def _restartable(max_restarts: int = 2) -> Ray:
    return Ray(num_cpus=0, direct=True, on_failure="restart", max_restarts=max_restarts)


class _Counter(Operator):
    """A source of ``(i, pid, w)`` for i in 0..n-1, its count in its state; SIGKILLs its own
    process on reaching item ``die_at``: once if ``marker`` (a path, created then) is given,
    every time else. With a ``w`` input (latest value, not triggering) it waits for a first
    value and emits it with each item."""

    inputs = ()
    state_keys = ("i",)

    def __init__(self, n: int, die_at: int, marker: str | None, with_w: bool = False):
        self.n, self.die_at, self.marker = n, die_at, marker
        self.i = 0
        self.w = None
        if with_w:
            self.inputs = ("w",)
            self.latest_triggers = False

    def step(self, inputs):
        if "w" in inputs:
            self.w = inputs["w"]
        if self.i >= self.n:
            raise StopIteration
        if "w" in self.inputs and self.w is None:
            if not hasattr(self, "_waiting"):
                self._waiting = time.monotonic()
            if time.monotonic() - self._waiting > 20:
                raise RuntimeError("no value on the latest input after 20 s")
            time.sleep(0.005)
            return None
        if self.i == self.die_at and (self.marker is None or not os.path.exists(self.marker)):
            if self.marker is not None:
                Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.002)
        self.i += 1
        return {"out": (self.i - 1, os.getpid(), self.w)}


def test_a_killed_actor_is_replaced_and_continues_from_its_snapshot(ray, tmp_path):
    g = Graph("restart")
    src = g.add(_Counter(60, die_at=20, marker=str(tmp_path / "died")), name="src",
                placement=_restartable())
    out = g.add(Collect(), name="out")
    g.connect(src, out)
    t0 = time.monotonic()
    g.run_sync()
    assert time.monotonic() - t0 < 60
    assert (tmp_path / "died").exists()
    assert [i for i, _, _ in out.op.items] == list(range(60))
    pids = [pid for _, pid, _ in out.op.items]
    assert pids[0] != pids[-1] and len(set(pids)) == 2  # the replacement is another process
    assert src.op.i == 60  # the replacement's final state came back
    deployment = g._last_run.deployment
    assert deployment.restarts["src"] == 1 and "died" in deployment.deaths["src"][0]


def _slowly(x):
    time.sleep(0.02)
    return x


def test_every_edge_gets_every_item_once_when_one_lags(ray, tmp_path):
    """The source feeds a fast and a slow consumer: at the death the fast edge is ahead; the
    replacement goes on from the slow edge's snapshot and the fast edge drops the items it
    already has."""
    g = Graph()
    src = g.add(_Counter(80, die_at=40, marker=str(tmp_path / "died")), name="src",
                placement=_restartable())
    fast = g.add(Collect(), name="fast")
    slow = g.add(Map(_slowly), name="slow")
    slow_out = g.add(Collect(), name="slow_out")
    g.connect(src, fast, capacity=16).connect(src, slow, capacity=2).connect(slow, slow_out)
    g.run_sync()
    assert (tmp_path / "died").exists()
    assert [i for i, _, _ in fast.op.items] == list(range(80))
    assert [i for i, _, _ in slow_out.op.items] == list(range(80))


def test_latest_inputs_reach_the_replacement(ray, tmp_path):
    """The writer sends one value and ends before the actor dies: the replacement still
    gets the value (and the end of the stream)."""
    g = Graph()
    w = g.add(Source([7]), name="w")
    src = g.add(_Counter(40, die_at=15, marker=str(tmp_path / "died"), with_w=True),
                name="src", placement=_restartable())
    out = g.add(Collect(), name="out")
    g.connect(w, src["w"], kind="latest").connect(src, out)
    g.run_sync()
    assert (tmp_path / "died").exists()
    assert [i for i, _, _ in out.op.items] == list(range(40))
    assert {w for _, _, w in out.op.items} == {7}


def test_restarts_run_out_and_the_error_names_the_operator(ray):
    g = Graph()
    src = g.add(_Counter(60, die_at=5, marker=None), name="src", placement=_restartable(2))
    g.connect(src, g.add(Collect(), name="out"))
    t0 = time.monotonic()
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert time.monotonic() - t0 < 90  # three actor start-ups
    assert info.value.operator == "src"
    text = str(info.value)
    assert "after 2 restarts" in text and "died" in text and "node" in text, text
    assert g._last_run.deployment.restarts["src"] == 2


class _Pass(Operator):
    def step(self, inputs):
        return {"out": inputs["in"]}


def test_a_restartable_operator_with_a_fifo_input_is_refused(ray):
    g = Graph()
    s = g.add(Source(range(3)), name="s")
    p = g.add(_Pass(), name="p", placement=_restartable())
    g.connect(s, p).connect(p, g.add(Collect()))
    with pytest.raises(GraphValidationError, match=r"p is placed with on_failure='restart'.*"
                                                  r"latest-value inputs only"):
        g.run_sync()


def test_a_restartable_operator_next_to_another_actor_is_refused(ray):
    g = Graph()
    s = g.add(_Counter(3, die_at=-1, marker=None), name="s", placement=_restartable())
    p = g.add(_Pass(), name="p", placement=Ray(num_cpus=0, direct=True))
    g.connect(s, p).connect(p, g.add(Collect()))
    with pytest.raises(GraphValidationError, match="joins it to p, another direct Ray"):
        g.run_sync()
