"""A background thread that keeps ``depth`` sampled batches ready."""

from __future__ import annotations

import queue
import threading


class _Prefetcher:
    """Call ``fn()`` in a daemon thread and queue up to ``depth`` results (or its exception)."""

    def __init__(self, fn, depth: int) -> None:
        self._fn = fn
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamrl-rb-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = (True, self._fn())
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = (False, err)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    def get(self):
        """The next batch; re-raises an error raised by ``fn``."""
        while True:
            try:
                ok, value = self._queue.get(timeout=0.05)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("prefetch thread stopped") from None
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the thread and drop queued batches; idempotent."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
