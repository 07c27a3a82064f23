"""Edges: bounded FIFO, latest-value, and rate-limited FIFO channels.

A channel has exactly one producer and one consumer (fan-out gives each consumer its own
channel; fan-in merges several channels on one input port). Channels live on one event loop and
are not thread-safe; operators in threads or processes talk to them through the runtime. They
wait on asyncio futures (see :mod:`streamrl.graph.eventloop`): use them under anyio's asyncio
backend.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, Protocol, runtime_checkable

import anyio
import torch
from tensordict import TensorDict, is_tensor_collection

from .eventloop import Waker

__all__ = ["FifoChannel", "LatestChannel", "RateLimitedChannel", "RateLimiter", "rows_of"]


def rows_of(item: Any) -> int:
    """Rows in a message: the numel of a TensorDict's batch dims, a tensor's first dim, else 1."""
    if type(item) is TensorDict:  # the hot path
        bs = item.batch_size
        return bs.numel() if bs else 1
    if is_tensor_collection(item):
        return item.batch_size.numel() if item.batch_dims else 1
    if isinstance(item, torch.Tensor):
        return item.shape[0] if item.ndim else 1
    return 1


@runtime_checkable
class RateLimiter(Protocol):
    """What a rate-limited edge needs: wait until ``n`` inserts / samples are allowed, then record.

    Both methods are awaited on the event loop. The replay-buffer layer provides real limiters
    (minimum size, samples-per-insert ratio).
    """

    async def acquire_insert(self, n: int) -> None:
        """Wait until ``n`` rows may be inserted, then record them."""

    async def acquire_sample(self, n: int) -> None:
        """Wait until ``n`` rows may be sampled, then record them."""


class _Channel(ABC):
    """What every channel kind shares: end-of-stream and close flags, counters, wake-ups.

    ``reader`` is the waker of the consumer's task, shared by all the channels it reads (a
    put on any of them wakes it); ``feedback`` marks the edge that closes a cycle and ``tap``
    an output read from outside the graph (``Graph.iterate``/``Graph.stream``).
    """

    kind = "fifo"
    capacity: int | None

    def __init__(self, name: str = "", *, reader: Waker | None = None, feedback: bool = False,
                 tap: bool = False) -> None:
        self.name = name
        self.reader = reader if reader is not None else Waker()
        self.writer = Waker()
        self.feedback = feedback
        self.tap = tap
        self.send_closed = False
        self.recv_closed = False
        self.puts = 0
        self.gets = 0
        self.max_occupancy = 0
        self.put_wait_s = 0.0
        self.get_wait_s = 0.0

    # -- reader side -------------------------------------------------------------------------
    def ended(self) -> bool:
        """The producer closed and nothing is left to read."""
        return self.send_closed and not self.ready()

    def close_receive(self) -> None:
        """The consumer stops reading: pending and future items are dropped."""
        self.recv_closed = True
        self.writer.set()

    async def get(self) -> Any:
        """Wait for an item; raise ``anyio.EndOfStream`` once the producer closed and it is empty."""
        t0 = None
        while not self.ready():
            if self.send_closed:
                raise anyio.EndOfStream
            t0 = t0 or time.perf_counter()
            await self.reader.wait()
        if t0 is not None:
            self.get_wait_s += time.perf_counter() - t0
        return await self.take_async()

    @property
    @abstractmethod
    def occupancy(self) -> int:
        """Items queued now."""

    @abstractmethod
    def ready(self) -> bool:
        """An item can be taken now."""

    @abstractmethod
    def full(self) -> bool:
        """A put would wait now."""

    @abstractmethod
    def take(self) -> Any:
        """Remove and return the next item (call only when :meth:`ready`)."""

    async def take_async(self) -> Any:
        """:meth:`take`, after whatever the channel must wait for (a rate limiter)."""
        return self.take()

    @abstractmethod
    def put_nowait(self, item: Any) -> bool:
        """Deliver without waiting; False if the consumer has gone."""

    @abstractmethod
    async def put(self, item: Any) -> bool:
        """Deliver, waiting while the channel is full; False if the consumer has gone."""

    # -- writer side -------------------------------------------------------------------------
    def close_send(self) -> None:
        """End of stream: the consumer sees it after the remaining items."""
        self.send_closed = True
        self.reader.set()


class FifoChannel(_Channel):
    """A bounded FIFO edge: ``put`` waits while ``capacity`` items are queued (backpressure).

    Examples:
        >>> import anyio
        >>> from streamrl.graph import FifoChannel
        >>> async def main():
        ...     ch = FifoChannel(2)
        ...     await ch.put(1); await ch.put(2); ch.close_send()
        ...     return [await ch.get(), await ch.get()], ch.ended()
        >>> anyio.run(main)
        ([1, 2], True)
    """

    capacity: int

    def __init__(self, capacity: int = 2, name: str = "", *, reader: Waker | None = None,
                 feedback: bool = False, tap: bool = False) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"FIFO capacity must be an int >= 1, found {capacity!r}")
        super().__init__(name, reader=reader, feedback=feedback, tap=tap)
        self.capacity = capacity
        self._q: deque[Any] = deque()

    @property
    def occupancy(self) -> int:
        """Items queued now."""
        return len(self._q)

    def ready(self) -> bool:
        return bool(self._q)

    def full(self) -> bool:
        return len(self._q) >= self.capacity

    def take(self) -> Any:
        item = self._q.popleft()
        self.gets += 1
        self.writer.set()
        return item

    def put_nowait(self, item: Any) -> bool:
        """Append without waiting (may exceed capacity); False if the consumer has gone."""
        if self.recv_closed:
            return False
        q = self._q
        q.append(item)
        self.puts += 1
        if len(q) > self.max_occupancy:
            self.max_occupancy = len(q)
        self.reader.set()
        return True

    async def put(self, item: Any) -> bool:
        """Append, waiting while the channel is full; False if the consumer has gone."""
        if len(self._q) >= self.capacity and not self.recv_closed:
            t0 = time.perf_counter()
            while len(self._q) >= self.capacity and not self.recv_closed:
                await self.writer.wait()
            self.put_wait_s += time.perf_counter() - t0
        return self.put_nowait(item)

    def close_receive(self) -> None:
        self._q.clear()
        super().close_receive()


class RateLimitedChannel(FifoChannel):
    """A FIFO edge gated by a :class:`RateLimiter`: each put awaits ``acquire_insert(rows)`` and
    each get awaits ``acquire_sample(rows)``, where ``rows`` is :func:`rows_of` the item."""

    kind = "limited"

    def __init__(self, limiter: RateLimiter, capacity: int = 2, name: str = "", *,
                 reader: Waker | None = None, feedback: bool = False) -> None:
        if not isinstance(limiter, RateLimiter):
            raise TypeError(
                "limiter must have async acquire_insert(n) and acquire_sample(n) methods, "
                f"found {type(limiter).__name__}"
            )
        super().__init__(capacity, name, reader=reader, feedback=feedback)
        self.limiter = limiter

    async def put(self, item: Any) -> bool:
        if self.recv_closed:
            return False
        t0 = time.perf_counter()
        await self.limiter.acquire_insert(rows_of(item))
        self.put_wait_s += time.perf_counter() - t0
        return await super().put(item)

    async def take_async(self) -> Any:
        t0 = time.perf_counter()
        await self.limiter.acquire_sample(rows_of(self._q[0]))
        self.get_wait_s += time.perf_counter() - t0
        return self.take()


class LatestChannel(_Channel):
    """A latest-value edge (e.g. weights): a put never waits and replaces the value; the reader
    sees only the newest value, once.

    Examples:
        >>> import anyio
        >>> from streamrl.graph import LatestChannel
        >>> async def main():
        ...     ch = LatestChannel()
        ...     await ch.put("v1"); await ch.put("v2")
        ...     return await ch.get(), ch.ready()
        >>> anyio.run(main)
        ('v2', False)
    """

    kind = "latest"
    capacity = None

    def __init__(self, name: str = "", *, reader: Waker | None = None,
                 feedback: bool = False) -> None:
        super().__init__(name, reader=reader, feedback=feedback)
        self._value: Any = None
        self._version = 0
        self._seen = 0

    @property
    def occupancy(self) -> int:
        """1 when a value not yet read is waiting, else 0."""
        return int(self._version > self._seen)

    def ready(self) -> bool:
        return self._version > self._seen

    def full(self) -> bool:
        return False

    def take(self) -> Any:
        self._seen = self._version
        self.gets += 1
        return self._value

    def put_nowait(self, item: Any) -> bool:
        if self.recv_closed:
            return False
        self._value = item
        self._version += 1
        self.puts += 1
        self.max_occupancy = 1
        self.reader.set()
        return True

    async def put(self, item: Any) -> bool:
        return self.put_nowait(item)

    def close_receive(self) -> None:
        self._value = None
        super().close_receive()
