"""Running a collecting graph in a background thread (``collector.start()``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any


class BackgroundRun:
    """Drains ``stream`` (the replay sink's write counts) in a daemon thread until it ends,
    ``limit`` items arrived, or :meth:`stop` is called. An error is kept for the owner.
    ``batches`` counts the batches written so far: a count arrives after its write."""

    def __init__(self, stream: Iterator[Any], limit: int | None):
        self._stream = stream
        self._limit = limit
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="streamrl-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for _ in self._stream:
                self.batches += 1
                if self._stop.is_set() or (self._limit is not None and self.batches >= self._limit):
                    break
        except BaseException as exc:  # kept and re-raised by the owner's shutdown
            self.error = exc
        finally:
            self._stream.close()  # cancels the graph if it still runs

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the run to end after the batch in flight; True once the thread has ended."""
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()
