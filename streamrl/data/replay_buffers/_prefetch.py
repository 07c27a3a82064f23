"""A background thread that keeps ``depth`` sampled batches ready."""

from __future__ import annotations

import queue
import threading


class _Prefetcher:
    """Call ``fn(stop)`` in a daemon thread and queue up to ``depth`` results (or its exception).

    ``stop`` is a ``threading.Event`` set by :meth:`close`; ``fn`` may watch it while it waits
    and return early. ``on_close`` is called after it is set (e.g. to wake such a wait).
    """

    def __init__(self, fn, depth: int, on_close=None) -> None:
        self._fn = fn
        self._on_close = on_close
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamrl-rb-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = (True, self._fn(self._stop))
            except BaseException as err:  # handed to the consumer, which re-raises it
                item = (False, err)
            if self._stop.is_set():
                return
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
        if self._on_close is not None:
            self._on_close()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
