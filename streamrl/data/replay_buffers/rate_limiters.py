"""Reverb-style rate limiters: when may a writer insert, when may a reader sample.

A limiter counts inserted and sampled items. Before inserting ``n`` items a writer acquires
``n`` insert permits; before sampling ``n`` items a reader acquires ``n`` sample permits.
Acquiring either blocks (threads, with a timeout), awaits (async code), or fails at once
(``try_*``). A permit is recorded when granted. Thread and async waiters wake each other:
the state is guarded by one ``threading.Condition``, and an async waiter waits in a worker
thread (``anyio.to_thread.run_sync``) that a cancellation releases.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import anyio
import anyio.to_thread

from streamrl.data.replay_buffers._state import Commit, check_dict, int_entry

__all__ = ["MinSize", "RateLimiter", "SampleToInsertRatio"]


def _count(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of items must be an int >= 0, found {n!r}")
    return n


class _Ticket(threading.Event):
    """A wait that can be called off (``set()``); ``granted`` is written under the lock."""

    granted = False


class RateLimiter:
    """Base class: subclasses define :meth:`can_insert` and :meth:`can_sample`.

    Both blocking and async acquisition are offered:

    - ``insert(n, timeout=None)`` / ``sample(n, timeout=None)`` block the thread and raise
      ``TimeoutError`` when ``timeout`` seconds pass without any insert or sample being
      recorded meanwhile (a slow writer that keeps inserting, e.g. towards a large
      ``min_size_to_sample``, is not a stalled one);
    - ``await acquire_insert(n)`` / ``await acquire_sample(n)`` wait without blocking the event
      loop (the graph's rate-limited edge uses these); cancelling releases the wait and records
      nothing;
    - ``try_insert(n)`` / ``try_sample(n)`` return ``False`` instead of waiting.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.inserts = 0
        self.samples = 0

    # -- policy -----------------------------------------------------------------------------
    def can_insert(self, n: int = 1) -> bool:
        """Whether ``n`` items may be inserted now."""
        raise NotImplementedError

    def can_sample(self, n: int = 1) -> bool:
        """Whether ``n`` items may be sampled now."""
        raise NotImplementedError

    def _check_request(self, kind: str, n: int) -> None:
        """Raise ``ValueError`` for a request that could never be granted."""

    # -- recording --------------------------------------------------------------------------
    def _try(self, kind: str, n: int) -> bool:
        # Called with the condition held.
        if kind == "insert":
            if not self.can_insert(n):
                return False
            self.inserts += n
        else:
            if not self.can_sample(n):
                return False
            self.samples += n
        self._cond.notify_all()
        return True

    def _undo(self, kind: str, n: int) -> None:
        with self._cond:
            if kind == "insert":
                self.inserts -= n
            else:
                self.samples -= n
            self._cond.notify_all()

    def try_insert(self, n: int = 1) -> bool:
        """Record ``n`` inserts if allowed now; return whether they were recorded."""
        self._check_request("insert", _count(n))
        with self._cond:
            return self._try("insert", n)

    def try_sample(self, n: int = 1) -> bool:
        """Record ``n`` samples if allowed now; return whether they were recorded."""
        self._check_request("sample", _count(n))
        with self._cond:
            return self._try("sample", n)

    def _wait(self, kind: str, n: int, timeout: float | None, stop: _Ticket | None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            seen = (self.inserts, self.samples)
            while True:
                if stop is not None and stop.is_set():
                    return False
                if self._try(kind, n):
                    if stop is not None:
                        stop.granted = True  # under the lock: a canceller sees it
                    return True
                if deadline is None or timeout is None:
                    self._cond.wait()
                else:
                    if (self.inserts, self.samples) != seen:  # progress: wait afresh
                        seen = (self.inserts, self.samples)
                        deadline = time.monotonic() + timeout
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"{type(self).__name__}: {kind} of {n} not allowed within "
                            f"{timeout} s, and nothing inserted or sampled meanwhile "
                            f"({self._describe()})"
                        )
                    self._cond.wait(left)

    def insert(self, n: int = 1, timeout: float | None = None) -> None:
        """Block until ``n`` inserts are allowed, then record them."""
        self._check_request("insert", _count(n))
        self._wait("insert", n, timeout, None)

    def sample(self, n: int = 1, timeout: float | None = None) -> None:
        """Block until ``n`` samples are allowed, then record them."""
        self._check_request("sample", _count(n))
        self._wait("sample", n, timeout, None)

    async def _acquire(self, kind: str, n: int) -> None:
        self._check_request(kind, _count(n))
        with self._cond:
            if self._try(kind, n):
                return
        ticket = _Ticket()
        try:
            await anyio.to_thread.run_sync(
                self._wait, kind, n, None, ticket, abandon_on_cancel=True
            )
        except BaseException:
            # Cancelled (or failed) while waiting: stop the worker thread; if it was granted
            # the permit in the meantime, give it back.
            with self._cond:
                ticket.set()
                self._cond.notify_all()
                was_granted = ticket.granted
            if was_granted:
                self._undo(kind, n)
            raise

    async def acquire_insert(self, n: int = 1) -> None:
        """Wait (without blocking the event loop) until ``n`` inserts are allowed; record them."""
        await self._acquire("insert", n)

    async def acquire_sample(self, n: int = 1) -> None:
        """Wait (without blocking the event loop) until ``n`` samples are allowed; record them."""
        await self._acquire("sample", n)

    def wake_all(self) -> None:
        """Wake every waiter so it re-checks (e.g. after :meth:`load_state_dict`)."""
        with self._cond:
            self._cond.notify_all()

    def _describe(self) -> str:
        return f"inserts={self.inserts}, samples={self.samples}"

    # -- state ------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Counters and configuration."""
        with self._cond:
            return {
                "type": type(self).__name__,
                "inserts": self.inserts,
                "samples": self.samples,
                "config": self._config(),
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counters; type and configuration must match (``ValueError`` otherwise,
        and nothing changes)."""
        self._prepare_load(state)()

    def _prepare_load(self, state: dict[str, Any]) -> Commit:
        """Check :meth:`state_dict`'s output; return the commit (see ``_state``)."""
        where = "rate limiter state"
        if check_dict(state, where).get("type") != type(self).__name__ or (
            state.get("config") != self._config()
        ):
            raise ValueError(
                f"rate limiter state {state.get('type')}{state.get('config')} does not match "
                f"{type(self).__name__}{self._config()}"
            )
        inserts = int_entry(state, "inserts", where)
        samples = int_entry(state, "samples", where)

        def commit() -> None:
            with self._cond:
                self.inserts, self.samples = inserts, samples
                self._cond.notify_all()

        return commit

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe()})"

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_cond"]
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._cond = threading.Condition()


class MinSize(RateLimiter):
    """Block sampling until ``min_size`` items were inserted; inserts are never blocked.

    >>> lim = MinSize(2)
    >>> lim.try_sample(), lim.try_insert(2), lim.try_sample()
    (False, True, True)
    """

    def __init__(self, min_size: int) -> None:
        super().__init__()
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
            raise ValueError(f"min_size must be an int >= 1, found {min_size!r}")
        self.min_size = min_size

    def can_insert(self, n: int = 1) -> bool:
        """Always true."""
        return True

    def can_sample(self, n: int = 1) -> bool:
        """True once ``min_size`` items were inserted."""
        return self.inserts >= self.min_size

    def _config(self):
        return {"min_size": self.min_size}


class SampleToInsertRatio(RateLimiter):
    """Keep ``samples / inserts`` near ``samples_per_insert`` (Reverb's rate limiter).

    Let ``d = inserts * samples_per_insert - samples``, the sampling budget. Before
    ``min_size_to_sample`` inserts, inserts are free and sampling blocks. Afterwards, with
    ``c = min_size_to_sample * samples_per_insert``:

    - sampling ``n`` needs ``d - n >= c - error_buffer`` (readers may not run ahead),
    - inserting ``m`` needs ``d + m * samples_per_insert <= c + error_buffer`` (nor writers).

    **Deadlock check.** Some call must always be allowed. With reads of at most
    ``max_sample_batch`` (``n``) and writes of at most ``max_insert_batch`` (``m``) items, a
    state where neither is allowed exists iff ``max_diff - min_diff < n + m *
    samples_per_insert``, or, before sampling may start, if a write crossing
    ``min_size_to_sample`` cannot fit (``(m - 1) * samples_per_insert > max_diff - c``). Such a
    configuration is rejected with ``ValueError`` when built; a later request larger than
    declared is checked the same way at call time. (Reverb asks for
    ``error_buffer >= max(1, samples_per_insert)``, which implies this for batches of 1.)

    Args:
        samples_per_insert: target number of sampled items per inserted item (> 0).
        min_size_to_sample: inserts needed before the first sample (>= 1).
        error_buffer: allowed deviation of ``d`` around its target, in sampled items; a number
            or a ``(min_diff, max_diff)`` pair as in Reverb.
        max_sample_batch: largest ``n`` that :meth:`sample` will be asked for.
        max_insert_batch: largest ``n`` that :meth:`insert` will be asked for.

    >>> lim = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=1, error_buffer=4)
    >>> lim.try_insert(), lim.try_sample(4), lim.try_sample()
    (True, True, False)
    """

    def __init__(
        self,
        samples_per_insert: float,
        min_size_to_sample: int,
        error_buffer: float | tuple[float, float],
        *,
        max_sample_batch: int = 1,
        max_insert_batch: int = 1,
    ) -> None:
        super().__init__()
        spi = float(samples_per_insert)
        if not math.isfinite(spi) or spi <= 0:
            raise ValueError(f"samples_per_insert must be a finite number > 0, found {spi!r}")
        if (
            isinstance(min_size_to_sample, bool)
            or not isinstance(min_size_to_sample, int)
            or (min_size_to_sample < 1)
        ):
            raise ValueError(
                f"min_size_to_sample must be an int >= 1, found {min_size_to_sample!r}"
            )
        center = min_size_to_sample * spi
        if isinstance(error_buffer, (tuple, list)):
            if len(error_buffer) != 2:
                raise ValueError(
                    f"error_buffer pair must be (min_diff, max_diff), found {error_buffer!r}"
                )
            self.min_diff, self.max_diff = (float(x) for x in error_buffer)
        else:
            eb = float(error_buffer)
            if not math.isfinite(eb) or eb < 0:
                raise ValueError(
                    f"error_buffer must be a finite number >= 0, found {error_buffer!r}"
                )
            self.min_diff, self.max_diff = center - eb, center + eb
        self.samples_per_insert = spi
        self.min_size_to_sample = min_size_to_sample
        self.error_buffer = error_buffer
        self.max_sample_batch = _count(max_sample_batch)
        self.max_insert_batch = _count(max_insert_batch)
        self._check_window(self.max_sample_batch, self.max_insert_batch)

    def _check_window(self, sample_batch: int, insert_batch: int) -> None:
        need = sample_batch + insert_batch * self.samples_per_insert
        if self.max_diff - self.min_diff < need:
            raise ValueError(
                f"SampleToInsertRatio would deadlock: the error window max_diff - min_diff = "
                f"{self.max_diff - self.min_diff:g} must be >= sample batch ({sample_batch}) + "
                f"insert batch ({insert_batch}) * samples_per_insert ({self.samples_per_insert:g})"
                f" = {need:g}; widen error_buffer"
            )
        # Before the first sample is allowed only inserts can make progress: a write that
        # crosses min_size_to_sample must fit above the centre of the window.
        room = self.max_diff - self.min_size_to_sample * self.samples_per_insert
        if (insert_batch - 1) * self.samples_per_insert > room:
            raise ValueError(
                f"SampleToInsertRatio would deadlock: an insert of {insert_batch} items just "
                f"before min_size_to_sample={self.min_size_to_sample} overshoots max_diff "
                f"{self.max_diff:g}; widen error_buffer to >= "
                f"{(insert_batch - 1) * self.samples_per_insert:g}"
            )

    def _check_request(self, kind: str, n: int) -> None:
        if kind == "sample" and n > self.max_sample_batch:
            self._check_window(n, self.max_insert_batch)
        elif kind == "insert" and n > self.max_insert_batch:
            self._check_window(self.max_sample_batch, n)

    def _diff(self) -> float:
        return self.inserts * self.samples_per_insert - self.samples

    def can_insert(self, n: int = 1) -> bool:
        """Free before ``min_size_to_sample``; then ``d + n * spi <= max_diff``."""
        if self.inserts + n <= self.min_size_to_sample:
            return True
        return self._diff() + n * self.samples_per_insert <= self.max_diff

    def can_sample(self, n: int = 1) -> bool:
        """After ``min_size_to_sample`` inserts, while ``d - n >= min_diff``."""
        return self.inserts >= self.min_size_to_sample and self._diff() - n >= self.min_diff

    def _describe(self) -> str:
        return (
            f"inserts={self.inserts}, samples={self.samples}, samples_per_insert="
            f"{self.samples_per_insert:g}, window=[{self.min_diff:g}, {self.max_diff:g}]"
        )

    def _config(self):
        return {
            "samples_per_insert": self.samples_per_insert,
            "min_size_to_sample": self.min_size_to_sample,
            "min_diff": self.min_diff,
            "max_diff": self.max_diff,
        }
