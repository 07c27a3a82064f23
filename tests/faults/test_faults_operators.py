"""Faults of operators and graphs: a hook that raises, a worker process that is killed.

Promises:

* an exception in any hook (``open``, ``step``, ``finish``, ``close``) of any kind of operator
  (source, map, sink) in any placement reaches the caller of ``run`` as an
  :class:`~streamrl.graph.OperatorError` naming the operator and the hook, with the original
  exception as its cause, within 1 s of the raise;
* a process-placed operator whose worker is SIGKILLed, busy inside a hook or idle between
  hooks, fails the run with an ``OperatorError`` naming it (cause: ``WorkerDiedError``)
  within 5 s;
* after any of these failures nothing is left: no thread, child process, file descriptor,
  shared-memory mapping or ``/dev/shm`` entry, over 20 failing runs.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import anyio
import pytest

from streamrl.errors import WorkerDiedError
from streamrl.graph import Graph, Map, Operator, OperatorError, Ray, Sink, Source
from streamrl.testing import Resources, check_no_leaks
from tests.ray_support import local_ray

HOOKS = ("open", "step", "finish", "close")
KINDS = ("source", "map", "sink")
PLACEMENTS = ("inline", "thread", "process")


class Fault(Exception):
    """The injected exception; ``args[1]`` is when it was raised (CLOCK_MONOTONIC is shared by
    every process of the machine)."""


class _FailIn:
    """Mixed into a kind: raises :class:`Fault` from the hook named ``fail_in``."""

    fail_in = ""

    def _maybe_fail(self, hook: str) -> None:
        if hook == self.fail_in:
            raise Fault(f"{hook} failed", time.monotonic())

    def open(self):
        self._maybe_fail("open")
        return super().open()

    def step(self, inputs):
        self._maybe_fail("step")
        return super().step(inputs)

    def finish(self):
        self._maybe_fail("finish")
        return super().finish()

    def close(self):
        super().close()
        self._maybe_fail("close")


class FailingSource(_FailIn, Source):
    pass


class FailingMap(_FailIn, Map):
    pass


class FailingSink(_FailIn, Sink):
    pass


def _graph(kind: str, hook: str, placement) -> Graph:
    """``src -> map -> sink`` (three items) with the operator of ``kind`` failing in ``hook``
    under ``placement``; the others run inline."""
    ops = {
        "source": (FailingSource if kind == "source" else Source)(range(3)),
        "map": (FailingMap if kind == "map" else Map)(lambda x: x + 1),
        "sink": (FailingSink if kind == "sink" else Sink)(lambda x: None),
    }
    ops[kind].fail_in = hook
    g = Graph()
    nodes = {k: g.add(op, name=k, placement=placement if k == kind else "inline")
             for k, op in ops.items()}
    g.connect(nodes["source"], nodes["map"]).connect(nodes["map"], nodes["sink"])
    return g


def _check_named(exc: BaseException, kind: str, hook: str) -> None:
    assert isinstance(exc, OperatorError), repr(exc)
    assert (exc.operator, exc.hook) == (kind, hook)
    assert f"operator {kind!r} raised in {hook}()" in str(exc)
    assert isinstance(exc.__cause__, Fault) and exc.__cause__.args[0] == f"{hook} failed"


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_a_hook_error_is_named_within_a_second(placement, kind, hook):
    """fault: ``kind``'s ``hook`` raises, placed ``placement``. promise: OperatorError naming
    operator and hook, the original as cause. check: fields, message, cause; raise -> caller
    under 1 s."""
    g = _graph(kind, hook, placement)
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    caught = time.monotonic()
    _check_named(info.value, kind, hook)
    assert caught - info.value.__cause__.args[1] < 1.0


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_twenty_failing_runs_leave_nothing(placement):
    """fault: 20 runs, each failing in another (kind, hook). promise: nothing left after each
    failure. check: threads, child processes, fds, shm mappings and /dev/shm entries are what
    they were before the 20 runs."""
    cases = [(k, h) for k in KINDS for h in HOOKS]
    with pytest.raises(OperatorError):  # first use: process-wide helpers start here
        _graph("map", "step", placement).run_sync()
    before = Resources.snapshot()
    for i in range(20):
        kind, hook = cases[i % len(cases)]
        with pytest.raises(OperatorError) as info:
            _graph(kind, hook, placement).run_sync()
        _check_named(info.value, kind, hook)
    check_no_leaks(before, timeout=5.0)


# ---------------------------------------------------------------- killed worker processes


class _SlowSource(Operator):
    """Emits one item, then waits 30 s (on the event loop: cancelling the run interrupts it)
    before each next one."""

    inputs = ()

    def __init__(self):
        self.n = 0

    async def step(self, inputs):
        if self.n:
            await anyio.sleep(30)
        self.n += 1
        return {"out": self.n}


def _killed_worker_graph(busy: bool) -> tuple[Graph, list[int]]:
    """``source -> victim (process) -> sink``; the sink records the worker pids it sees. Busy:
    the victim sleeps 30 s in its second step; idle: the source waits 30 s after the first
    item, so the victim idles between steps."""
    seen: list[int] = []
    if busy:
        src = Source(range(100))
        victim = Map(lambda x: (time.sleep(30 if x == 1 else 0), os.getpid())[1])
    else:
        src, victim = _SlowSource(), Map(lambda x: os.getpid())
    g = Graph()
    v = g.add(victim, name="victim", placement="process")
    g.connect(g.add(src, name="src"), v).connect(v, g.add(Sink(seen.append), name="sink"))
    return g, seen


@pytest.mark.parametrize("state", ["busy", "idle"])
def test_a_killed_worker_process_is_named_within_five_seconds(state):
    """fault: SIGKILL of a process-placed operator's worker, inside a hook (busy) or between
    hooks (idle). promise: OperatorError naming the operator, cause WorkerDiedError, within 5 s;
    nothing left. check: fields; kill -> caller under 5 s; resource counts."""
    g, seen = _killed_worker_graph(busy=state == "busy")
    before = Resources.snapshot()
    killed_at: list[float] = []

    def killer():
        while not seen:
            time.sleep(0.01)
        time.sleep(0.2)  # busy: inside the 30 s step; idle: waiting for the next item
        killed_at.append(time.monotonic())
        os.kill(seen[0], signal.SIGKILL)

    t = threading.Thread(target=killer)
    t.start()
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    elapsed = time.monotonic() - killed_at[0]
    t.join()
    err = info.value
    assert err.operator == "victim" and err.hook == "step", str(err)
    assert isinstance(err.__cause__, WorkerDiedError) and err.__cause__.exitcode == -9
    assert elapsed < 5.0, elapsed
    check_no_leaks(before, timeout=5.0)


# ---------------------------------------------------------------- Ray


@pytest.fixture(scope="module")
def ray_local():
    with local_ray(__name__) as ray:
        yield ray


@pytest.mark.slow
@pytest.mark.parametrize("hook", ["step", "close"])  # open/finish: tests/graph/test_ray_placement
def test_a_hook_error_on_a_ray_actor_is_named(ray_local, hook):
    """fault: a Ray-placed map raises in ``hook``. promise: OperatorError naming it and the
    hook within 1 s; no actor left. check: fields, cause, timing; named actors gone."""
    g = _graph("map", hook, Ray())
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    caught = time.monotonic()
    _check_named(info.value, "map", hook)
    assert caught - info.value.__cause__.args[1] < 1.0
    deadline = time.monotonic() + 5
    while ray_local.util.list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ray_local.util.list_named_actors()
