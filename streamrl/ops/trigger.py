"""Trigger: a source that emits one token each time synchronous code asks for one."""

from __future__ import annotations

import queue
from typing import Any

from streamrl.graph import Operator

__all__ = ["Trigger"]

_STOP = object()


class Trigger(Operator):
    """Lets code outside a running graph pace it: every :meth:`pull` emits one token.

    Connected to gated operators (e.g. ``Rollout(..., gated=True)``), it turns a free-running
    topology into a lockstep one: nothing is produced until it is asked for. Place it on a
    thread: its step waits (briefly, so cancellation stays prompt) for a token.
    :meth:`stop` ends its stream, and with it the graph's.
    """

    inputs = ()
    state_keys = ("emitted",)

    def __init__(self, poll_s: float = 0.05):
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.poll_s = poll_s
        self.emitted = 0

    def pull(self, n: int = 1) -> None:
        """Ask for ``n`` more tokens (thread-safe)."""
        for _ in range(n):
            self._queue.put(self.emitted)

    def stop(self) -> None:
        """End the stream once the tokens already asked for are emitted (thread-safe)."""
        self._queue.put(_STOP)

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        try:
            token = self._queue.get(timeout=self.poll_s)
        except queue.Empty:
            return None
        if token is _STOP:
            raise StopIteration
        self.emitted += 1
        return {"out": token}
