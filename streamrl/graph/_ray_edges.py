"""The ends of an edge whose two operators run in different processes of a Ray application:
small inline operators with async hooks, added to each side's graph where the edge was.

A FIFO edge into a Ray actor is **pushed**: the producer's :class:`Outbox` calls the consumer
actor's ``push(edge, seq, items)``, and the call returns when the consumer's :class:`Inbox`
has taken the last of the items. An outbox keeps at most ``capacity`` items sent and not
taken (or waiting to be sent), so a producer runs at most ``capacity`` items ahead, as on a
local edge (plus the one item each proxy holds); with two calls out, the items that come
meanwhile go together in the next call. A FIFO edge into the driver is **pulled**: the driver's
:class:`Pull` keeps up to ``capacity`` ``pull(edge, seq)`` calls outstanding, and the
producer's :class:`Serve` answers each with its next item (the driver receives no calls).
Items carry sequence numbers, since Ray may run an async actor's calls out of order.

A latest-value edge sends each new value once (``set_latest``); a writer never waits, and a
value superseded before it was sent is skipped. Into the driver it is pulled as "the first
value newer than the one I have".

The ends find their peers through a *site* (the driver's deployment, or the actor's
:class:`Site`): ``await site.peer(edge)`` is the actor handle at the other end, and an actor's
site holds the receiving state of its edges (:class:`InboxState`, :class:`ServeState`,
:class:`LatestState`), fed by the actor's methods.

An actor placed with ``on_failure="restart"`` is replaced when it dies; the driver's ends of
its edges (the only ends it may have) then start over with the new actor: a pull end drops
its outstanding pulls and numbers from 0 again, a latest-value end sends a value whose call
failed again (the driver's site sends the new actor the last value taken, and the end of
stream if it was taken, before it runs). Each item the actor serves carries its operators'
state taken right after the item was made (a *snapshot*, attached by :class:`Snap`), which
the new actor loads.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, NamedTuple

from .._utils.ray_items import pack_item, packed_nbytes, unpack_item
from .errors import PeerLostError
from .operator import Operator
from .placement import END

#: the item that ends an edge's stream, sent after the producer's last item: the runner's own
#: end-of-stream marker, which pickles to the receiving process's singleton
EOS = END
#: what :func:`_settled` returns when the peer died and another actor took its place
RESTARTED = object()
#: a packed item at least this large goes into Ray's object store once for all the
#: latest-value edges that send it (:class:`Put`), rather than once per call
SHARE_BYTES = 100 * 1024


# ------------------------------------------------------------------------------------ receiving
class InboxState:
    """The receiving end of a pushed FIFO edge, on the consumer's event loop: a reorder buffer
    of at most ``capacity`` items; the last item of each ``push`` call holds the future that
    answers it."""

    def __init__(self, edge: str):
        self.edge = edge
        self.items: dict[int, tuple[Any, asyncio.Future[bool] | None]] = {}
        self.next = 0
        self.closed = False
        self.event = asyncio.Event()

    async def put(self, seq: int, items: list[Any]) -> bool:
        """Queue ``items``, numbered from ``seq``; answer when the last is taken (True) or the
        consumer left (False)."""
        if self.closed:
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        last = seq + len(items) - 1
        for i, item in enumerate(items, seq):
            self.items[i] = (item, fut if i == last else None)
        self.event.set()
        return await fut

    async def take(self) -> Any:
        """The next item in sequence order (``EOS`` after the last one)."""
        while self.next not in self.items:
            self.event.clear()
            await self.event.wait()
        item, fut = self.items.pop(self.next)
        self.next += 1
        if fut is not None and not fut.done():
            fut.set_result(True)
        return item

    def close(self) -> None:
        """The consumer stops reading: pending and future pushes answer False."""
        self.closed = True
        for _, fut in self.items.values():
            if fut is not None and not fut.done():
                fut.set_result(False)
        self.items.clear()


class ServeState:
    """The producer's end of a pulled FIFO edge: item ``k`` answers pull ``k``."""

    def __init__(self, edge: str):
        self.edge = edge
        self.items: dict[int, tuple[Any, asyncio.Future[bool] | None]] = {}
        self.waiters: dict[int, asyncio.Future[Any]] = {}
        self.next = 0
        self.closed = False

    async def offer(self, item: Any, *, wait: bool = True) -> bool:
        """Hand ``item`` to the next pull; with ``wait``, return once it was pulled (True) or
        the consumer left (False)."""
        if self.closed:
            return False
        seq, self.next = self.next, self.next + 1
        waiter = self.waiters.pop(seq, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(item)
            return True
        taken = asyncio.get_running_loop().create_future() if wait else None
        self.items[seq] = (item, taken)
        return True if taken is None else await taken

    async def pull(self, seq: int) -> Any:
        """Item ``seq``, once offered (``EOS`` once the stream or the consumer ended)."""
        if seq in self.items:
            item, taken = self.items.pop(seq)
            if taken is not None and not taken.done():
                taken.set_result(True)
            return item
        if self.closed:
            return EOS
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters[seq] = fut
        return await fut

    def close(self) -> None:
        self.closed = True
        for _, taken in self.items.values():
            if taken is not None and not taken.done():
                taken.set_result(False)
        for fut in self.waiters.values():
            if not fut.done():
                fut.set_result(EOS)
        self.items.clear()
        self.waiters.clear()


class LatestState:
    """The newest value of a latest-value edge and its version (0: none yet)."""

    def __init__(self, edge: str):
        self.edge = edge
        self.version = 0
        self.value: Any = None
        self.event = asyncio.Event()
        self.closed = False  # the reader left, or (on a producer) the stream ended
        self.ended = False  # the writer ended the stream: after the newest value, EOS

    def set(self, version: int, value: Any) -> None:
        if value is EOS:  # it does not replace a value not read yet
            self.ended = True
            self.event.set()
        elif version > self.version:
            self.version, self.value = version, value
            self.event.set()

    async def newer(self, than: int) -> tuple[int, Any]:
        """``(version, value)`` of the first value newer than ``than`` (``EOS`` at the end)."""
        while self.version <= than and not (self.closed or self.ended):
            self.event.clear()
            await self.event.wait()
        if self.version <= than:
            return self.version, EOS
        return self.version, self.value

    def close(self) -> None:
        self.closed = True
        self.event.set()


class Site:
    """An actor's side of its edges: peers by edge name (set by ``wire``) and the receiving
    state of each edge that ends here."""

    def __init__(self) -> None:
        self.peers: dict[str, Any] = {}
        self.wired = asyncio.Event()
        self.inboxes: dict[str, InboxState] = {}
        self.serves: dict[str, ServeState] = {}
        self.latest: dict[str, LatestState] = {}
        #: the states of the actor's operators, attached to each item served (restartable
        #: segments only)
        self.snapshot: Any = None
        #: items the restartable operator made so far (across its actors; see :class:`Snap`)
        self.made = 0

    async def peer(self, edge: str) -> Any:
        await self.wired.wait()
        return self.peers[edge]

    async def lost(self, exc: BaseException, edge: str, handle: Any) -> None:
        """An edge end here lost its peer: the segment fails with ``exc`` (the driver's
        coordinator then reports the cause rather than this consequence). The peers of an
        actor are never restarted (a restartable actor talks to the driver only)."""
        raise exc

    def sent(self, edge: str, version: int, value: Any) -> None:
        """Nothing to keep: see :meth:`lost`."""

    def inbox(self, edge: str) -> InboxState:
        if edge not in self.inboxes:
            self.inboxes[edge] = InboxState(edge)
        return self.inboxes[edge]

    def serve(self, edge: str) -> ServeState:
        if edge not in self.serves:
            self.serves[edge] = ServeState(edge)
        return self.serves[edge]

    def latest_state(self, edge: str) -> LatestState:
        if edge not in self.latest:
            self.latest[edge] = LatestState(edge)
        return self.latest[edge]

    def close_edge(self, edge: str) -> None:
        """The consumer of ``edge`` (on the driver) stopped reading."""
        for table in (self.serves, self.latest):
            if edge in table:
                table[edge].close()


# ------------------------------------------------------------------------------------ the proxies
class Awaits:
    """What the runner's watchdog reads of an operator that waits on another process inside
    a hook: while it waits, ``awaiting`` is ``(direction, what)`` and ``since`` when it
    started, and the operator counts as blocked on ``what`` rather than computing."""

    awaiting: tuple[str, str] | None = None
    since = 0.0

    async def _waiting(self, direction: str, on: str, awaitable: Any) -> Any:
        self.awaiting, self.since = (direction, on), time.perf_counter()
        try:
            return await awaitable
        finally:
            self.awaiting = None


class _Proxy(Awaits, Operator):
    """What every end shares: the edge it stands for and the site that finds its peer; it
    waits on the other process on its edge (:class:`Awaits`)."""

    #: an end that lost its peer may raise the error of the actor found dead, already named
    forwards_errors = True

    def __init__(self, edge: str, site: Any = None):
        self.edge = edge
        self.site = site  # set after unpickling on an actor

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["site"] = None  # a site belongs to one process
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.edge!r})"


async def _settled(ref: Any, proxy: _Proxy, handle: Any) -> Any:
    """The reply of a call on ``handle``, the peer of ``proxy``'s edge; a Ray error becomes
    :class:`~streamrl.graph.PeerLostError`, handed to the site, which raises it, or returns
    once another actor has taken the peer's place (then :data:`RESTARTED`)."""
    import ray

    try:
        return await ref
    except ray.exceptions.RayError as exc:
        lost = PeerLostError(f"the other end of edge {proxy.edge} failed or went away "
                             f"({type(exc).__name__})", proxy.edge)
        lost.__cause__ = exc
    await proxy.site.lost(lost, proxy.edge, handle)
    return RESTARTED


#: push calls an outbox keeps unanswered; the items that come meanwhile go in the next call
PUSH_CALLS = 2


class _Pushes:
    """The FIFO side of an :class:`Outbox`: items are sent in ``push`` calls, at most
    :data:`PUSH_CALLS` unanswered; items that come while that many are out wait and go
    together in the next call (one call then carries several items, which is what makes a
    fast producer's hop cheap). Items queued or sent and not yet taken: at most
    ``capacity``. A call is answered when its last item is taken."""

    def __init__(self, outbox: Outbox, capacity: int):
        self.outbox, self.capacity = outbox, capacity
        self.queue: list[Any] = []
        self.calls: deque[tuple[Any, int]] = deque()
        self.out = 0  # items in unanswered calls
        self.seq = 0
        self.changed = asyncio.Event()
        self.failure: BaseException | None = None
        self.gone = False  # the consumer left
        self.task = asyncio.get_running_loop().create_task(self._settle())

    def _send(self) -> None:
        if self.queue and len(self.calls) < PUSH_CALLS:
            items, self.queue = self.queue, []
            o = self.outbox
            self.calls.append((o._peer.push.remote(o.edge, self.seq, items), len(items)))
            self.seq += len(items)
            self.out += len(items)
            self.changed.set()

    async def _wait(self, done: Any) -> bool:
        """Wait until ``done()``; False once the consumer has left."""
        while not done() and not self.gone and self.failure is None:
            self.changed.clear()
            await self.changed.wait()
        if self.failure is not None:
            raise self.failure
        return not self.gone

    async def put(self, item: Any) -> bool:
        """Queue ``item`` (sent at once if a call may go out); return once the items ahead
        are within ``capacity``, False if the consumer has left."""
        if self.gone or self.failure is not None:
            return await self._wait(lambda: True)
        self.queue.append(item)
        self._send()
        return await self._wait(lambda: len(self.queue) + self.out <= self.capacity)

    async def finish(self) -> None:
        """Send the end of the stream after the last items; return once all were taken."""
        if await self.put(EOS):
            await self._wait(lambda: not self.queue and not self.calls)

    async def _settle(self) -> None:
        try:
            while True:
                if not self.calls:
                    self.changed.clear()
                    await self.changed.wait()
                    continue
                ref, n = self.calls[0]
                taken = await _settled(ref, self.outbox, self.outbox._peer)
                self.calls.popleft()
                self.out -= n
                if taken is not True:  # the consumer left
                    self.gone = True
                    self.changed.set()
                    return
                self._send()
                self.changed.set()
        except PeerLostError as exc:
            self.failure = exc
            self.changed.set()


class Outbox(_Proxy):
    """The producer's end of an edge into a Ray actor (a sink): pushes items, at most
    ``capacity`` sent and not taken (FIFO, see :class:`_Pushes`), or sends each new value
    (``latest``)."""

    outputs = ()

    def __init__(self, edge: str, capacity: int | None, site: Any = None):
        super().__init__(edge, site)
        self.capacity = capacity  # None: a latest-value edge
        self._peer: Any = None
        self._pushes: _Pushes | None = None
        self._seq = 0
        self._sender: asyncio.Task[None] | None = None
        self._newest: tuple[int, Any] | None = None
        self._wake: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._gone = False
        self._busy = False  # a set_latest call is unanswered

    async def open(self) -> None:  # type: ignore[override]
        self._peer = await self.site.peer(self.edge)
        if self.capacity is None:
            self._wake = asyncio.Event()
            self._sender = asyncio.get_running_loop().create_task(self._send_latest())
        else:
            self._pushes = _Pushes(self, self.capacity)

    async def step(self, inputs: dict[str, Any]) -> Any:  # type: ignore[override]
        x = inputs["in"]
        item = x.value if type(x) is Packed else pack_item(x)
        if self.capacity is None:
            return self._set_latest(item)
        assert self._pushes is not None
        room = await self._waiting("put", self.edge, self._pushes.put(item))
        return None if room else END  # the consumer left: so do we

    def _set_latest(self, item: Any) -> Any:
        if self._failure is not None:
            raise self._failure
        if self._gone:
            return END  # the reader left: so do we
        self._seq += 1
        self._newest = (self._seq, item)
        assert self._wake is not None
        self._wake.set()
        return None

    async def _send_latest(self) -> None:
        """Send the newest value, one call at a time (a value superseded meanwhile is skipped)."""
        assert self._wake is not None
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                newest, self._newest = self._newest, None
                if newest is None:
                    continue
                self._busy = True  # until answered: the end of stream must not overtake it
                peer = await self.site.peer(self.edge)
                taken = await _settled(peer.set_latest.remote(self.edge, *newest), self, peer)
                if taken is RESTARTED:  # send it to the new reader (unless superseded)
                    self._newest = self._newest or newest
                    self._wake.set()
                    continue
                if not taken:
                    self._gone = True
                    return
                self.site.sent(self.edge, *newest)  # for a reader that takes over
                self._busy = False
        except PeerLostError as exc:
            self._failure = exc

    async def finish(self) -> None:  # type: ignore[override]
        if self.capacity is None:  # the end of stream goes as the newest value
            await self._drain_latest()
            if self._gone:
                return
            assert self._wake is not None
            self._newest = (self._seq + 1, EOS)
            self._wake.set()
            await self._drain_latest()
            return
        assert self._pushes is not None
        await self._waiting("put", self.edge, self._pushes.finish())

    async def _drain_latest(self) -> None:
        while ((self._newest is not None or self._busy) and self._failure is None
               and not self._gone):
            await asyncio.sleep(0.001)
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        if self._pushes is not None:
            self._pushes.task.cancel()
        self._peer = None  # a handle kept would keep the actor's reference after the run


class Packed(NamedTuple):
    """An item packed once for several edge ends: the packed value, or a reference to it in
    Ray's object store (Ray passes an actor the value of a reference given as an argument)."""

    value: Any


class Put(_Proxy):
    """Before the ends of several latest-value edges from one port (weights to N actors):
    packs each item once and, when it is large (:data:`SHARE_BYTES`), puts it into Ray's
    object store once, so that each end sends the same reference."""

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        packed = pack_item(inputs["in"])
        if packed_nbytes(packed) >= SHARE_BYTES:
            import ray

            packed = ray.put(packed)
        return {"out": Packed(packed)}


class Inbox(_Proxy):
    """The consumer's end of a pushed FIFO edge (a source on the consumer's actor); the
    arrays of an item are copied out of Ray's object store unless ``copy=False``."""

    inputs = ()
    outputs = ("out",)

    def __init__(self, edge: str, site: Any = None, *, copy: bool = True):
        super().__init__(edge, site)
        self.copy = copy

    async def step(self, inputs: dict[str, Any]) -> Any:  # type: ignore[override]
        item = await self._waiting("get", self.edge, self.site.inbox(self.edge).take())
        if item is EOS:
            return END
        return {"out": unpack_item(item, copy=self.copy)}

    def close(self) -> None:
        if self.site is not None:
            self.site.inbox(self.edge).close()


class LatestIn(_Proxy):
    """The consumer's end of a latest-value edge into an actor: emits each newer value."""

    inputs = ()
    outputs = ("out",)

    def __init__(self, edge: str, site: Any = None):
        super().__init__(edge, site)
        self._version = 0

    async def step(self, inputs: dict[str, Any]) -> Any:  # type: ignore[override]
        newer = self.site.latest_state(self.edge).newer(self._version)
        self._version, value = await self._waiting("get", self.edge, newer)
        if value is EOS:
            return END
        return {"out": unpack_item(value)}

    def close(self) -> None:
        if self.site is not None:
            self.site.latest_state(self.edge).close()


class Snapped(NamedTuple):
    """An item of a restartable operator, its number and the snapshot taken right after it
    was made."""

    item: Any
    made: int
    snapshot: dict[str, Any]


class Snap(_Proxy):
    """Between a restartable operator's output port and the ends of its edges: numbers each
    item and attaches the actor's snapshot to it. Its only input is that port, so it is
    fused with the operator and runs right after the step that made the item, before the
    next one. An actor that takes over numbers on from its snapshot: the driver's ends drop
    the numbers they already have."""

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self.site.made += 1
        return {"out": Snapped(inputs["in"], self.site.made, self.site.snapshot())}


class Serve(_Proxy):
    """The producer's end (on an actor) of an edge into the driver, which pulls. Each item
    goes with its number and snapshot (0 and None unless :class:`Snap` attached them)."""

    outputs = ()

    def __init__(self, edge: str, latest: bool, site: Any = None):
        super().__init__(edge, site)
        self.latest = latest
        self._version = 0

    async def step(self, inputs: dict[str, Any]) -> Any:  # type: ignore[override]
        x, made, snapshot = inputs["in"], 0, None
        if type(x) is Snapped:
            x, made, snapshot = x
        item = (pack_item(x), made, snapshot)
        if self.latest:
            self._version += 1
            self.site.latest_state(self.edge).set(self._version, item)
            return None
        taken = await self._waiting("put", self.edge, self.site.serve(self.edge).offer(item))
        return None if taken else END

    async def finish(self) -> None:  # type: ignore[override]
        if self.latest:
            self.site.latest_state(self.edge).close()
        else:
            await self.site.serve(self.edge).offer(EOS, wait=False)


class Pull(_Proxy):
    """The driver's end of an edge from an actor (a source): keeps up to ``capacity`` pulls
    outstanding (FIFO), or asks for the first value newer than its own (``capacity=None``).
    An item numbered no higher than one received already is dropped (made again by an actor
    that took over); the snapshot that comes with a FIFO item is handed to the site
    (``record``)."""

    inputs = ()
    outputs = ("out",)

    def __init__(self, edge: str, capacity: int | None, site: Any = None, *,
                 copy: bool = True):
        super().__init__(edge, site)
        self.capacity = capacity
        self.copy = copy  # False: tensors read in place from Ray's object store
        self._peer: Any = None
        self._pending: deque[Any] = deque()
        self._seq = 0
        self._version = 0
        self._made = 0  # the highest item number received
        self._ended = False

    async def open(self) -> None:  # type: ignore[override]
        self._peer = await self.site.peer(self.edge)

    async def step(self, inputs: dict[str, Any]) -> Any:  # type: ignore[override]
        while True:
            value = await self._waiting("get", self.edge, self._next())
            if value is EOS:
                self._ended = True
                return END
            item, made, snapshot = value
            if snapshot is not None:
                if made <= self._made:
                    continue  # made again by an actor that took over: already received
                self._made = made
                if self.capacity is not None:
                    self.site.record(self.edge, made, snapshot)
            return {"out": unpack_item(item, copy=self.copy)}

    async def _next(self) -> Any:
        while True:
            peer = self._peer
            if self.capacity is None:
                reply = await _settled(peer.pull_latest.remote(self.edge, self._version), self,
                                       peer)
                if reply is not RESTARTED:
                    self._version, value = reply
                    break
            else:
                while len(self._pending) < self.capacity:
                    self._pending.append(peer.pull.remote(self.edge, self._seq))
                    self._seq += 1
                value = await _settled(self._pending.popleft(), self, peer)
                if value is not RESTARTED:
                    break
            # another actor took the producer's place: its pulls are numbered from 0 again
            self._pending.clear()
            self._seq = self._version = 0
            self._peer = await self.site.peer(self.edge)
        return value

    def close(self) -> None:
        self._pending.clear()
        if not self._ended and self._peer is not None:  # stopped reading: let the producer go
            try:
                self._peer.close_edge.remote(self.edge)
            except Exception:  # the actor is gone already
                pass
        self._peer = None  # a handle kept would keep the actor's reference after the run
