"""Error propagation, cancellation, leaks, and the deadlock watchdog."""

from __future__ import annotations

import os
import signal
import threading
import time

import anyio
import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import (
    Collect,
    DeadlockError,
    Graph,
    Map,
    Operator,
    OperatorError,
    Sink,
    Source,
)

from .helpers import Boom, Forever, LeakCheck, Slow

PLACEMENTS = ["inline", "thread", "process"]


def _endless_graph(boom_placement):
    g = Graph()
    src = g.add(Forever(), name="src")
    slow = g.add(Slow(0.001), name="slow", placement="thread")
    boom = g.add(Boom(at=20), name="boom", placement=boom_placement)
    out = g.add(Collect(), name="out")
    g.connect(src, slow).connect(slow, boom).connect(boom, out)
    return g


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_error_propagates_naming_the_operator(placement):
    leaks = LeakCheck()
    g = _endless_graph(placement)
    with pytest.raises(OperatorError) as info:
        await g.run()
    err = info.value
    elapsed = time.monotonic() - err.__cause__.args[1]
    assert err.operator == "boom" and err.hook == "step"
    assert "boom" in str(err) and "ValueError" in str(err)
    assert isinstance(err.__cause__, ValueError)
    assert err.__cause__.args[0] == "boom at item 20"
    assert elapsed < 1.0, elapsed  # from the raise to the caller, the graph shut down
    leaks.assert_clean()


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_error_in_open_and_finish(placement):
    class BadOpen(Operator):
        def open(self):
            raise KeyError("no env")

        def step(self, inputs):
            return None

    class BadFinish(Operator):
        outputs = ()

        def step(self, inputs):
            return None

        def finish(self):
            raise RuntimeError("flush failed")

    g = Graph()
    s, b = g.add(Source(range(3))), g.add(BadOpen(), name="bad", placement=placement)
    g.connect(s, b).connect(b, g.add(Collect()))
    with pytest.raises(OperatorError, match="'bad' raised in open") as info:
        await g.run()
    assert isinstance(info.value.__cause__, KeyError)

    g = Graph()
    s, b = g.add(Source(range(3))), g.add(BadFinish(), name="bad", placement=placement)
    g.connect(s, b)
    with pytest.raises(OperatorError, match="'bad' raised in finish"):
        await g.run()


def test_error_from_run_sync_and_iterate():
    g = _endless_graph("thread")
    with pytest.raises(OperatorError, match="'boom'"):
        g.run_sync()
    g = Graph()
    src, boom = g.add(Source(range(100))), g.add(Boom(at=5), name="boom", placement="thread")
    g.connect(src, boom)
    got = []
    with pytest.raises(OperatorError, match="'boom'"):
        for x in g.iterate(boom):
            got.append(x)
    assert got == [0, 1, 2, 3]


@pytest.mark.parametrize("placement", PLACEMENTS)
async def test_cancel_scope_stops_within_a_second(placement):
    leaks = LeakCheck()
    g = Graph()
    src = g.add(Forever(), name="src")
    m = g.add(Slow(0.002), name="m", placement=placement)
    g.connect(src, m).connect(m, g.add(Sink(lambda x: None)))
    with anyio.move_on_after(0.5) as scope:
        await g.run()
    assert scope.cancelled_caught
    assert anyio.current_time() - scope.deadline < 1.0  # stopped within a second of the cancel
    leaks.assert_clean()
    assert g.stats().operators["m"].batches_in > 10


@pytest.mark.parametrize("placement", ["thread", "process"])
async def test_cancel_while_a_hook_is_busy(placement):
    g = Graph()
    src = g.add(Forever(), name="src")
    m = g.add(Slow(0.3), name="m", placement=placement)
    g.connect(src, m).connect(m, g.add(Sink(lambda x: None)))
    with anyio.move_on_after(0.1) as scope:
        await g.run()
    assert anyio.current_time() - scope.deadline < 1.0


def test_keyboard_interrupt_in_run_sync_stops_the_graph():
    leaks = LeakCheck()
    g = Graph()
    src = g.add(Forever(), name="src")
    m = g.add(Slow(0.001), name="m", placement="thread")
    g.connect(src, m).connect(m, g.add(Sink(lambda x: None)))
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        g.run_sync()
    assert time.monotonic() - t0 < 1.3
    timer.join()
    leaks.assert_clean()


async def test_nothing_left_after_a_clean_run_with_every_placement():
    def make():
        g = Graph()
        src = g.add(Source(TensorDict({"x": torch.full((256, 4), float(i))}, [256])
                           for i in range(20)))
        a = g.add(Map(lambda td: td.apply(lambda t: t + 1)), name="a", placement="thread")
        b = g.add(Map(lambda td: td.apply(lambda t: t * 2)), name="b", placement="process")
        out = g.add(Collect())
        g.connect(src, a).connect(a, b).connect(b, out)
        return g, out

    g, _ = make()
    await g.run()  # first use starts process-wide helpers (e.g. torch's fd sharer thread)
    leaks = LeakCheck()
    g, out = make()
    await g.run()
    assert [td["x"][0, 0].item() for td in out.op.items] == [2 * (i + 1) for i in range(20)]
    leaks.assert_clean()


async def test_watchdog_names_the_blocked_edges():
    class WaitForever(Operator):
        inputs = ("a", "b")

        def step(self, inputs):
            return {"out": inputs}

    # b never receives anything: its producer waits for z's output, which waits for b.
    g = Graph()
    src = g.add(Source(range(100)), name="src")
    z = g.add(WaitForever(), name="z")
    echo = g.add(Map(lambda x: x), name="echo")
    g.connect(src, z["a"]).connect(z, echo).connect(echo, z["b"], feedback=True)
    t0 = time.monotonic()
    with pytest.raises(DeadlockError) as info:
        await g.run(watchdog_timeout=0.3)
    assert time.monotonic() - t0 < 2
    msg = str(info.value)
    assert "src waits to put on src.out->z.a (2/2)" in msg
    assert "z waits to get from echo.out->z.b (0/2)" in msg
    assert ("z", "get", "echo.out->z.b", 0, 2) in info.value.blocked


async def test_watchdog_ignores_busy_operators():
    g = Graph()
    src = g.add(Source(range(3)), name="src")
    m = g.add(Slow(0.4), name="m", placement="thread")
    out = g.add(Collect())
    g.connect(src, m).connect(m, out)
    await g.run(watchdog_timeout=0.2)
    assert out.op.items == [0, 1, 2]


def test_bad_watchdog_timeout():
    g = Graph()
    g.connect(g.add(Source(range(3))), g.add(Collect()))
    with pytest.raises(ValueError, match="watchdog_timeout"):
        anyio.run(lambda: g.run(watchdog_timeout=0))


@pytest.mark.parametrize("placement", ["inline", "thread"])
async def test_error_in_close_is_reported(placement):
    class BadClose(Operator):
        outputs = ()

        def step(self, inputs):
            return None

        def close(self):
            raise OSError("cannot close")

    g = Graph()
    g.connect(g.add(Source(range(3))), g.add(BadClose(), name="bad", placement=placement))
    with pytest.raises(OperatorError, match="'bad' raised in close"):
        await g.run()


async def test_a_placement_that_cannot_start_is_reported():
    from streamrl.graph import Placement
    from streamrl.graph.placement import Host

    class Broken(Placement):
        name = "broken"

        def host(self, op, name):
            class H(Host):
                placement = "broken"

                async def start(self):
                    raise ConnectionError("no cluster")

                async def call(self, hook, arg=None):
                    raise AssertionError("never called: start() failed")

                async def aclose(self, *, fast=False):
                    self.op.close()

            return H(op, name)

    g = Graph()
    m = g.add(Map(abs), name="m", placement=Broken())
    g.connect(g.add(Source(range(3))), m).connect(m, g.add(Collect()))
    with pytest.raises(OperatorError, match=r"'m' raised in start\(\): ConnectionError"):
        await g.run()


class _Opens(Operator):
    """A source that records whether ``open()`` ran."""

    inputs = ()

    def __init__(self):
        self.opened = False

    def open(self):
        self.opened = True

    def step(self, inputs):
        raise StopIteration


def test_run_outside_asyncio_fails_before_anything_starts():
    # a coroutine driven without an asyncio loop is what trio does to it: no asyncio loop runs
    g = Graph()
    src = g.add(_Opens(), name="src")
    g.connect(src, g.add(Collect()))
    coro = g.run()
    with pytest.raises(RuntimeError, match=r"graph\.run\(\) needs anyio's asyncio backend.*"
                                           r"trio is not supported"):
        coro.send(None)
    assert not src.op.opened


def test_run_under_trio_fails_before_anything_starts():
    pytest.importorskip("trio")
    g = Graph()
    src = g.add(_Opens(), name="src")
    g.connect(src, g.add(Collect()))
    with pytest.raises(RuntimeError, match="trio is not supported"):
        anyio.run(g.run, backend="trio")
    assert not src.op.opened


@pytest.mark.slow
def test_spawned_worker_process_with_tensordicts():
    from streamrl.graph import Process

    g = Graph()
    src = g.add(Source(TensorDict({"x": torch.full((8, 2), float(i))}, [8]) for i in range(4)))
    m = g.add(Map(lambda td: td * 10), name="m", placement=Process(start_method="spawn"))
    out = g.add(Collect())
    g.connect(src, m).connect(m, out)
    g.run_sync()
    assert [td["x"][0, 0].item() for td in out.op.items] == [0.0, 10.0, 20.0, 30.0]


async def test_a_worker_process_that_dies_is_reported():
    class Die(Operator):
        def step(self, inputs):
            if inputs["in"] == 2:
                os._exit(3)
            return {"out": inputs["in"]}

    leaks = LeakCheck()
    g = Graph()
    d = g.add(Die(), name="die", placement="process")
    g.connect(g.add(Source(range(10))), d).connect(d, g.add(Collect()))
    with pytest.raises(OperatorError, match=r"'die' raised in step\(\): WorkerDiedError") as info:
        with anyio.fail_after(5):
            await g.run()
    assert "exit code 3" in str(info.value)
    leaks.assert_clean()


async def test_cancel_kills_a_worker_process_stuck_in_a_hook():
    leaks = LeakCheck()
    g = Graph()
    src = g.add(Forever(), name="src")
    m = g.add(Slow(30.0), name="m", placement="process")
    g.connect(src, m).connect(m, g.add(Sink(lambda x: None)))
    with anyio.move_on_after(0.3) as scope:
        await g.run()
    assert anyio.current_time() - scope.deadline < 1.0
    leaks.assert_clean()


def test_keyboard_interrupt_while_iterating_stops_the_graph():
    leaks = LeakCheck()
    g = Graph()
    src = g.add(Forever())
    m = g.add(Slow(0.001), placement="process")
    g.connect(src, m)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    n = 0
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in g.iterate(m):
            n += 1
            if time.monotonic() - t0 > 30.0:  # a failure, not a suite that never ends
                pytest.fail(f"no KeyboardInterrupt 30 s after the SIGINT ({n} items; SIGINT "
                            f"handler {signal.getsignal(signal.SIGINT)!r})")
    timer.join()
    assert n > 0
    leaks.assert_clean()
