"""LoggerMonitor: polls ``stats()`` of collectors and replay buffers and logs them on a schedule."""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Every", "LoggerMonitor"]

_ON_ERROR = ("warn", "raise", "ignore")
# cumulative counters turned into rates by default, and the rate's name
_RATES = {"frames": "frames_per_second", "batches": "batches_per_second",
          "write_count": "writes_per_second", "sample_count": "samples_per_second"}


class Every:
    """When a :class:`LoggerMonitor` logs a watched object: every ``interval`` seconds
    (:meth:`seconds`), or each time the stats counter ``key`` crosses a multiple of
    ``interval`` (:meth:`counter`; a jump over several multiples logs once).

    >>> Every.seconds(5)
    Every(kind='seconds', interval=5.0, key=None)
    >>> Every.counter("frames", 10_000).key
    'frames'
    """

    def __init__(self, kind: str, interval: float, key: str | None = None) -> None:
        if kind not in ("seconds", "counter"):
            raise ValueError(f"kind must be 'seconds' or 'counter', found {kind!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
                or not interval > 0 or not math.isfinite(interval):
            raise ValueError(f"interval must be a finite number > 0, found {interval!r}")
        if kind == "counter":
            if not isinstance(key, str) or not key:
                raise ValueError(f"a counter schedule needs the stats key it follows, found "
                                 f"{key!r}")
            if not isinstance(interval, int):
                raise ValueError(f"a counter interval must be an int, found {interval!r}")
        elif key is not None:
            raise ValueError("a seconds schedule takes no key")
        self.kind = kind
        self.interval = float(interval) if kind == "seconds" else interval
        self.key = key

    @classmethod
    def seconds(cls, interval: float) -> Every:
        """Log every ``interval`` seconds of wall-clock time."""
        return cls("seconds", interval)

    @classmethod
    def counter(cls, key: str, interval: int) -> Every:
        """Log when the stats entry ``key`` crosses a multiple of ``interval``."""
        return cls("counter", interval, key)

    def __repr__(self) -> str:
        return f"Every(kind={self.kind!r}, interval={self.interval!r}, key={self.key!r})"


@dataclass
class _Watch:
    name: str
    stats: Callable[[], Mapping[str, Any]]
    schedule: Every | None
    step_key: str | None
    rate_keys: tuple[str, ...] | None
    log_on_start: bool
    log_on_close: bool
    started: bool = False
    last_time: float | None = None  # the previous poll (rates are per poll interval)
    last_values: dict[str, float] = field(default_factory=dict)
    last_log_time: float = 0.0
    last_bucket: int | None = None
    failing: bool = False


def _scalars(stats: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in stats.items():
        if isinstance(value, (bool, int, float)):
            out[str(key)] = float(value)
        elif hasattr(value, "numel") and value.numel() == 1:  # a one-element tensor
            out[str(key)] = float(value.item())
    return out


class LoggerMonitor:
    """Logs the ``stats()`` of collectors, replay buffers (or any object with a ``stats()``
    returning a flat mapping of scalars) to one logger, on per-object schedules.

    Each poll reads every watched object's snapshot; a due snapshot is logged as
    ``"<name>/<entry>"`` scalars with ``logger.log_metrics(metrics, step)``, where ``step`` is
    the snapshot's ``step`` entry (e.g. ``"write_count"``) when one was named. Cumulative
    counters (``frames``, ``batches``, ``write_count``, ``sample_count``, or ``rate_keys``)
    also give rates per second since the previous poll (``frames_per_second``,
    ``writes_per_second`` ...). A schedule of ``None`` logs at every poll.

    With ``background=True`` (default), :meth:`start` (or entering the context) polls every
    ``poll_interval`` seconds in a daemon thread, so no logging work runs on the collection
    or sampling paths; with ``background=False`` the caller polls with :meth:`step`. A
    failing poll or log is handled per ``on_error``: ``"warn"`` (once per failure streak),
    ``"ignore"`` or ``"raise"`` (in the background thread, that ends the thread and
    :meth:`stop` raises it). The monitor owns neither the logger nor the watched objects.

    >>> import torch
    >>> from streamrl.data import LazyTensorStorage, ReplayBuffer
    >>> class Printer:
    ...     def log_metrics(self, metrics, step=None):
    ...         print(step, metrics["rb/size"])
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(100))
    >>> monitor = LoggerMonitor(Printer(), background=False)
    >>> monitor.watch(rb, name="rb", step="write_count")
    'rb'
    >>> _ = rb.extend(torch.arange(10))
    >>> _ = monitor.step()
    10 10.0
    """

    def __init__(self, logger: Any, *, poll_interval: float = 1.0, background: bool = True,
                 on_error: str = "warn") -> None:
        if not callable(getattr(logger, "log_metrics", None)):
            raise TypeError(f"logger must have log_metrics(metrics, step), found "
                            f"{type(logger).__name__}")
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, (int, float)) \
                or not poll_interval > 0:
            raise ValueError(f"poll_interval must be a number > 0, found {poll_interval!r}")
        if not isinstance(background, bool):
            raise TypeError(f"background must be a bool, found {type(background).__name__}")
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR}, found {on_error!r}")
        self.logger = logger
        self.poll_interval = float(poll_interval)
        self.background = background
        self.on_error = on_error
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._stopped = False  # stop() ran since the last start()/step(): a second is a no-op

    # ------------------------------------------------------------------ watching
    def watch(self, target: Any, *, name: str | None = None, schedule: Every | None = None,
              step: str | None = None,
              stats_fn: Callable[..., Mapping[str, Any]] | None = None,
              stats_kwargs: dict[str, Any] | None = None,
              rate_keys: tuple[str, ...] | None = None, log_on_start: bool = True,
              log_on_close: bool = True) -> str:
        """Watch ``target``; returns the watch's name (default: its class name, lower case).

        ``stats_fn(target, **stats_kwargs)`` replaces ``target.stats(**stats_kwargs)``;
        ``log_on_start`` logs the first poll whatever the schedule; ``log_on_close`` logs a
        last snapshot at :meth:`stop`."""
        if stats_fn is None and not callable(getattr(target, "stats", None)):
            raise TypeError(f"cannot watch a {type(target).__name__}: it has no stats() "
                            "method and no stats_fn was given")
        if stats_fn is not None and not callable(stats_fn):
            raise TypeError(f"stats_fn must be callable, found {type(stats_fn).__name__}")
        if schedule is not None and not isinstance(schedule, Every):
            raise TypeError(f"schedule must be an Every or None, found {type(schedule).__name__}")
        name = type(target).__name__.lower() if name is None else name
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, found {name!r}")
        kwargs = dict(stats_kwargs or {})

        def stats() -> Mapping[str, Any]:
            return stats_fn(target, **kwargs) if stats_fn is not None else target.stats(**kwargs)

        with self._lock:
            if name in self._watches:
                raise ValueError(f"a watch named {name!r} is already registered")
            self._watches[name] = _Watch(
                name, stats, schedule, step,
                None if rate_keys is None else tuple(rate_keys), log_on_start, log_on_close)
        return name

    def unwatch(self, name: str) -> None:
        """Stop watching ``name`` (the object itself is untouched)."""
        with self._lock:
            if name not in self._watches:
                raise KeyError(f"no watch named {name!r}; watched: {sorted(self._watches)}")
            del self._watches[name]

    @property
    def names(self) -> list[str]:
        """The watched names."""
        with self._lock:
            return list(self._watches)

    # ------------------------------------------------------------------ polling
    def step(self) -> dict[str, dict[str, float]]:
        """Poll every watched object once and log the due snapshots; returns what was logged,
        by watch name."""
        self._stopped = False
        return self._poll(final=False)

    def _poll(self, final: bool) -> dict[str, dict[str, float]]:
        logged: dict[str, dict[str, float]] = {}
        with self._lock:
            watches = list(self._watches.values())
        for w in watches:
            if final and not w.log_on_close:
                continue
            try:
                payload = self._poll_one(w, time.monotonic(), final)
                w.failing = False
            except Exception as exc:
                if self.on_error == "raise":
                    raise
                if self.on_error == "warn" and not w.failing:
                    warnings.warn(f"LoggerMonitor: watch {w.name!r} failed "
                                  f"({type(exc).__name__}: {exc}); silent until it recovers",
                                  RuntimeWarning, stacklevel=2)
                w.failing = True
                continue
            if payload is not None:
                logged[w.name] = payload
        return logged

    def _poll_one(self, w: _Watch, now: float, final: bool) -> dict[str, float] | None:
        values = _scalars(w.stats())
        rates = {}
        keys = w.rate_keys if w.rate_keys is not None else tuple(k for k in _RATES if k in values)
        if w.last_time is not None and now > w.last_time:
            for key in keys:
                if key in values and key in w.last_values:
                    rate = max(values[key] - w.last_values[key], 0.0) / (now - w.last_time)
                    rates[_RATES.get(key, f"{key}_per_second")] = rate
        w.last_time, w.last_values = now, values
        due = final or self._due(w, values, now)
        w.started = True
        if not due:
            return None
        w.last_log_time = now
        payload = {f"{w.name}/{k}": v for k, v in {**values, **rates}.items()}
        step = values.get(w.step_key) if w.step_key is not None else None
        self.logger.log_metrics(payload, step=None if step is None else int(step))
        return payload

    def _due(self, w: _Watch, values: dict[str, float], now: float) -> bool:
        schedule = w.schedule
        bucket = None
        if schedule is not None and schedule.kind == "counter":
            if schedule.key not in values:
                raise KeyError(f"the counter schedule follows {schedule.key!r}, which the "
                               f"stats do not have (they have {sorted(values)})")
            bucket = int(values[schedule.key] // schedule.interval)
        if not w.started:  # the first poll primes the schedule
            w.last_bucket = bucket
            return w.log_on_start
        if schedule is None:
            return True
        if schedule.kind == "seconds":
            return now - w.last_log_time >= schedule.interval
        if w.last_bucket is not None and bucket is not None and bucket < w.last_bucket:
            w.last_bucket = bucket  # the counter went back (a reset): re-baseline
            return False
        due = bucket != w.last_bucket
        w.last_bucket = bucket
        return due

    # ------------------------------------------------------------------ background
    def start(self) -> LoggerMonitor:
        """Start polling every ``poll_interval`` seconds in a daemon thread (nothing with
        ``background=False``)."""
        self._stopped = False
        if not self.background or (self._thread is not None and self._thread.is_alive()):
            return self
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="streamrl-logger-monitor",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.poll_interval):
                self._poll(final=False)
        except BaseException as exc:  # on_error="raise": kept for stop()
            self._error = exc

    def stop(self, *, log_final: bool | None = None) -> None:
        """Stop polling and, unless ``log_final=False``, log a last snapshot of each watch
        with ``log_on_close``. Raises the background thread's error (``on_error="raise"``).
        A second call without a :meth:`start` or :meth:`step` in between does nothing."""
        if self._stopped:
            return
        self._stopped = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error
        if log_final is not False:
            self._poll(final=True)

    def __enter__(self) -> LoggerMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"LoggerMonitor(watches={self.names}, poll_interval={self.poll_interval}, "
                f"background={self.background})")
