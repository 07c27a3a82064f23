"""Running a graph from synchronous code: the event loop lives in a background thread behind
an anyio blocking portal."""

from __future__ import annotations

import concurrent.futures
import functools
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.from_thread import start_blocking_portal

from .channels import FifoChannel
from .runner import Runner

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup
if TYPE_CHECKING:
    from .graph import Graph

_DONE = object()


def _wait(fut: concurrent.futures.Future) -> Any:
    """``fut``'s result, polled every 0.1 s so that a Ctrl-C is seen promptly (the kernel may
    hand the signal to another thread: the main thread sees it at its next poll); ``fut`` is
    cancelled when the wait is interrupted (for a graph's run: cancels the graph, and leaving
    the portal waits for its shutdown)."""
    try:
        while True:
            try:
                return fut.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                continue
    except BaseException:
        fut.cancel()  # (a no-op on a future that has finished)
        raise


def run_sync(graph: Graph, **kwargs: Any) -> None:
    """Run ``graph`` to completion from synchronous code (see :meth:`Graph.run_sync`)."""
    if kwargs.get("deterministic"):
        graph.run_deterministic(max_steps=kwargs.get("max_steps"))
        return
    with start_blocking_portal() as portal:
        _wait(portal.start_task_soon(functools.partial(graph.run, **kwargs)))


async def _get(tap: FifoChannel) -> Any:
    try:
        return await tap.get()
    except anyio.EndOfStream:
        return _DONE


def iterate(graph: Graph, name: str, port: str, *, capacity: int = 2,
            **kwargs: Any) -> Iterator[Any]:
    """Yield the items of ``name.port`` while the graph runs in a background event loop."""
    if kwargs.pop("deterministic", False):
        raise ValueError("iterate() runs the concurrent runner; deterministic=True is not supported")
    tap = FifoChannel(capacity, name=f"{name}.{port}->(iterate)", tap=True)
    runner = Runner(graph, taps={(name, port): tap}, **kwargs)
    graph._last_run = runner
    return _iterate(runner, tap)


def _iterate(runner: Runner, tap: FifoChannel) -> Iterator[Any]:
    with start_blocking_portal() as portal:
        fut = portal.start_task_soon(runner.run)
        try:
            while True:
                item = _wait(portal.start_task_soon(_get, tap))
                if item is _DONE:
                    break
                yield item
            _wait(fut)
        finally:
            if not fut.done():
                fut.cancel()  # the caller stopped iterating: cancel the graph


@asynccontextmanager
async def stream(graph: Graph, name: str, port: str, *, capacity: int = 2,
                 **kwargs: Any) -> AsyncIterator[AsyncIterator[Any]]:
    """See :meth:`Graph.stream`."""
    if kwargs.pop("deterministic", False):
        raise ValueError("stream() runs the concurrent runner; deterministic=True is not supported")
    tap = FifoChannel(capacity, name=f"{name}.{port}->(stream)", tap=True)
    runner = Runner(graph, taps={(name, port): tap}, **kwargs)
    graph._last_run = runner
    errors: list[BaseException] = []

    async def run() -> None:
        try:
            await runner.run()
        except Exception as exc:  # re-raised by the reader, not as an ExceptionGroup
            errors.append(exc)

    async def items() -> AsyncIterator[Any]:
        while True:
            try:
                item = await tap.get()
            except anyio.EndOfStream:
                break
            yield item
        if errors:
            raise errors.pop()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield items()
            finally:
                tap.close_receive()
                tg.cancel_scope.cancel()  # the reader is done: stop the graph
    except BaseExceptionGroup as group:
        # the body raised (e.g. the operator error re-raised by items()): raise it unwrapped
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
    if errors:
        raise errors.pop()
