"""Placements: where an operator's hooks run (event loop, worker thread, worker process).

A placement is a small strategy object: ``host(op, name)`` returns a :class:`Host` that runs
the operator's hooks, and the runners talk only to that host (``start``, ``call``,
``call_sync``, ``aclose``; ``submit``/``collect`` for a :class:`PipelinedHost`). The inline and
thread hosts live here; :mod:`.process` and :mod:`.ray` hold the two pipelined ones.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import anyio

from .._warnings import StreamRLWarning
from .eventloop import resolve, running_loop
from .operator import Operator, async_hooks

__all__ = ["Host", "Inline", "PipelinedHost", "Placement", "Thread", "resolve_placement"]


class _End:
    """Returned by a host when a hook raised ``StopIteration`` (end of stream)."""

    def __repr__(self) -> str:
        return "END"

    def __reduce__(self) -> str:
        return "END"  # unpickles to this module's singleton


END = _End()
NOARG = object()


def call_hook(op: Operator, hook: str, arg: Any) -> Any:
    """Run one hook synchronously; ``StopIteration`` becomes ``END``."""
    try:
        fn = getattr(op, hook)
        return fn() if arg is NOARG else fn(arg)
    except StopIteration:
        return END


class Host(ABC):
    """Runs one operator's hooks for the runner: the interface every placement's host implements.

    The concurrent runner calls :meth:`start` once, then :meth:`call` for each hook (``open``,
    ``step``, ``finish``; hooks that raise ``StopIteration`` return ``END``), then
    :meth:`aclose` once, also after errors and cancellation. Two attributes tell it more:
    ``direct`` hosts run plain functions on the event loop, so the runner calls
    :meth:`call_sync` without a coroutine; a :class:`PipelinedHost` accepts several calls in
    flight. The deterministic stepper uses only :meth:`call_sync`.
    """

    #: the placement's name, as reported in stats
    placement: str = "inline"
    #: :meth:`call_sync` may run a hook on the event loop (cheap, and blocks the loop meanwhile)
    direct: bool = False

    def __init__(self, op: Operator, name: str):
        self.op = op
        self.name = name

    async def start(self) -> None:  # noqa: B027 (a host on the event loop needs no start)
        """Make the operator ready (start a thread or process); nothing to do by default."""

    @abstractmethod
    async def call(self, hook: str, arg: Any = NOARG) -> tuple[Any, float]:
        """Run ``hook`` and return ``(result or END, seconds spent in the hook)``."""

    def call_sync(self, hook: str, arg: Any = NOARG) -> Any:
        """Run ``hook`` from synchronous code in this thread (the result or END)."""
        return call_hook(self.op, hook, arg)

    def watch(self, report: Callable[[str, BaseException], None]) -> None:  # noqa: B027
        """Called by the runner once the host has started: a host that can fail outside any
        hook call (a worker process that dies between calls) calls ``report(hook, error)``
        on the event loop's thread, naming the hook it was waiting to run. Nothing to watch by
        default."""

    @abstractmethod
    async def aclose(self, *, fast: bool = False) -> None:
        """Close the operator and release the host's resources; idempotent. ``fast`` is set on
        cancellation and errors: do not wait long for a busy operator."""


class PipelinedHost(Host):
    """A host that takes up to ``max_in_flight`` hook calls before answering the first (a worker
    process or a Ray actor, where a round trip costs more than the hook): :meth:`submit` sends
    a call, :meth:`collect` waits for its answer, in the order they were sent."""

    #: calls the runner may keep outstanding; 1 makes :meth:`call` the only mode used
    max_in_flight: int = 1

    @abstractmethod
    def submit(self, hook: str, arg: Any = NOARG) -> Any:
        """Send a hook call without waiting; returns a handle for :meth:`collect`."""

    @abstractmethod
    async def collect(self, handle: Any) -> tuple[Any, float]:
        """Wait for the answer to a :meth:`submit`; returns ``(result or END, seconds)``."""

    async def call(self, hook: str, arg: Any = NOARG) -> tuple[Any, float]:
        return await self.collect(self.submit(hook, arg))

    def call_sync(self, hook: str, arg: Any = NOARG) -> Any:
        raise RuntimeError(
            f"operator {self.name!r} runs remotely ({self.placement}); deterministic mode runs "
            "every operator inline"
        )


class _InlineHost(Host):
    placement = "inline"

    def __init__(self, op: Operator, name: str):
        super().__init__(op, name)
        self._async = set(async_hooks(op))
        self.direct = not self._async
        self._closed = False

    async def call(self, hook: str, arg: Any = NOARG) -> tuple[Any, float]:
        t0 = time.perf_counter()
        if hook in self._async:
            try:
                fn = getattr(self.op, hook)
                result = await (fn() if arg is NOARG else fn(arg))
            except StopIteration:
                result = END
        else:
            result = call_hook(self.op, hook, arg)
        return result, time.perf_counter() - t0

    async def aclose(self, *, fast: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self.op.close()


class _ThreadHost(Host):
    """A dedicated worker thread per operator, fed by a queue (cheaper than ``to_thread`` per
    call, and the thread is joined when the operator closes)."""

    placement = "thread"

    def __init__(self, op: Operator, name: str, limiter: anyio.CapacityLimiter | None,
                 close_timeout: float):
        super().__init__(op, name)
        if async_hooks(op):
            raise TypeError(
                f"operator {name!r} has async hooks {async_hooks(op)}; only placement='inline' "
                "can await them"
            )
        self._limiter = limiter
        self._close_timeout = close_timeout
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def start(self) -> None:
        self._loop = running_loop(f"operator {self.name!r} (placement='thread')")
        self._thread = threading.Thread(
            target=self._serve, args=(self._loop,), name=f"streamrl-op-{self.name}", daemon=True
        )
        self._thread.start()

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            hook, arg, fut = job
            t0 = time.perf_counter()
            try:
                r, e = (call_hook(self.op, hook, arg), time.perf_counter() - t0), None
            except BaseException as exc:
                r, e = None, exc
            try:
                loop.call_soon_threadsafe(resolve, fut, r, e)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    async def _submit(self, hook: str, arg: Any) -> tuple[Any, float]:
        if self._loop is None:
            raise RuntimeError(f"operator {self.name!r}: its worker thread has not started")
        fut = self._loop.create_future()
        self._jobs.put((hook, arg, fut))
        return await fut

    async def call(self, hook: str, arg: Any = NOARG) -> tuple[Any, float]:
        if self._limiter is None:
            return await self._submit(hook, arg)
        async with self._limiter:
            return await self._submit(hook, arg)

    async def aclose(self, *, fast: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:  # never started
            self.op.close()
            return
        fut = loop.create_future()
        self._jobs.put(("close", NOARG, fut))
        self._jobs.put(None)
        timeout = 1.0 if fast else self._close_timeout
        error = None
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(timeout):
                try:
                    await fut
                except Exception as exc:
                    error = exc
        with anyio.CancelScope(shield=True):  # the thread is exiting: let it, without blocking
            for _ in range(1000):
                if not thread.is_alive():
                    break
                await anyio.sleep(0.001)
        if thread.is_alive():
            warnings.warn(
                f"operator {self.name!r}: its worker thread is still busy after {timeout} s and "
                "was abandoned (a hook that never returns?)",
                StreamRLWarning,
                stacklevel=2,
            )
        if error is not None:
            raise error


class Placement:
    """Where an operator runs. Subclass and implement :meth:`host` to add a placement."""

    name = "placement"
    #: chains of operators with this placement can be fused into one task
    fusable = False

    def host(self, op: Operator, name: str) -> Host:
        """A host that runs ``op``'s hooks."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Inline(Placement):
    """Run the hooks on the event loop: no hop cost, but a slow hook stalls every operator.

    Examples:
        >>> from streamrl.graph import Graph, Inline, Map
        >>> g = Graph(); _ = g.add(Map(abs), placement=Inline())
    """

    name = "inline"
    fusable = True

    def host(self, op: Operator, name: str) -> Host:
        return _InlineHost(op, name)


class Thread(Placement):
    """Run the hooks in a dedicated worker thread (torch kernels release the GIL).

    ``limiter`` (an ``anyio.CapacityLimiter``, shareable between operators) bounds how many
    thread-placed operators execute a hook at the same time. ``close_timeout`` is how long
    closing waits for a busy hook before abandoning the thread.

    Examples:
        >>> import anyio
        >>> from streamrl.graph import Thread
        >>> Thread(limiter=anyio.CapacityLimiter(2))
        Thread(limiter=2)
    """

    name = "thread"

    def __init__(self, limiter: anyio.CapacityLimiter | None = None, close_timeout: float = 5.0):
        if limiter is not None and not isinstance(limiter, anyio.CapacityLimiter):
            raise TypeError(f"limiter must be an anyio.CapacityLimiter, found {type(limiter).__name__}")
        self.limiter = limiter
        self.close_timeout = close_timeout

    def host(self, op: Operator, name: str) -> Host:
        return _ThreadHost(op, name, self.limiter, self.close_timeout)

    def __repr__(self) -> str:
        lim = "" if self.limiter is None else f"limiter={self.limiter.total_tokens:g}"
        return f"Thread({lim})"


def resolve_placement(placement: str | Placement) -> Placement:
    """Turn ``"inline"``, ``"thread"``, ``"process"`` or ``"ray"`` (or a Placement) into a
    Placement."""
    if isinstance(placement, Placement):
        return placement
    if placement == "inline":
        return Inline()
    if placement == "thread":
        return Thread()
    if placement == "process":
        from .process import Process

        return Process()
    if placement == "ray":
        from .ray import Ray

        return Ray()
    raise ValueError(
        f"placement must be 'inline', 'thread', 'process', 'ray' or a Placement, found "
        f"{placement!r}"
    )
