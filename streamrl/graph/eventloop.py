"""Everything in the graph runtime that depends on the event loop being asyncio.

anyio runs the graph, on its asyncio backend only: wake-ups wait on bare asyncio futures (cheaper
than anyio Events), worker threads and processes answer through ``call_soon_threadsafe`` and
``add_reader``, and Ray's object refs are asyncio awaitables. Under another backend (trio)
:func:`running_loop` raises at once, before anything starts, instead of failing halfway.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

__all__ = ["Waker", "resolve", "run_in_own_thread", "running_loop"]

T = TypeVar("T")


def running_loop(what: str) -> asyncio.AbstractEventLoop:
    """The running asyncio loop; a ``RuntimeError`` naming ``what`` when there is none (trio).

    >>> running_loop("graph.run()")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    RuntimeError: graph.run() needs anyio's asyncio backend, ... (trio is not supported): ...
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"{what} needs anyio's asyncio backend, the one streamrl.graph supports, and found "
            "no running asyncio event loop (trio is not supported): run it with anyio.run(fn) "
            'or anyio.run(fn, backend="asyncio"), or call graph.run_sync()'
        ) from None


class Waker:
    """A re-armable wake-up signal shared by one waiting task and the channels it watches.

    ``set`` wakes the task waiting now, if any; a ``set`` with nobody waiting is not kept, so
    a waiter checks its condition before each ``wait``.
    """

    __slots__ = ("_fut",)

    def __init__(self) -> None:
        self._fut: asyncio.Future[None] | None = None

    def set(self) -> None:
        fut = self._fut
        if fut is not None:
            self._fut = None
            if not fut.done():
                fut.set_result(None)

    async def wait(self) -> None:
        fut = self._fut
        if fut is None or fut.done():  # done: a cancelled earlier wait
            try:  # running_loop() inlined: this is every hop's path
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = running_loop("a graph channel")  # raises, saying why
            fut = self._fut = loop.create_future()
        await fut


def resolve(fut: asyncio.Future[T], result: T, error: BaseException | None) -> None:
    """Complete ``fut`` with ``error`` or ``result`` unless it is done (its waiter cancelled).
    Called on the loop's thread (``loop.call_soon_threadsafe(resolve, ...)``)."""
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


async def run_in_own_thread(fn: Callable[[], T], name: str) -> T:
    """Run a blocking ``fn()`` in a fresh thread that is joined before returning (so no thread
    outlives the call), without blocking the event loop. Shielded from cancellation."""
    loop = running_loop(f"thread {name!r}")
    fut: asyncio.Future[T] = loop.create_future()

    def target() -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:  # delivered to the awaiting task
            error = exc
        loop.call_soon_threadsafe(resolve, fut, result, error)

    t = threading.Thread(target=target, name=name, daemon=True)
    t.start()
    with anyio.CancelScope(shield=True):
        try:
            result = await fut
        finally:
            t.join()
    return result
