"""Which failure a split graph reports when one actor loses its peer and the peer's own death
notice is slow (or never reaches the driver's pending call): the driver's segment deployment
with stand-in actors, so the timing is the test's, not Ray's. The real-Ray path is in
``test_ray_direct.py``."""

import asyncio
import types

import pytest

from streamrl.graph import OperatorError, PeerLostError, Ray, _ray_segments
from streamrl.graph._ray_segments import Deployment

EDGE = "a.out->dies.in"


class _RayError(Exception):
    pass


class _ActorError(_RayError):
    pass


class _TaskError(_RayError):
    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


FAKE_RAY = types.SimpleNamespace(exceptions=types.SimpleNamespace(
    RayError=_RayError, RayActorError=_ActorError, RayTaskError=_TaskError))


class _Method:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        return self.fn(*args)


class _Actor:
    """``run`` and ``ready`` as given coroutines functions."""

    def __init__(self, run, ready):
        self.run, self.ready = _Method(run), _Method(ready)


async def _forever(*args):
    await asyncio.Event().wait()


async def _alive(*args):
    return ("node", "127.0.0.1", 1)


async def _dead(*args):
    raise _ActorError("the actor died unexpectedly")


def _consequence(edge=EDGE):
    lost = PeerLostError(f"the other end of edge {edge} failed or went away", edge)
    lost.__cause__ = _ActorError("ActorDiedError")
    err = OperatorError("ray_out_2", "step", lost)
    err.__cause__ = lost

    async def fails(*args):
        raise _TaskError(err)

    return fails


def _deployment(actors, wiring=None, driver_peers=None):
    segs = list(actors)
    d = Deployment("g", {s: None for s in segs}, {s: Ray(direct=True) for s in segs},
                   wiring if wiring is not None else {"a": {EDGE: "dies"}, "dies": {}},
                   driver_peers or {}, {})
    d._ray = FAKE_RAY
    d.actors = actors
    d.names = {s: f"streamrl:g:{s}:run" for s in segs}
    d.nodes = {s: ("node-" + s, "10.0.0.1", 99) for s in segs}
    return d


async def _reported(d):
    """The OperatorError the deployment's run raises (within 5 s)."""
    with pytest.raises(OperatorError) as info:
        await asyncio.wait_for(d.run(), 5)
    return info.value


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(_ray_segments, "_PEER_LOST_GRACE", 0.05)


async def test_a_peer_found_dead_after_the_grace_is_named(short_grace):
    d = _deployment({"a": _Actor(_consequence(), _alive), "dies": _Actor(_forever, _dead)})
    error = await _reported(d)
    assert error.operator == "dies", error
    text = str(error)
    assert "streamrl:g:dies:run" in text and "node-dies" in text and "died" in text, text


async def test_a_peer_pushing_into_the_failed_segment_is_found_too(short_grace):
    """The edge's other end is the segment that pushes into the one that failed."""
    d = _deployment({"dies": _Actor(_forever, _dead), "a": _Actor(_consequence(), _alive)},
                    wiring={"dies": {EDGE: "a"}, "a": {}})
    error = await _reported(d)
    assert error.operator == "dies", error


async def test_a_live_peer_leaves_the_consequence_reported(short_grace):
    d = _deployment({"a": _Actor(_consequence(), _alive), "dies": _Actor(_forever, _alive)})
    error = await _reported(d)
    assert error.operator == "ray_out_2"
    assert isinstance(error.__cause__, PeerLostError)


async def test_a_peer_that_does_not_answer_leaves_the_consequence_reported(short_grace):
    d = _deployment({"a": _Actor(_consequence(), _alive), "dies": _Actor(_forever, _forever)})
    error = await _reported(d)
    assert error.operator == "ray_out_2"


async def test_a_lost_driver_edge_is_the_consequence(short_grace):
    """An edge with the driver has no peer segment to ask: the consequence is reported."""
    d = _deployment({"a": _Actor(_consequence("src.out->a.in"), _alive),
                     "dies": _Actor(_forever, _dead)},
                    driver_peers={"src.out->a.in": "a"})
    error = await _reported(d)
    assert error.operator == "ray_out_2"


async def test_the_cause_reported_within_the_grace_wins(short_grace):
    """The peer's own failure (not a death) reaching the driver in time is what is raised."""
    async def own_failure(*args):
        await asyncio.sleep(0.01)
        raise _TaskError(OperatorError("dies", "step", ValueError("bad item")))

    d = _deployment({"a": _Actor(_consequence(), _alive), "dies": _Actor(own_failure, _dead)})
    error = await _reported(d)
    assert error.operator == "dies"
    assert isinstance(error.__cause__, ValueError)


async def test_a_driver_end_that_lost_a_dead_peer_raises_its_death(short_grace):
    """:meth:`Deployment.lost` (a driver's edge end): no coordinator report within the
    grace, the peer's actor found dead: the death, named, rather than the edge's error."""
    d = _deployment({"a": _Actor(_forever, _dead)}, wiring={"a": {}},
                    driver_peers={"src.out->a.in": "a"})
    lost = PeerLostError("the other end of edge src.out->a.in failed", "src.out->a.in")
    with pytest.raises(OperatorError) as info:
        await asyncio.wait_for(d.lost(lost, "src.out->a.in", d.actors["a"]), 5)
    assert info.value.operator == "a" and "streamrl:g:a:run" in str(info.value)

    d.actors["a"] = _Actor(_forever, _alive)
    with pytest.raises(PeerLostError):
        await asyncio.wait_for(d.lost(lost, "src.out->a.in", d.actors["a"]), 5)


def test_peer_lost_error_keeps_its_edge_through_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(PeerLostError("gone", "x.out->y.in")))
    assert err.edge == "x.out->y.in" and str(err) == "gone"
    assert PeerLostError("gone").edge is None
