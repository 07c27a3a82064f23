"""``Ray(direct=True)``: operators run under their own runner on their actors, and items move
actor to actor (pushed with credits) or are pulled by the driver."""

from __future__ import annotations

import os
import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import (
    Collect,
    Graph,
    GraphValidationError,
    Map,
    Operator,
    OperatorError,
    Ray,
    Sink,
    Source,
)

from .helpers import Boom, DieAt, PingPong

RAY_BY_VALUE = (Boom.__module__,)  # the helpers, by value too


def _direct() -> Ray:
    return Ray(num_cpus=0, direct=True)  # num_cpus=0: three actors fit on the test's 2 CPUs


def _pid(x):
    return (x, os.getpid())


def _td(i: int) -> TensorDict:
    return TensorDict({"obs": torch.full((4, 3), float(i)), "step": torch.arange(4) + i}, [4])


def _double(td):
    return td.set("obs", td["obs"] * 2)


class _Stamped(Operator):
    """Passes items through and records, in its state, the pid and when each was seen."""

    state_keys = ("seen", "pids")

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.seen: list[tuple[int, float]] = []
        self.pids: set[int] = set()

    def step(self, inputs):
        if self.delay:
            time.sleep(self.delay)
        self.seen.append((inputs["in"], time.monotonic()))
        self.pids.add(os.getpid())
        return {"out": inputs["in"]}


class _StampedSource(Operator):
    """Emits 0..n-1 and records when each left (CLOCK_MONOTONIC is shared by processes)."""

    inputs = ()
    state_keys = ("sent",)

    def __init__(self, n: int):
        self.n = n
        self.sent: list[float] = []

    def step(self, inputs):
        if len(self.sent) >= self.n:
            raise StopIteration
        self.sent.append(time.monotonic())
        return {"out": len(self.sent) - 1}


def test_chain_across_two_actors_keeps_order_values_and_counts(ray):
    g = Graph("chain")
    src = g.add(Source(range(2000)), name="src")
    a = g.add(_Stamped(), name="a", placement=_direct())
    b = g.add(_Stamped(), name="b", placement=_direct())
    out = g.add(Collect(), name="out")
    g.connect(src, a, capacity=4).connect(a, b, capacity=4).connect(b, out, capacity=4)
    g.run_sync()
    assert out.op.items == list(range(2000))
    # each ran in its own actor process, and its state came back to the driver's object
    assert len(a.op.pids) == len(b.op.pids) == 1
    assert len(a.op.pids | b.op.pids | {os.getpid()}) == 3
    assert [x for x, _ in b.op.seen] == list(range(2000))
    stats = g.stats()
    assert stats.operators["a"].placement == stats.operators["b"].placement == "ray"
    assert stats.operators["a"].items_in == stats.operators["b"].items_out == 2000
    # the driver's runner holds no channel of the edge between the two actors
    driver_edges = [e.name for e in g._last_run.graph.edges]
    assert not any(("a." in e and "b." in e) for e in driver_edges), driver_edges
    assert all(not e.startswith(("a.", "b.")) for e in driver_edges), driver_edges


def test_tensordicts_arrive_exactly(ray):
    g = Graph()
    src = g.add(Source([_td(i) for i in range(5)]), name="src")
    a = g.add(Map(_double), name="a", placement=_direct())
    b = g.add(Map(_double), name="b", placement=_direct())
    out = g.add(Collect(), name="out")
    g.connect(src, a).connect(a, b).connect(b, out)
    g.run_sync()
    for i, td in enumerate(out.op.items):
        assert td.batch_size == torch.Size([4])
        assert torch.equal(td["obs"], torch.full((4, 3), 4.0 * i))
        assert torch.equal(td["step"], torch.arange(4) + i)
        td["obs"] += 1  # writable: not a read-only view of the object store


def _big(i: int) -> TensorDict:  # 1 MiB: it travels through Ray's object store
    return TensorDict({"obs": torch.full((512, 512), float(i))}, [512])


def _in_object_store(t: torch.Tensor) -> bool:
    """Whether ``t``'s memory lies in this process's mapping of Ray's object store."""
    for line in open("/proc/self/maps"):
        span = line.split()[0]
        lo, hi = (int(x, 16) for x in span.split("-"))
        if lo <= t.data_ptr() < hi:
            return "plasma" in line
    return False


def _where(td):
    return (float(td["obs"][0, 0]), _in_object_store(td["obs"]))


@pytest.mark.parametrize("zero_copy", [False, True])
def test_zero_copy_items_are_read_in_place(ray, zero_copy):
    """The items of a ``zero_copy`` operator are read in the object store, on an actor and on
    the driver; by default they are copied out."""
    g = Graph()
    src = g.add(Source([_big(i) for i in range(3)]), name="src")
    a = g.add(Map(lambda x: x), name="a", placement=Ray(num_cpus=0, direct=True,
                                                       zero_copy=zero_copy))
    b = g.add(Map(_where), name="b", placement=_direct())
    on_actor, on_driver = g.add(Collect(), name="on_actor"), g.add(Collect(), name="on_driver")
    g.connect(src, a).connect(a, b).connect(b, on_actor).connect(a, on_driver)
    g.run_sync()
    assert on_actor.op.items == [(float(i), zero_copy) for i in range(3)]
    for i, td in enumerate(on_driver.op.items):
        assert torch.equal(td["obs"], torch.full((512, 512), float(i)))
        assert _in_object_store(td["obs"]) is zero_copy


def test_zero_copy_is_checked_and_shown():
    with pytest.raises(ValueError, match="zero_copy=True needs direct=True"):
        Ray(zero_copy=True)
    with pytest.raises(TypeError, match="zero_copy must be a bool, found int"):
        Ray(direct=True, zero_copy=1)
    assert repr(Ray(direct=True, zero_copy=True)) == "Ray(direct=True, zero_copy=True)"
    # the operators of a group may differ in it: it is about each one's items
    assert Ray(direct=True, group="g").same_actor(Ray(direct=True, group="g", zero_copy=True))


@pytest.mark.parametrize("capacity", [2, 8])
def test_a_producer_runs_at_most_capacity_plus_the_ends_slack_ahead(ray, capacity):
    """Source actor -> slow actor: items sent (or queued to go in one call) and not yet taken
    never exceed the capacity plus the item each end holds and the one being sent (3);
    order is kept when calls carry several items (capacity 8)."""
    g = Graph()
    src = g.add(_StampedSource(40), name="src", placement=_direct())
    slow = g.add(_Stamped(delay=0.02), name="slow", placement=_direct())
    g.connect(src, slow, capacity=capacity).connect(slow, g.add(Sink(lambda x: None)))
    g.run_sync()
    sent, taken = src.op.sent, [t for _, t in slow.op.seen]
    assert len(sent) == len(taken) == 40
    assert [x for x, _ in slow.op.seen] == list(range(40))
    ahead = max(sum(s <= t for s in sent) - i for i, t in enumerate(taken))
    assert ahead <= capacity + 3, ahead
    assert ahead >= capacity  # the producer did run ahead: the bound is what held it


def test_an_operator_error_on_an_actor_names_the_operator(ray):
    g = Graph()
    src = g.add(Source(range(100)), name="src")
    boom = g.add(Boom(at=3), name="boom", placement=_direct())
    g.connect(src, boom).connect(boom, g.add(Sink(lambda x: None)))
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert info.value.operator == "boom" and info.value.hook == "step"
    assert isinstance(info.value.original, ValueError)
    assert "boom at item 3" in str(info.value)


def test_a_killed_actor_is_named_with_its_node(ray):
    g = Graph()
    src = g.add(Source(range(10_000)), name="src")
    a = g.add(Map(_pid), name="a", placement=_direct())
    dies = g.add(DieAt(at=5), name="dies", placement=_direct())
    g.connect(src, a).connect(a, dies).connect(dies, g.add(Sink(lambda x: None)))
    t0 = time.monotonic()
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert time.monotonic() - t0 < 30  # includes the actors' start-up
    assert info.value.operator == "dies", info.value
    text = str(info.value)
    assert "died" in text and "node" in text and "streamrl:" in text, text


def test_a_latest_value_edge_into_an_actor_and_back(ray):
    """Versions cross an actor through latest-value edges: each reader sees only increasing
    values, and the last one always arrives."""

    class Watch(Operator):
        inputs = ("v",)
        state_keys = ("values",)

        def __init__(self):
            self.values = []

        def step(self, inputs):
            self.values.append(inputs["v"])
            return {"out": inputs["v"]}

    g = Graph()
    src = g.add(Source(range(200)), name="src")
    watch = g.add(Watch(), name="watch", placement=_direct())
    out = g.add(Collect(), name="out")
    g.connect(src, watch["v"], kind="latest").connect(watch, out, kind="latest")
    g.run_sync()
    for values in (watch.op.values, out.op.items):
        assert values and values == sorted(set(values)), values
        assert values[-1] == 199


class _Sum(Operator):
    """Records the sum of each TensorDict it gets on its latest-value input ``v``."""

    inputs = ("v",)
    state_keys = ("sums",)

    def __init__(self):
        self.sums = []

    def step(self, inputs):
        self.sums.append(float(inputs["v"]["x"].sum()))
        return {"out": self.sums[-1]}


def test_one_port_to_several_actors_on_latest_edges_is_put_once(ray):
    """A large value sent to three actors goes through one Put (one object-store copy per
    value, its reference sent three times); every reader sees increasing values and the
    last one."""
    values = [TensorDict({"x": torch.full((256, 128), float(i))}, []) for i in range(20)]
    g = Graph()
    src = g.add(Source(values), name="src")
    readers = [g.add(_Sum(), name=f"r{i}", placement=_direct()) for i in range(3)]
    for r in readers:
        g.connect(src, r["v"], kind="latest").connect(r, g.add(Sink(lambda x: None)))
    g.run_sync()
    last = 256 * 128 * 19.0
    for r in readers:
        assert r.op.sums and r.op.sums == sorted(set(r.op.sums)) and r.op.sums[-1] == last
    puts = [n for n in g._last_run.graph.nodes if n.startswith("ray_put_")]
    assert len(puts) == 1, list(g._last_run.graph.nodes)


def test_iterate_an_actor_output_and_stop_early(ray):
    g = Graph()
    src = g.add(Source(range(10**6)), name="src")
    a = g.add(Map(lambda x: x + 1), name="a", placement=_direct())
    g.connect(src, a)
    got = []
    for x in g.iterate(a):
        got.append(x)
        if len(got) == 20:
            break
    assert got == list(range(1, 21))
    # stopped early, the actor's stats still come back (asked for before it is killed)
    stats = g.stats().operators["a"]
    assert stats.placement == "ray" and stats.items_out >= 20


def test_a_feedback_cycle_through_an_actor(ray):
    g = Graph()
    pp = g.add(PingPong(rounds=30), name="pp", placement=_direct())
    inc = g.add(Map(lambda x: x + 1), name="inc")
    g.connect(pp["ping"], inc).connect(inc, pp["pong"], feedback=True)
    g.run_sync()
    assert pp.op.count == 30  # the state came back


def test_a_consumer_that_stops_early_ends_the_producers(ray):
    class Take(Operator):
        outputs = ()
        state_keys = ("n",)

        def __init__(self):
            self.n = 0

        def step(self, inputs):
            self.n += 1
            if self.n >= 5:
                raise StopIteration

    g = Graph()
    src = g.add(Source(range(10**7)), name="src", placement=_direct())
    take = g.add(Take(), name="take", placement=_direct())
    g.connect(src, take)
    t0 = time.monotonic()
    g.run_sync()
    assert take.op.n == 5
    assert time.monotonic() - t0 < 30


def test_a_rate_limited_edge_between_processes_is_refused(ray):
    class Limiter:
        async def acquire_insert(self, n):
            pass

        async def acquire_sample(self, n):
            pass

    g = Graph()
    src = g.add(Source(range(3)), name="src")
    a = g.add(Map(abs), name="a", placement=_direct())
    g.connect(src, a, limiter=Limiter()).connect(a, g.add(Sink(lambda x: None)))
    with pytest.raises(GraphValidationError, match=r"rate-limited.*RayReplayBuffer"):
        g.run_sync()


def test_direct_is_checked_and_shown():
    with pytest.raises(TypeError, match="direct must be a bool"):
        Ray(direct=1)
    assert repr(Ray(num_cpus=1, direct=True)) == "Ray(num_cpus=1, direct=True)"
    assert Ray(num_cpus=1, direct=True).request() == "num_cpus=1"


def test_failure_policy_arguments_are_checked():
    assert Ray(direct=True, on_failure="restart").max_restarts == 3
    assert "on_failure='restart', max_restarts=2" in repr(Ray(direct=True, on_failure="restart", max_restarts=2))
    assert Ray().max_restarts == 0
    with pytest.raises(ValueError, match="on_failure must be 'fail' or 'restart'"):
        Ray(direct=True, on_failure="retry")
    with pytest.raises(ValueError, match="needs direct=True"):
        Ray(on_failure="restart")
    with pytest.raises(ValueError, match="max_restarts needs on_failure='restart'"):
        Ray(direct=True, max_restarts=2)
    with pytest.raises(ValueError, match="max_restarts must be an int >= 1"):
        Ray(direct=True, on_failure="restart", max_restarts=0)


def test_a_group_runs_on_one_actor_with_local_edges(ray):
    """Two operators of one group: one actor process, items in order, their edge a local
    channel of the actor (not in the driver's graph), both in the stats and their final
    states back in the driver's objects."""
    g = Graph()
    src = g.add(Source(range(300)), name="src")
    a = g.add(_Stamped(), name="a", placement=Ray(num_cpus=0, direct=True, group="pair"))
    b = g.add(_Stamped(), name="b", placement=Ray(num_cpus=0, direct=True, group="pair"))
    out = g.add(Collect(), name="out")
    g.connect(src, a).connect(a, b).connect(b, out)
    g.run_sync()
    assert out.op.items == list(range(300))
    assert a.op.pids == b.op.pids and len(a.op.pids) == 1 and os.getpid() not in a.op.pids
    driver_edges = [e.name for e in g._last_run.graph.edges]
    assert not any(e.startswith("a.") for e in driver_edges), driver_edges
    stats = g.stats()
    assert stats.operators["a"].placement == stats.operators["b"].placement == "ray"
    assert stats.operators["b"].items_out == 300
    assert list(g._last_run.deployment.parts) == ["pair"]  # one segment, one actor


def test_group_arguments_are_checked(ray):
    with pytest.raises(ValueError, match="group= needs direct=True"):
        Ray(group="g")
    with pytest.raises(ValueError, match="alone on its actor"):
        Ray(direct=True, on_failure="restart", group="g")
    with pytest.raises(ValueError, match="non-empty str"):
        Ray(direct=True, group="")
    assert "group='g'" in repr(Ray(direct=True, group="g"))
    g = Graph()
    s = g.add(Source(range(3)), name="s")
    a = g.add(Map(_double), name="a", placement=Ray(num_cpus=0, direct=True, group="g"))
    b = g.add(Map(_double), name="b", placement=Ray(num_cpus=1, direct=True, group="g"))
    g.connect(s, a).connect(a, b).connect(b, g.add(Collect()))
    with pytest.raises(GraphValidationError, match="share Ray group 'g' but their placements"):
        g.run_sync()
    g = Graph()
    s = g.add(Source(range(3)), name="s")
    a = g.add(Map(_double), name="a", placement=Ray(num_cpus=0, direct=True, group="s"))
    g.connect(s, a).connect(a, g.add(Collect()))
    with pytest.raises(GraphValidationError, match="group 's' has the name of operator 's'"):
        g.run_sync()
