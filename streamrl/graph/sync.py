"""Running a graph from synchronous code: the event loop lives in a background thread behind
an anyio blocking portal."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio
from anyio.from_thread import start_blocking_portal

from .channels import FifoChannel
from .runner import Runner

if TYPE_CHECKING:
    from .graph import Graph

_DONE = object()


def _wait(fut: concurrent.futures.Future) -> Any:
    # Poll with a timeout so that Ctrl-C in the main thread is seen promptly.
    while True:
        try:
            return fut.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            continue


def run_sync(graph: Graph, **kwargs: Any) -> None:
    """Run ``graph`` to completion from synchronous code (see :meth:`Graph.run_sync`)."""
    if kwargs.get("deterministic"):
        graph.run_deterministic(max_steps=kwargs.get("max_steps"))
        return
    with start_blocking_portal() as portal:
        fut = portal.start_task_soon(functools.partial(graph.run, **kwargs))
        try:
            _wait(fut)
        except BaseException:
            fut.cancel()  # cancels the graph; leaving the portal waits for its shutdown
            raise


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
    tap = FifoChannel(capacity, name=f"{name}.{port}->(iterate)")
    runner = Runner(graph, taps={(name, port): tap}, **kwargs)
    graph._last_run = runner
    return _iterate(runner, tap)


def _iterate(runner: Runner, tap: FifoChannel) -> Iterator[Any]:
    with start_blocking_portal() as portal:
        fut = portal.start_task_soon(runner.run)
        try:
            while True:
                item = portal.call(_get, tap)
                if item is _DONE:
                    break
                yield item
            _wait(fut)
        finally:
            if not fut.done():
                fut.cancel()  # the caller stopped iterating: cancel the graph
