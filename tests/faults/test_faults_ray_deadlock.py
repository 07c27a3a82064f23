"""Deadlocks across the processes of a Ray application (``Ray(direct=True)``).

Promise: when every operator, on the driver and on every actor, has been blocked on its
edges (local channels, or the ends of edges to other processes) for longer than the
watchdog timeout, the run raises :class:`~streamrl.graph.DeadlockError` naming the blocked
edges; an actor computing inside a hook for longer than that is not a deadlock.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest

from streamrl.graph import Collect, DeadlockError, Graph, Map, Operator, Ray, Source


def _direct() -> Ray:
    return Ray(num_cpus=0, direct=True)


class _WaitForBoth(Operator):
    inputs = ("a", "b")

    def step(self, inputs):
        return {"out": inputs}


def _slowly(x):
    time.sleep(1.5)
    return x


def test_a_deadlock_across_actors_is_reported(ray):
    """z waits for b, which waits for z's output, with z and the echo on two actors."""
    g = Graph()
    src = g.add(Source(range(100)), name="src")
    z = g.add(_WaitForBoth(), name="z", placement=_direct())
    echo = g.add(Map(lambda x: x), name="echo", placement=_direct())
    g.connect(src, z["a"]).connect(z, echo).connect(echo, z["b"], feedback=True)
    t0 = time.monotonic()
    with pytest.raises(DeadlockError) as info:
        g.run_sync(watchdog_timeout=1.0)
    assert time.monotonic() - t0 < 30  # with the actors' start-up
    msg = str(info.value)
    assert "in another process" in msg and "src.out->z.a" in msg, msg
    assert "waits to get from echo.out->z.b (in another process)" in msg, msg
    assert "waits to get from z.out->echo.in (in another process)" in msg, msg
    assert "(the Ray actors)" not in msg


@pytest.mark.timeout(90)
def test_a_deadlock_after_an_actor_has_ended_is_reported(ray):
    """As above, beside a third actor whose source ends at once: an ended actor whose items
    the driver has all pulled cannot unblock anyone, so it does not hide the deadlock."""
    g = Graph()
    src = g.add(Source(range(100)), name="src")
    z = g.add(_WaitForBoth(), name="z", placement=_direct())
    echo = g.add(Map(lambda x: x), name="echo", placement=_direct())
    g.connect(src, z["a"]).connect(z, echo).connect(echo, z["b"], feedback=True)
    short = g.add(Source(range(3)), name="short", placement=_direct())
    out = g.add(Collect(), name="out")
    g.connect(short, out)
    with pytest.raises(DeadlockError) as info:
        g.run_sync(watchdog_timeout=1.0)
    assert out.op.items == [0, 1, 2]
    msg = str(info.value)
    assert "waits to get from echo.out->z.b (in another process)" in msg, msg
    assert "short" not in msg, msg


def test_an_actor_computing_is_not_a_deadlock(ray):
    g = Graph()
    src = g.add(Source(range(3)), name="src")
    slow = g.add(Map(_slowly), name="slow", placement=_direct())
    out = g.add(Collect(), name="out")
    g.connect(src, slow).connect(slow, out)
    g.run_sync(watchdog_timeout=0.5)
    assert out.op.items == [0, 1, 2]


class _Says:
    """A stand-in actor handle whose ``blocked.remote()`` answers ``value``."""

    def __init__(self, value):
        async def answer():
            return value

        self.blocked = SimpleNamespace(remote=answer)


async def test_an_ended_actor_counts_as_blocked_only_once_its_run_has_returned():
    """The race the watchdog must not lose under load: a segment has ended and the driver
    has pulled its last item, but its run's result (and with it the end of its streams) has
    not reached the driver yet: not a deadlock until it has."""
    from streamrl.graph._ray_segments import Deployment

    waiting = (0.9, ["out.in"])
    driver = SimpleNamespace(actors={"slow": _Says((math.inf, [])), "other": _Says(waiting)},
                             stats={})
    assert await Deployment.blocked(driver) is None
    driver.stats["slow"] = {}
    assert await Deployment.blocked(driver) == [(math.inf, []), waiting]
    driver.actors["other"] = _Says(None)  # one computing: nobody is deadlocked
    assert await Deployment.blocked(driver) is None


class _Actors:
    """A stand-in for the Ray deployment of a runner whose own chains are deadlocked: every
    actor says it has ended; ``on_query`` runs while the driver waits for that answer."""

    def __init__(self, on_query):
        self.on_query = on_query
        self.queries = 0

    async def blocked(self):
        self.queries += 1
        self.on_query(self.queries)
        return [(math.inf, [])]

    async def collect_stats(self):
        pass

    def kill(self):
        pass


def _deadlocked_runner(watchdog_timeout):
    from streamrl.graph.runner import Runner

    g = Graph()
    src = g.add(Source(range(100)), name="src")
    z = g.add(_WaitForBoth(), name="z")
    echo = g.add(Map(lambda x: x), name="echo")
    g.connect(src, z["a"]).connect(z, echo).connect(echo, z["b"], feedback=True)
    return Runner(g, watchdog_timeout=watchdog_timeout)


async def test_a_deadlock_across_processes_is_confirmed_on_a_second_pass():
    runner = _deadlocked_runner(0.2)
    runner.deployment = _Actors(lambda n: None)
    with pytest.raises(DeadlockError):
        await runner.run()
    assert runner.deployment.queries == 2


async def test_a_driver_that_moves_while_the_actors_answer_is_not_deadlocked():
    """The race seen under load: the watchdog read the driver's waits, then asked the actors;
    meanwhile the driver moved (a reply arrived). Answers read at different times must not
    add up to a deadlock."""
    runner = _deadlocked_runner(0.2)

    def driver_moves(n):
        if n == 3:
            runner.fail(RuntimeError("enough"))
        for chain in runner.chains:  # as if every chain had moved and waited again
            chain.head.since = time.perf_counter()

    runner.deployment = _Actors(driver_moves)
    with pytest.raises(RuntimeError, match="enough"):
        await runner.run()
