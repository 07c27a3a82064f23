"""Direct Ray edges: operators placed with ``Ray(direct=True)`` run on their actors under their
own runner, and data between two such operators goes from actor to actor.

When the graph starts, :func:`split` cuts it in parts: each direct-Ray operator becomes a
*segment*, a small graph of its own (the operator, run inline on the actor's event loop, plus
the ends of its remote edges from :mod:`._ray_edges`, fused with it where the graph allows),
and the rest stays on the driver with the driver's ends of those edges and one
:class:`Coordinator`. The coordinator starts the segment actors, tells each where its
peers are, runs them, and reports the first failure; the driver's runner sees only control
calls and the data of edges with a driver end.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import anyio

from ._ray_edges import Awaits
from .errors import GraphValidationError, OperatorError
from .operator import Operator
from .placement import END, Inline
from .validation import simple_cycles

if TYPE_CHECKING:
    from .channels import FifoChannel
    from .graph import Edge, Graph
    from .ray import Ray

_actor_class: Any = None
_PEER_LOST_GRACE = 5.0  # seconds a failure caused by a lost peer waits for the cause


def _direct(placement: Any) -> bool:
    from .ray import Ray

    return isinstance(placement, Ray) and placement.direct


def _free_name(graph: Graph, base: str) -> str:
    name, i = base, 2
    while name in graph.nodes:
        name, i = f"{base}_{i}", i + 1
    return name


def _clear_open_feedback(graph: Graph) -> None:
    """A cycle cut by the split is no cycle in its part: its feedback flag goes."""
    on_cycle = {id(e) for c in simple_cycles(list(graph.nodes), graph.edges) for e in c}
    for e in graph.edges:
        if e.feedback and id(e) not in on_cycle:
            e.feedback = False


class _Plan:
    """The parts of a split graph and who talks to whom."""

    def __init__(self, graph: Graph):
        from .graph import Graph

        self.graph = graph
        #: the segment of each direct-Ray operator: its ``group``, else its own name
        self.seg_of = {name: cast("Ray", n.placement).group or name
                       for name, n in graph.nodes.items() if _direct(n.placement)}
        self.segments = list(dict.fromkeys(self.seg_of.values()))
        self.members = {s: [n for n, g in self.seg_of.items() if g == s] for s in self.segments}
        self.driver = Graph(graph.name)
        self.parts: dict[str, Graph] = {s: Graph(f"{graph.name}:{s}") for s in self.segments}
        #: per segment, ``{edge: peer segment}`` for its outboxes
        self.wiring: dict[str, dict[str, str]] = {s: {} for s in self.segments}
        #: ``{edge: segment}`` for the driver's ends
        self.driver_peers: dict[str, str] = {}
        self.n = 0
        #: ``{segment: FIFO edges from it into the driver}``
        self.pulled: dict[str, set[str]] = {}
        self.restartable = {s for s in self.segments if cast(
            "Ray", graph.nodes[self.members[s][0]].placement).on_failure == "restart"}
        self._snaps: dict[tuple[str, str], str] = {}
        #: ports whose items go to several actors on latest-value edges, and their Put
        self.fanout = {p for p, n in Counter(
            (e.src, e.src_port) for e in graph.edges
            if e.kind == "latest" and e.dst in self.seg_of
            and self.part(e.src) is not self.part(e.dst)).items() if n > 1}
        self._puts: dict[tuple[str, str], str] = {}

    def latest_port(self, name: str, port: str) -> Any:
        """What a latest-value edge into an actor starts from: the port, or the :class:`Put`
        after it when the port sends to several actors (one per port)."""
        from ._ray_edges import Put

        part = self.part(name)
        if (name, port) not in self.fanout:
            return part[name][port]
        if (name, port) not in self._puts:
            put = self.add(part, Put(f"{name}.{port}"), "ray_put_")
            part.connect(part[name][port], part[put], kind="latest")
            self._puts[name, port] = put
        return part[self._puts[name, port]]

    def out_port(self, name: str, port: str) -> Any:
        """What an edge out of ``name``'s ``port`` starts from: the port, or for a
        restartable segment the :class:`Snap` after it (one per port)."""
        from ._ray_edges import Snap

        part = self.part(name)
        if self.seg_of.get(name) not in self.restartable:
            return part[name][port]
        if (name, port) not in self._snaps:
            snap = self.add(part, Snap(f"{name}.{port}"), "ray_snap_")
            part.connect(part[name][port], part[snap], capacity=1)
            self._snaps[name, port] = snap
        return part[self._snaps[name, port]]

    def copies(self, name: str) -> bool:
        """Whether the FIFO items of operator ``name`` are copied out of Ray's object store
        where they are received (not with ``Ray(zero_copy=True)``)."""
        placement = self.graph.nodes[name].placement
        return not (_direct(placement) and cast("Ray", placement).zero_copy)

    def part(self, name: str) -> Graph:
        """The part that runs operator ``name``."""
        seg = self.seg_of.get(name)
        return self.driver if seg is None else self.parts[seg]

    def add(self, graph: Graph, op: Operator, base: str) -> str:
        name = _free_name(graph, f"{base}{self.n}")
        self.n += 1
        graph.add(op, name, Inline())
        return name

    def cross(self, e: Edge) -> None:
        """An edge whose ends are in different parts: an end in each."""
        from ._ray_edges import Inbox, LatestIn, Outbox, Pull, Serve

        if e.limiter is not None:
            raise GraphValidationError(
                f"edge {e.name} is rate-limited and joins operators in different processes of "
                "a Ray application; a limiter works within one process (use a RayReplayBuffer "
                "between actors)")
        src, dst = self.part(e.src), self.part(e.dst)
        latest = e.kind == "latest"
        local = {"kind": e.kind, "capacity": 1} if not latest else {"kind": "latest"}
        if e.dst in self.seg_of:  # pushed: the producer's outbox, the consumer's inbox
            out = self.add(src, Outbox(e.name, None if latest else e.capacity), "ray_out_")
            start = self.latest_port(e.src, e.src_port) if latest else src[e.src][e.src_port]
            src.connect(start, src[out], **local)
            inn = self.add(dst, LatestIn(e.name) if latest else
                           Inbox(e.name, copy=self.copies(e.src)), "ray_in_")
            dst.connect(dst[inn], dst[e.dst][e.dst_port], **local)
            if e.src in self.seg_of:
                self.wiring[self.seg_of[e.src]][e.name] = self.seg_of[e.dst]
            else:
                self.driver_peers[e.name] = self.seg_of[e.dst]
        else:  # into the driver: pulled
            out = self.add(src, Serve(e.name, latest), "ray_out_")
            src.connect(self.out_port(e.src, e.src_port), src[out], **local)
            inn = self.add(dst, Pull(e.name, None if latest else e.capacity,
                                     copy=latest or self.copies(e.src)), "ray_in_")
            if not latest:
                self.pulled.setdefault(self.seg_of[e.src], set()).add(e.name)
            dst.connect(dst[inn], dst[e.dst][e.dst_port], kind=e.kind,
                        capacity=e.capacity or 2, feedback=e.feedback)
            self.driver_peers[e.name] = self.seg_of[e.src]

    def tap(self, name: str, port: str) -> str:
        """An output of a segment read from outside the graph: pulled to the driver; returns
        the name of the driver's end, whose ``out`` port is tapped instead."""
        from ._ray_edges import Pull, Serve

        edge = f"{name}.{port}->(tap)"
        part = self.part(name)
        out = self.add(part, Serve(edge, False), "ray_out_")
        part.connect(self.out_port(name, port), part[out], capacity=1)
        self.driver_peers[edge] = self.seg_of[name]
        self.pulled.setdefault(self.seg_of[name], set()).add(edge)
        return self.add(self.driver, Pull(edge, 2), "ray_tap_")


def _check_groups(graph: Graph, plan: _Plan) -> None:
    """The operators of a ``group`` have equal placements, and no other operator has the
    group's name; a :class:`GraphValidationError` naming them else."""
    for seg, members in plan.members.items():
        if len(members) == 1 and members[0] == seg:
            continue
        if seg in graph.nodes and seg not in members:
            raise GraphValidationError(
                f"Ray group {seg!r} has the name of operator {seg!r}, which is not in it")
        first = cast("Ray", graph.nodes[members[0]].placement)
        for name in members[1:]:
            other = cast("Ray", graph.nodes[name].placement)
            if not first.same_actor(other):
                raise GraphValidationError(
                    f"operators {members[0]!r} and {name!r} share Ray group {seg!r} but their "
                    f"placements differ: {first!r} and {other!r}")


def _check_restartable(graph: Graph, plan: _Plan) -> None:
    """A segment placed with ``on_failure="restart"`` talks to the driver only, and its inputs
    are latest-value edges: what it was sent and had not finished is then never lost twice
    (see :class:`Deployment`). Raise a :class:`GraphValidationError` naming the edge else.
    (A restartable operator is alone in its segment, named after it: ``Ray`` refuses
    ``group`` with it.)"""
    for seg in plan.restartable:
        for e in graph.edges:
            if seg not in (e.src, e.dst):
                continue
            other = e.dst if e.src == seg else e.src
            if other == seg:
                raise GraphValidationError(
                    f"{seg} is placed with on_failure='restart' and edge {e.name} loops back "
                    "into it: a restartable operator may only exchange items with operators "
                    "on the driver")
            if other in plan.seg_of:
                raise GraphValidationError(
                    f"{seg} is placed with on_failure='restart' and edge {e.name} joins it to "
                    f"{other}, another direct Ray operator: a restartable operator may only "
                    "exchange items with operators on the driver")
            if e.dst == seg and e.kind != "latest":
                raise GraphValidationError(
                    f"{seg} is placed with on_failure='restart' and its input edge {e.name} is "
                    f"a {e.kind!r} edge: a restartable operator takes latest-value inputs only "
                    "(a FIFO item it took would be lost with it; e.g. run it free, without a "
                    "trigger)")


def split(graph: Graph, taps: dict[tuple[str, str], FifoChannel]
          ) -> tuple[Graph, dict[tuple[str, str], FifoChannel], Deployment] | None:
    """``(driver graph, its taps, deployment)`` for a graph with direct-Ray operators, else
    None. The driver graph holds the other operators, the driver's ends of the remote edges
    and the deployment's :class:`Coordinator`."""
    from ._ray_edges import _Proxy

    plan = _Plan(graph)
    if not plan.segments:
        return None
    _check_groups(graph, plan)
    _check_restartable(graph, plan)
    for name, n in graph.nodes.items():
        if name in plan.seg_of:  # on the actor's loop: fused with its edges' ends, no hand-offs
            plan.part(name).add(n.op, name, Inline())
        else:
            plan.driver.add(n.op, name, n.placement)
    for e in graph.edges:
        src, dst = plan.part(e.src), plan.part(e.dst)
        if src is dst:
            src.connect(src[e.src][e.src_port], dst[e.dst][e.dst_port], kind=e.kind,
                        capacity=e.capacity or 2, feedback=e.feedback, limiter=e.limiter)
        else:
            plan.cross(e)
    new_taps = {}
    for (name, port), tap in taps.items():
        new_taps[(plan.tap(name, port), "out") if name in plan.seg_of else (name, port)] = tap
    for part in (plan.driver, *plan.parts.values()):
        _clear_open_feedback(part)
    placements = {s: cast("Ray", graph.nodes[m[0]].placement) for s, m in plan.members.items()}
    deployment = Deployment(graph.name, plan.parts, placements, plan.wiring, plan.driver_peers,
                            {name: graph.nodes[name].op for name in plan.seg_of}, plan.pulled,
                            plan.members)
    for n in plan.driver.nodes.values():
        if isinstance(n.op, _Proxy):
            n.op.site = deployment
    plan.driver.add(Coordinator(deployment), _free_name(plan.driver, "ray_deployment"))
    return plan.driver, new_taps, deployment


# ------------------------------------------------------------------------------------ the actor
class SegmentActor:
    """The body of a segment's actor: runs its graph and holds the receiving ends of its
    edges (Ray calls ``push``/``pull``/``set_latest``/``pull_latest``/``close_edge`` on it)."""

    def __init__(self, graph: Graph):
        from ._ray_edges import Site, _Proxy

        self.graph = graph
        self.site = Site()
        self.runner: Any = None
        self.finished = False
        for n in graph.nodes.values():
            if isinstance(n.op, _Proxy):
                n.op.site = self.site

    async def ready(self) -> tuple[str, str, int]:
        from .._utils.ray_items import actor_location

        return actor_location()

    async def wire(self, peers: dict[str, Any]) -> None:
        self.site.peers.update(peers)
        self.site.wired.set()

    async def run(self, sync_state: bool, snapshots: bool = False,
                  restore: tuple[int, dict[str, Any]] | None = None
                  ) -> tuple[Any, dict[str, Any]]:
        """Run the segment's graph; return its stats and (``sync_state``) its operators'
        final states. ``snapshots``: number the items served and attach the operators'
        states to each; ``restore``: ``(items made, states)`` of a snapshot to go on from
        (taken by an actor that died)."""
        from ._ray_edges import _Proxy
        from .runner import Runner
        from .stats import GraphStats

        ops = {name: n.op for name, n in self.graph.nodes.items() if not isinstance(n.op, _Proxy)}
        if restore is not None:
            self.site.made, states = restore
            for name, state in states.items():
                ops[name].load_state_dict(ops[name].restart_state(state))
        if snapshots:
            self.site.snapshot = lambda: {name: op.state_dict() for name, op in ops.items()}
        # blocking on a peer is normal here: the driver's coordinator watches the whole
        runner = self.runner = Runner(self.graph, watchdog_timeout=None)
        await runner.run()
        self.finished = True
        states = {name: op.state_dict() for name, op in ops.items()} if sync_state else {}
        return GraphStats.collect(runner), states

    async def stats(self) -> Any:
        """The segment's stats so far (None before it runs)."""
        from .stats import GraphStats

        return None if self.runner is None else GraphStats.collect(self.runner)

    async def blocked(self) -> Any:
        """For the driver's watchdog: :meth:`Runner.blocked` of this segment (None before it
        runs). Once it has ended: None while items it served are still to be pulled (on their
        way to the driver, which is then not blocked), else blocked for good with no wait of
        its own (it can unblock no one)."""
        if self.runner is None:
            return None
        if self.finished:
            return None if any(s.items for s in self.site.serves.values()) else (math.inf, [])
        return self.runner.blocked()

    async def push(self, edge: str, seq: int, items: list[Any]) -> bool:
        return await self.site.inbox(edge).put(seq, items)

    async def pull(self, edge: str, seq: int) -> Any:
        return await self.site.serve(edge).pull(seq)

    async def set_latest(self, edge: str, version: int, value: Any) -> bool:
        """Store a newer value; False once the reader has gone."""
        state = self.site.latest_state(edge)
        state.set(version, value)
        return not state.closed

    async def pull_latest(self, edge: str, after: int) -> tuple[int, Any]:
        return await self.site.latest_state(edge).newer(after)

    async def close_edge(self, edge: str) -> None:
        self.site.close_edge(edge)


def _segment_class(ray: Any) -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = ray.remote(SegmentActor)
    return _actor_class


# ------------------------------------------------------------------------------------ the driver
class Deployment:
    """The driver's side of a split graph: starts, wires, runs and kills the segment actors,
    and is the site of the driver's edge ends.

    A segment placed with ``Ray(on_failure="restart")`` whose actor dies (killed, its node
    lost) is replaced, up to ``max_restarts`` times: a new actor (wherever the placement
    fits) loads a snapshot of the segment's operators (:meth:`snapshot`: the states taken
    right after an item the driver received; none: they start afresh) and the latest-value
    inputs the dead one had taken, the driver's ends of its edges start over with it
    (:mod:`._ray_edges`), and it runs again. The items made after the snapshot are made
    again; the ends that already have some of them drop those. An error raised by an
    operator is not a death: it fails the graph as before.
    """

    def __init__(self, graph_name: str, parts: dict[str, Graph], placements: dict[str, Ray],
                 wiring: dict[str, dict[str, str]], driver_peers: dict[str, str],
                 ops: dict[str, Operator], pulled: dict[str, set[str]] | None = None,
                 members: dict[str, list[str]] | None = None):
        self.graph_name = graph_name
        self.parts = parts
        self.placements = placements
        self.wiring = wiring
        self.driver_peers = driver_peers
        self.ops = ops  # the driver's operator objects, which receive the final states
        #: the operators of each segment (one, or a ``group``'s)
        self.members = members or {s: [s] for s in parts}
        self.actors: dict[str, Any] = {}
        self.names: dict[str, str] = {}
        self.nodes: dict[str, tuple[str, str, int]] = {}  # (node id, ip, pid) by segment
        self.stats: dict[str, Any] = {}
        self.started = asyncio.Event()
        self.failed = asyncio.Event()
        self._ray: Any = None
        self.groups: Any = None  # the placement groups the graph made for the actors
        self._group_of: dict[str, Any] = {}
        #: per FIFO edge from a restartable segment into the driver: the newest item number
        #: and snapshot received; the restarts so far and the deaths, per segment
        self.received: dict[str, tuple[int, dict[str, Any]]] = {}
        self.pulled = pulled or {}  # the FIFO edges from each segment into the driver
        self.restarts: dict[str, int] = {s: 0 for s in parts}
        self.deaths: dict[str, list[str]] = {s: [] for s in parts}
        #: per latest-value edge from the driver: the newest value its reader took (and the
        #: end of stream), sent again to a reader that takes over
        self._taken: dict[str, list[tuple[int, Any]]] = {}
        self._replaced = asyncio.Event()  # set (and renewed) at each restart
        self._run = uuid.uuid4().hex[:8]  # in the actors' names

    async def peer(self, edge: str) -> Any:
        await self.started.wait()
        return self.actors[self.driver_peers[edge]]

    def _restartable(self, seg: str) -> bool:
        p = self.placements[seg]
        return p.on_failure == "restart" and self.restarts[seg] < p.max_restarts

    async def lost(self, exc: BaseException, edge: str, handle: Any) -> None:
        """A driver's edge end lost its peer ``handle``: return once another actor has taken
        the peer's place; else give the coordinator time to report the cause (it cancels the
        graph) and raise ``exc``, or the peer's death when its actor is found dead
        (:meth:`_cause`)."""
        seg = self.driver_peers[edge]
        if self.placements[seg].on_failure == "restart":
            with anyio.move_on_after(self.placements[seg].start_timeout + _PEER_LOST_GRACE):
                while self.actors.get(seg) is handle and not self.failed.is_set():
                    await self._replaced.wait()
            if seg in self.actors and self.actors[seg] is not handle:
                return
        with anyio.move_on_after(_PEER_LOST_GRACE):
            await self.failed.wait()
            await anyio.sleep(_PEER_LOST_GRACE)
        raise await self._cause(seg, exc)

    async def _cause(self, seg: str | None, consequence: BaseException) -> BaseException:
        """What to report for ``consequence``, a failure caused by losing segment ``seg``
        (None: the driver) once the grace has passed without ``seg`` reporting its own end:
        ``seg``'s death, named, when a call on its actor now fails with Ray's actor error (its
        death notice was slow to reach the pending run); else ``consequence``."""
        from .._utils.ray_items import actor_died

        if seg is None or seg not in self.actors:
            return consequence
        actor = self.actors[seg]
        try:
            with anyio.move_on_after(_PEER_LOST_GRACE):
                await actor.ready.remote()
        except self._ray.exceptions.RayActorError as exc:
            return OperatorError(seg, "step", actor_died(self.names[seg], self.nodes.get(seg), exc))
        except Exception:  # any other answer: no evidence of a death
            pass
        return consequence

    def _lost_peer(self, seg: str, exc: BaseException) -> str | None:
        """The segment at the other end of the edge whose loss caused ``exc``, a failure of
        segment ``seg`` (None: the driver, or not known)."""
        from .errors import PeerLostError

        edge = getattr(_cause_of(exc, PeerLostError), "edge", None)
        if edge is None:
            return None
        if edge in self.wiring.get(seg, {}):  # seg pushes into the peer
            return self.wiring[seg][edge]
        for other, wired in self.wiring.items():  # the peer pushes into seg
            if wired.get(edge) == seg:
                return other
        return None  # an edge with the driver

    def sent(self, edge: str, version: int, value: Any) -> None:
        """The reader of the latest-value edge ``edge`` took ``value``."""
        from ._ray_edges import EOS

        if value is EOS:
            self._taken.setdefault(edge, []).append((version, value))
        else:
            self._taken[edge] = [(version, value)]

    def record(self, edge: str, made: int, snapshot: dict[str, Any]) -> None:
        """Item ``made`` of a segment, received on the FIFO edge ``edge`` with the states of
        the segment's operators right after it was made."""
        self.received[edge] = (made, snapshot)

    def snapshot(self, seg: str) -> tuple[int, dict[str, Any]] | None:
        """Where an actor that takes over ``seg`` goes on from: the oldest of the newest
        snapshots received on its FIFO edges into the driver, so that no edge misses an item
        (the edges ahead drop the numbers they have); None (start afresh) while one of them
        has received nothing."""
        got = [self.received.get(e) for e in self.pulled.get(seg, ())]
        if not got or any(g is None for g in got):
            return None
        return min(cast("list[tuple[int, dict[str, Any]]]", got), key=lambda g: g[0])

    async def start(self) -> None:
        from .._utils.ray_init import send_local_modules
        from ._ray_groups import GroupHold
        from .eventloop import run_in_own_thread
        from .ray import _ensure_init, _import_ray

        ray = self._ray = _import_ray()
        first = next(iter(self.placements.values()))
        if not ray.is_initialized():
            await run_in_own_thread(lambda: _ensure_init(ray, first.address, first.namespace),
                                    "streamrl-ray-init")
        send_local_modules(ray)  # pipeline files loaded by path: by value
        self.groups = GroupHold()
        groups = self._group_of
        for step in ("acquire", "ready"):  # placement groups the graph owns: all made, placed
            for seg, p in self.placements.items():
                try:
                    if step == "acquire":
                        groups[seg] = self.groups.acquire(ray, p.placement_group)
                    else:
                        await self.groups.ready(ray, p.placement_group, p.start_timeout)
                except Exception as exc:
                    raise OperatorError(seg, "start", exc) from exc
        for seg in self.parts:  # all created before any is awaited
            self.actors[seg] = self._create(seg)
        for seg, actor in self.actors.items():
            self.nodes[seg] = await self._ready(seg, actor)
        for seg, actor in self.actors.items():
            await actor.wire.remote({e: self.actors[s] for e, s in self.wiring[seg].items()})
        self.started.set()

    def _create(self, seg: str) -> Any:
        """Start the actor of ``seg`` (not awaited), named after the graph, the segment, the
        run and the restarts so far."""
        name = f"streamrl:{self.graph_name}:{seg}:{self._run}"
        if self.restarts[seg]:
            name += f":restart{self.restarts[seg]}"
        try:
            opts = self.placements[seg].actor_options_for(name, self._group_of[seg])
        except Exception as exc:  # e.g. no alive node of that name
            raise OperatorError(seg, "start", exc) from exc
        self.names[seg] = name
        return _segment_class(self._ray).options(**opts).remote(self.parts[seg])

    async def _ready(self, seg: str, actor: Any) -> tuple[str, str, int]:
        """Where ``actor`` runs, once it has started (an :class:`OperatorError` if it cannot)."""
        from .._utils.ray_items import unwrap_error

        p = self.placements[seg]
        try:
            with anyio.move_on_after(p.start_timeout) as scope:
                node = await actor.ready.remote()
        except self._ray.exceptions.RayError as exc:
            err = unwrap_error(self._ray, exc)
            raise OperatorError(seg, "start", err) from err
        if scope.cancelled_caught:
            raise OperatorError(seg, "start", p.not_started(seg))
        return cast("tuple[str, str, int]", node)

    async def run(self) -> None:
        """Run every segment to its end; raise the first failure (its cause, when a failure
        was only a consequence of a lost peer), as an :class:`OperatorError`."""
        from .errors import PeerLostError

        tasks = {asyncio.ensure_future(self._run_one(seg)): seg for seg in self.actors}
        try:
            pending = set(tasks)
            first: OperatorError | None = None
            first_seg = ""
            deadline = None
            while pending:
                timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
                done, pending = await asyncio.wait(pending, timeout=timeout,
                                                   return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    exc = t.exception()
                    if exc is None:
                        continue
                    assert isinstance(exc, OperatorError)
                    if _cause_of(exc, PeerLostError) is None:
                        raise exc
                    if first is None:
                        first, first_seg = exc, tasks[t]
                if first is not None:
                    if deadline is None:
                        deadline = time.monotonic() + _PEER_LOST_GRACE
                    elif time.monotonic() >= deadline:
                        break  # the grace is over: report below
            if first is not None:
                raise await self._cause(self._lost_peer(first_seg, first), first)
        finally:
            for t in tasks:
                t.cancel()

    async def collect_stats(self, timeout: float = 1.0) -> None:
        """The stats of the segments that did not end (the run was cancelled or failed), from
        their actors that still answer within ``timeout`` seconds."""
        missing = {s: a for s, a in self.actors.items() if s not in self.stats}
        if not missing:
            return
        with anyio.move_on_after(timeout):
            for seg, actor in missing.items():
                try:
                    stats = await actor.stats.remote()
                except Exception:  # gone: its stats with it
                    continue
                if stats is not None:
                    self.stats[seg] = stats

    async def blocked(self) -> list[tuple[float, list[Any]]] | None:
        """:meth:`SegmentActor.blocked` of every actor (None if one computes, has not
        started, or does not answer within 2 s). An actor that says it has ended counts only
        once its run's result has reached the driver: until then the end of its streams may
        still be on its way (a slow hop under load is not a deadlock)."""
        try:
            with anyio.fail_after(2.0):
                found = {seg: await a.blocked.remote() for seg, a in list(self.actors.items())}
        except Exception:
            return None
        if any(f is None or (f[0] == math.inf and seg not in self.stats)
               for seg, f in found.items()):
            return None
        return list(found.values())

    async def _run_one(self, seg: str) -> None:
        from .._utils.ray_items import actor_died, unwrap_error

        ray = self._ray
        p = self.placements[seg]
        restartable = p.on_failure == "restart"
        while True:
            try:
                stats, states = await self.actors[seg].run.remote(
                    p.sync_state, restartable, self.snapshot(seg))
                break
            except ray.exceptions.RayTaskError as exc:
                err = unwrap_error(ray, exc)
                self.failed.set()
                if not isinstance(err, OperatorError):
                    err = OperatorError(seg, "step", err)
                raise err from err.__cause__  # (not Ray's error: `from None` lost the cause)
            except ray.exceptions.RayError as exc:  # the actor died: name it and its node
                died = actor_died(self.names[seg], self.nodes.get(seg), exc)
                if not self._restartable(seg):
                    self.failed.set()
                    if self.restarts[seg]:
                        died = RuntimeError(f"{died} (after {self.restarts[seg]} restarts; "
                                            f"earlier deaths: {'; '.join(self.deaths[seg])})")
                    raise OperatorError(seg, "step", died) from died
                self.deaths[seg].append(str(died))
                await self._restart(seg)
        self.stats[seg] = stats
        for name, state in states.items():
            self.ops[name].load_state_dict(state)

    async def _restart(self, seg: str) -> None:
        """Replace the dead actor of ``seg`` (see the class doc)."""
        self.restarts[seg] += 1
        try:
            self._ray.kill(self.actors[seg], no_restart=True)
        except Exception:  # gone already
            pass
        actor = self._create(seg)
        self.actors[seg] = actor  # killed with the others should the start fail
        try:
            self.nodes[seg] = await self._ready(seg, actor)
            await actor.wire.remote({})  # a restartable segment has no actor peers
            for edge, s in self.driver_peers.items():  # what the dead actor had been given
                for version, value in self._taken.get(edge, ()) if s == seg else ():
                    await actor.set_latest.remote(edge, version, value)
        except BaseException:
            self.failed.set()
            raise
        finally:
            self._replaced.set()  # the driver's ends retry (or see the failure)
            self._replaced = asyncio.Event()

    def kill(self) -> None:
        """Kill every actor (idempotent); Ray frees their names once they are gone."""
        ray, actors = self._ray, list(self.actors.values())
        self.actors = {}
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        if self.groups is not None:  # after the actors: they are in the groups
            self.groups.release()


def _cause_of(exc: BaseException | None, cls: type) -> BaseException | None:
    """The first exception of class ``cls`` along ``exc``'s ``__cause__`` chain (``exc``
    included), or None."""
    while exc is not None and not isinstance(exc, cls):
        exc = exc.__cause__
    return exc


class Coordinator(Awaits, Operator):
    """The driver's operator of a split graph: its ``open`` starts the segment actors, its
    ``step`` waits until they have all ended (or raises the first failure, naming the
    operator). The runner kills them once the whole run is over (:meth:`Deployment.kill`):
    until then the driver's edge ends may still talk to them."""

    inputs = ()
    outputs = ()
    #: its failures are other operators' errors, raised as they are
    forwards_errors = True

    def __init__(self, deployment: Deployment):
        self.deployment = deployment

    async def open(self) -> None:  # type: ignore[override]
        await self.deployment.start()

    async def step(self, inputs: dict[str, Any]) -> Any:  # type: ignore[override]
        from .runner import _COORDINATOR_WAIT

        # waiting for the actors: the watchdog asks them whether they are blocked too
        await self._waiting("get", _COORDINATOR_WAIT, self.deployment.run())
        return END

    def __repr__(self) -> str:
        return f"Coordinator({list(self.deployment.parts)})"
