"""The Ray placement: operators on Ray actors of a local Ray started once for this module."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import anyio
import pytest
import torch
from tensordict import TensorDict

from streamrl._warnings import StreamRLWarning
from streamrl.graph import (
    Collect,
    Graph,
    Map,
    Operator,
    OperatorError,
    Ray,
    Sink,
    Source,
)
from streamrl.graph.testing import OperatorContract, run_operator
from tests.ray_support import local_ray

from .helpers import Boom, Forever, PingPong, Slow


@pytest.fixture(scope="module")
def ray_local():
    # this test package is not importable on Ray's workers: its functions go by value
    with local_ray(__name__, Boom.__module__, resources={"env_host": 2}) as ray:
        yield ray


@pytest.fixture
def ray(ray_local):
    """Ray, checked after the test: no actor of the test is left (killed actors drop their
    name within a moment; a leaked one keeps it)."""
    yield ray_local
    assert _actors_gone(ray_local, timeout=5.0), ray_local.util.list_named_actors()


def _actors_gone(ray, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while ray.util.list_named_actors():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _td(i: int) -> TensorDict:
    return TensorDict({"obs": torch.full((4, 3), float(i)), "step": torch.arange(4) + i}, [4])


def _plus_one(td):
    return td.set("z", td["y"] + 1).set("pid2", torch.full((td.shape[0],), os.getpid()))


def _pipe(op, name, placement, items=(1,)):
    """``Source(items) -> op -> Sink``."""
    g = Graph()
    node = g.add(op, name=name, placement=placement)
    g.connect(g.add(Source(list(items))), node)
    if op.outputs:
        g.connect(node, g.add(Sink(lambda x: None)))
    return g


def _identity(x):
    return x


def _scale(td):
    # records where it ran: the pid of the actor's process
    return td.set("y", td["obs"] * 10).set("pid", torch.full((td.shape[0],), os.getpid()))


# ---------------------------------------------------------------------------- options
def test_options_are_checked():
    assert repr(Ray()) == "Ray()"
    assert repr(Ray(num_cpus=1, resources={"env": 2})) == "Ray(num_cpus=1, resources={'env': 2})"
    with pytest.raises(ValueError, match="num_cpus must be a number >= 0 or None, found -1"):
        Ray(num_cpus=-1)
    with pytest.raises(ValueError, match="num_gpus"):
        Ray(num_gpus="1")
    with pytest.raises(TypeError, match=r"resources must be a dict.*found list"):
        Ray(resources=["env"])
    with pytest.raises(ValueError, match="found 'env': -1"):
        Ray(resources={"env": -1})
    with pytest.raises(ValueError, match=r"may not set \['max_concurrency', 'name'\]"):
        Ray(actor_options={"name": "x", "max_concurrency": 4})
    with pytest.raises(ValueError, match="max_in_flight must be an int >= 1"):
        Ray(max_in_flight=0)
    with pytest.raises(ValueError, match="start_timeout must be a number > 0"):
        Ray(start_timeout=0)


def test_missing_ray_names_the_extra(monkeypatch):
    from streamrl.graph import ray as ray_placement

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'streamrl\[ray\]'"):
        ray_placement._import_ray()
    with pytest.raises(OperatorError, match=r"'m' raised in start.*streamrl\[ray\]"):
        _pipe(Map(abs), "m", Ray()).run_sync()


def test_streamrl_graph_imports_without_ray():
    code = ("import sys\n"
            "import streamrl.graph as g\n"
            "print(g.Ray(num_cpus=1), 'ray' in sys.modules)")  # Ray is imported lazily
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["Ray(num_cpus=1)", "False"]


_AUTO_INIT = """
import ray
from streamrl.graph import Graph, Map, Ray, Sink, Source
out = []
g = Graph()
m = g.add(Map(abs), name="m", placement=Ray())
g.connect(g.add(Source([1, -2, 3])), m).connect(m, g.add(Sink(out.append)))
assert not ray.is_initialized()
g.run_sync()  # starts a local Ray; its processes must outlive the run's event loop thread
g.run_sync()
print(out, ray.is_initialized(), ray.util.list_named_actors())
"""


# before the tests that start this module's Ray: with that one running too, the new one's
# start-up and actors took 2.7 s more
@pytest.mark.slow
def test_ray_is_started_when_not_initialized():
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_ADDRESS": "local"}  # never join a cluster running elsewhere
    proc = subprocess.run([sys.executable, "-c", _AUTO_INIT], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[1, 2, 3, 1, 2, 3] True []"


def test_async_hooks_are_refused():
    class AsyncStep(Operator):
        async def step(self, inputs):
            return None

    with pytest.raises(TypeError, match="async hooks"):
        Ray().host(AsyncStep(), "a")


def test_deterministic_mode_runs_inline_without_ray():
    g = Graph()
    src = g.add(Source([_td(i) for i in range(3)]))
    m = g.add(Map(_scale), name="m", placement=Ray())
    out = g.add(Collect())
    g.connect(src, m).connect(m, out)
    g.run_deterministic()
    assert [int(td["pid"][0]) for td in out.op.items] == [os.getpid()] * 3
    assert [float(td["y"][0, 0]) for td in out.op.items] == [0.0, 10.0, 20.0]


def test_tensordicts_are_packed_as_numpy_arrays_and_rebuilt_exactly():
    from streamrl.graph.ray import pack_item, unpack_item

    td = TensorDict({
        "obs": torch.randn(3, 2),
        "done": torch.tensor([True, False, True]),
        "nested": {"step": torch.arange(3, dtype=torch.int32), "empty": {}},
        "t": torch.randn(2, 3).t(),  # not contiguous
    }, [3])
    packed = pickle.loads(pickle.dumps(pack_item(td)))
    assert isinstance(packed, tuple) and all(
        a is None or type(a).__module__ == "numpy" for a in packed[4])
    packed[4][0].setflags(write=False)  # as when read from Ray's object store
    back = unpack_item(packed)
    assert type(back) is TensorDict and back.batch_size == td.batch_size
    assert set(back.keys(True, True)) == set(td.keys(True, True))
    assert "empty" in back["nested"].keys() and back["nested", "empty"].batch_size == (3,)
    for k in td.keys(True, True):
        assert back[k].dtype == td[k].dtype and torch.equal(back[k], td[k]), k
    back["obs"] += 1  # writable (a copy of the read-only array)
    # what numpy cannot carry is left to pickle
    for other in [
        TensorDict({"x": torch.ones(2, dtype=torch.bfloat16)}, [2]),
        TensorDict({"x": torch.ones(2, 3)}, [2], names=["b"]),
        TensorDict({"x": torch.ones(2, 3), "n": TensorDict({"y": torch.ones(2, 3)}, [2, 3])},
                   [2]),
        TensorDict({"x": torch.ones(2, requires_grad=True)}, [2]),
        "not a tensordict",
    ]:
        assert pack_item(other) is other
    assert unpack_item(("other", 1, 2, 3, 4)) == ("other", 1, 2, 3, 4)


# ---------------------------------------------------------------------------- running
def test_chain_with_ray_maps(ray):
    g = Graph()
    src = g.add(Source([_td(i) for i in range(6)]), name="src")
    m1 = g.add(Map(_scale), name="m1", placement=Ray(max_in_flight=1))
    m2 = g.add(Map(_plus_one), name="m2", placement=Ray())  # pipelined (Map is pipeline_safe)
    plus = g.add(Map(lambda td: td.set("z", td["z"] * 2)), name="plus")
    out = g.add(Collect(), name="out")
    g.connect(src, m1).connect(m1, m2).connect(m2, plus).connect(plus, out)
    g.run_sync()
    tds = out.op.items
    assert [float(td["z"][0, 0]) for td in tds] == [(10.0 * i + 1) * 2 for i in range(6)]
    assert all(torch.equal(td["step"], torch.arange(4) + i) for i, td in enumerate(tds))
    assert all(td.batch_size == torch.Size([4]) for td in tds)
    pids = {(int(td["pid"][0]), int(td["pid2"][0])) for td in tds}
    assert len(pids) == 1  # one actor per operator, each in its own process
    ((p1, p2),) = pids
    assert len({p1, p2, os.getpid()}) == 3
    stats = g.stats().operators
    assert stats["m1"].placement == stats["m2"].placement == "ray"
    assert stats["m1"].calls >= 6 and stats["m2"].calls >= 6


class _Counter(Map):
    """A pipelined (``pipeline_safe``) Map that counts its steps in its state."""

    state_keys = ("n",)

    def __init__(self):
        super().__init__(_identity)
        self.n = 0

    def step(self, inputs):
        self.n += 1
        return super().step(inputs)


class _Take(Operator):
    """Ends the stream after ``k`` items."""

    outputs = ()

    def __init__(self, k):
        self.k = k
        self.items = []

    def step(self, inputs):
        self.items.append(inputs["in"])
        if len(self.items) >= self.k:
            raise StopIteration


def test_a_consumer_that_stops_early_still_gets_state_back(ray):
    """The consumer ends while a pipelined call is in flight: the answer is awaited, then the
    state is copied back and close() runs as after any normal end."""
    g = Graph()
    count = g.add(_Counter(), name="count", placement=Ray(max_in_flight=2))
    take = g.add(_Take(3), name="take")
    g.connect(g.add(Source(range(100))), count).connect(count, take, capacity=1)
    g.run_sync()
    assert take.op.items == [0, 1, 2]
    assert 3 <= count.op.n < 100, count.op.n


class _PlacedPingPong(PingPong):
    """PingPong that records, in its state, the Ray resources its actor was given."""

    state_keys = ("count", "resources")

    def __init__(self, rounds):
        super().__init__(rounds)
        self.resources = {}

    def open(self):
        import ray

        self.resources = dict(ray.get_runtime_context().get_assigned_resources())
        return super().open()


def test_env_like_source_on_ray_in_a_feedback_cycle(ray):
    """PingPong (an env: emits, then reacts to each reply) on an actor, its policy inline; a
    second, independent cycle runs alongside with ``sync_state=False``."""
    g = Graph()
    env = g.add(_PlacedPingPong(rounds=20), name="env",
                placement=Ray(num_cpus=0.5, resources={"env_host": 1}))
    policy = g.add(Map(lambda x: x + 1), name="policy")
    g.connect(env["ping"], policy).connect(policy, env["pong"], feedback=True)
    env2 = g.add(PingPong(rounds=5), name="env2", placement=Ray(sync_state=False))
    policy2 = g.add(Map(lambda x: x + 1), name="policy2")
    g.connect(env2["ping"], policy2).connect(policy2, env2["pong"], feedback=True)
    assert env.op.count == 0
    g.run_sync()
    # the actor's state is copied back into the driver's operator after the run
    assert env.op.count == 20
    assert g.state_dict()["env"] == {"count": 20, "resources": env.op.resources}
    assert env.op.seen == []  # not in state_keys: the actor's list stays on the actor
    # the actor was given what the placement asked for
    assert env.op.resources == {"CPU": 0.5, "env_host": 1.0}
    assert env2.op.count == 0  # sync_state=False: not copied back


def test_problems_at_the_end_of_a_run_are_reported(ray):
    """A state that cannot be copied back warns; an error in close() (run on the actor)
    fails the run naming the operator."""

    class NoLoad(Map):
        def load_state_dict(self, state):
            raise KeyError("refused")

    class BadClose(Sink):
        def close(self):
            raise OSError(f"close failed in {os.getpid()}")

    g = Graph()
    m = g.add(NoLoad(abs), name="m", placement=Ray())
    s = g.add(BadClose(lambda x: None), name="s", placement=Ray())
    g.connect(g.add(Source([1, -2])), m).connect(m, s)
    with pytest.warns(StreamRLWarning, match="'m': could not copy its state back.*refused"):
        with pytest.raises(OperatorError) as info:
            g.run_sync()
    assert info.value.operator == "s" and info.value.hook == "close"
    assert isinstance(info.value.__cause__, OSError)
    assert str(os.getpid()) not in str(info.value.__cause__)  # it ran in the actor's process


# ---------------------------------------------------------------------------- errors
async def test_error_propagates_naming_the_operator(ray):
    g = Graph()
    src = g.add(Forever(), name="src")
    boom = g.add(Boom(at=20), name="boom", placement=Ray())
    g.connect(src, boom).connect(boom, g.add(Collect(), name="out"))
    with pytest.raises(OperatorError) as info:
        await g.run()
    err = info.value
    elapsed = time.monotonic() - err.__cause__.args[1]
    assert err.operator == "boom" and err.hook == "step"
    assert type(err.__cause__) is ValueError  # the original type, not Ray's wrapper
    assert err.__cause__.args[0] == "boom at item 20"
    (note,) = [n for n in err.__cause__.__notes__ if n.startswith("raised on a Ray actor")]
    assert "boom at item 20" in note and "\x1b" not in note  # the remote traceback, no colours
    assert elapsed < 1.0, elapsed  # from the raise on the actor to the caller


@pytest.mark.parametrize("hook", ["open", "finish"])
def test_error_in_open_and_finish(ray, hook):
    class Bad(Map):
        def open(self):
            if hook == "open":
                raise KeyError("no open")

        def finish(self):
            if hook == "finish":
                raise KeyError("no finish")

    g = _pipe(Bad(abs), "bad", Ray())
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert (info.value.operator, info.value.hook) == ("bad", hook)
    assert type(info.value.__cause__) is KeyError


def test_an_operator_that_cannot_reach_the_actor_fails_in_start(ray):
    class Unbuildable(Map):
        def __setstate__(self, state):
            raise RuntimeError("cannot be rebuilt here")

    g = _pipe(Unbuildable(abs), "u", Ray())
    with pytest.raises(OperatorError, match="'u' raised in start") as info:
        g.run_sync()
    assert "cannot be rebuilt here" in str(info.value.__cause__)

    m = Map(abs)
    m.lock = threading.Lock()  # cannot be pickled
    with pytest.raises(OperatorError, match="'locked' raised in start"):
        _pipe(m, "locked", Ray()).run_sync()


def test_an_actor_that_cannot_be_placed_times_out_in_start(ray):
    g = _pipe(Map(abs), "m", Ray(resources={"no_such_node": 1}, start_timeout=0.5))
    with pytest.raises(OperatorError, match=r"'m' raised in start.*no_such_node") as info:
        g.run_sync()
    assert isinstance(info.value.__cause__, TimeoutError)


# ---------------------------------------------------------------------------- shutdown
class _Stuck(Operator):
    """A sink whose step creates ``path`` (so the test knows it is inside) and hangs."""

    outputs = ()

    def __init__(self, path):
        self.path = path

    def step(self, inputs):
        with open(self.path, "w"):
            pass
        time.sleep(30)


async def test_cancel_kills_an_actor_stuck_in_a_hook(ray, tmp_path):
    flag = tmp_path / "in_step"
    g = Graph()
    g.connect(g.add(Forever(), name="src"), g.add(_Stuck(str(flag)), name="m", placement=Ray()))
    ticks = 0
    cancelled_at = None

    async def ticker():  # runs only if awaiting the actor leaves the event loop free
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async def cancel_when_stuck(scope):
        nonlocal cancelled_at, ticks
        with anyio.fail_after(60):  # generous: the actor starts in seconds on a loaded machine
            while not flag.exists():
                await anyio.sleep(0.01)
        ticks = 0
        await anyio.sleep(0.5)  # the actor is inside step() all along
        cancelled_at = time.monotonic()
        scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(cancel_when_stuck, tg.cancel_scope)
        await g.run()
    elapsed = time.monotonic() - cancelled_at
    assert ticks >= 10, ticks  # the event loop ran while the actor was stuck
    assert elapsed < 1.0, elapsed  # the run ended within a second of the cancel
    assert _actors_gone(ray, timeout=0.0)  # and the actor had been killed by then


def test_keyboard_interrupt_while_iterating_stops_the_graph(ray):
    g = Graph()
    src = g.add(Forever())
    m = g.add(Slow(0.001), name="m", placement=Ray())
    g.connect(src, m)
    n = 0
    started = threading.Event()
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        for _ in g.iterate(m):
            n += 1
            if not started.is_set():  # interrupt once the actor is up and answering
                started.set()
                timer.start()
    timer.join()
    assert n > 0
    t0 = time.monotonic()
    assert _actors_gone(ray, timeout=5.0)
    assert time.monotonic() - t0 < 1.0


# ---------------------------------------------------------------------------- contract
def _double(x):
    return 2 * x


class TestRayMapContract(OperatorContract):
    placements = ("inline", Ray())

    @pytest.fixture(autouse=True)
    def _ray(self, ray):
        return ray

    def make_operator(self):
        return Map(_double)

    def feeds(self):
        # int, bool, nested and bfloat16 (not packed) leaves, and a non-TensorDict item
        return {"in": [TensorDict({"x": torch.arange(4.0), "n": {"i": torch.arange(4)},
                                   "b": torch.ones(4, dtype=torch.bfloat16)}, [4]) * i
                       for i in range(4)] + [torch.ones(2)]}


def test_run_operator_with_a_ray_source(ray):
    assert run_operator(Source(range(5)), placement=Ray()) == {"out": [0, 1, 2, 3, 4]}
