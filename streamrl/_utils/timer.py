"""timeit: named wall-clock timers shared by a whole process (the timers TorchRL's scripts use).

Every ``timeit(name)`` adds to one process-wide table: total seconds and number of calls per
name. Use it as a context manager, as a decorator, or with ``start()``/``stop()``; read the
table with :meth:`timeit.todict`, log it with :meth:`timeit.print`, and clear it with
:meth:`timeit.erase` (alias :meth:`timeit.reset`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch

from streamrl._utils.log import logger

_F = TypeVar("_F", bound=Callable[..., Any])


class timeit:  # TorchRL's spelling: used like a function (a decorator)
    """Time a block or a function under ``name``, adding to a process-wide table.

    Args:
        name: the row of the table the time goes to.

    Keyword Args:
        sync: synchronize CUDA before each timestamp, so the time covers finished GPU work
            (no-op without CUDA). Default False.

    >>> timeit.erase()
    >>> with timeit("collect"):
    ...     pass
    >>> @timeit("update")
    ... def update():
    ...     return 1
    >>> update(), update()
    (1, 1)
    >>> table = timeit.todict(percall=False)
    >>> sorted(table), timeit.count("update")
    (['collect', 'update'], 2)
    >>> timeit.erase(); timeit.todict()
    {}
    """

    # name -> [total seconds, calls]
    _REG: ClassVar[dict[str, list[float]]] = {}
    _printevery_count: ClassVar[int] = 0

    def __init__(self, name: str, *, sync: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"timeit needs a non-empty str name, found {name!r}")
        self.name = name
        self.sync = bool(sync)
        self._t0: float | None = None

    # ------------------------------------------------------------ one measure
    def _now(self) -> float:
        if self.sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> timeit:
        """Start the clock (for a span a ``with`` block cannot hold); returns self."""
        self._t0 = self._now()
        return self

    def elapsed(self) -> float:
        """Seconds since :meth:`start` (or since the ``with`` block began)."""
        if self._t0 is None:
            raise RuntimeError(f"timeit({self.name!r}) was not started: use start() or `with`")
        return self._now() - self._t0

    def stop(self) -> float:
        """Stop the clock, add the span to the table and return it in seconds."""
        span = self.elapsed()
        self._t0 = None
        row = self._REG.setdefault(self.name, [0.0, 0])
        row[0] += span
        row[1] += 1
        return span

    def __enter__(self) -> timeit:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __call__(self, fn: _F) -> _F:
        name, sync = self.name, self.sync

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with timeit(name, sync=sync):
                return fn(*args, **kwargs)

        return timed  # type: ignore[return-value]

    # ------------------------------------------------------------ the table
    @classmethod
    def count(cls, name: str) -> int:
        """How many spans were recorded under ``name`` (0 for an unknown name)."""
        return int(cls._REG.get(name, (0.0, 0))[1])

    @classmethod
    def todict(cls, percall: bool = True, prefix: str | None = None) -> dict[str, float]:
        """The table as ``{name: seconds}``: mean seconds per call (``percall=True``) or the
        total; ``prefix`` is joined to every name with ``/`` (for a logger's keys)."""
        out = {}
        for name, (total, calls) in cls._REG.items():
            key = f"{prefix}/{name}" if prefix else name
            out[key] = total / calls if percall else total
        return out

    @classmethod
    def print(cls, prefix: str | None = None) -> str:
        """Log every row (per call, total, share of all timed seconds) at INFO and return the
        text."""
        grand = sum(total for total, _ in cls._REG.values()) or 1.0
        lines = []
        for name, (total, calls) in sorted(cls._REG.items(), key=lambda kv: -kv[1][0]):
            key = f"{prefix}/{name}" if prefix else name
            lines.append(
                f"{key} took {total / calls:.4g} s per call x {calls} calls = {total:.4g} s "
                f"({100 * total / grand:.1f}%)"
            )
        text = "\n".join(lines)
        if text:
            logger.info(text)
        return text

    @classmethod
    def printevery(
        cls, num_prints: int, total_count: int, *, prefix: str | None = None, erase: bool = False
    ) -> None:
        """Call once per iteration of a ``total_count``-long loop: prints the table
        ``num_prints`` times over the loop (and erases it after each print if ``erase``)."""
        if not isinstance(num_prints, int) or not isinstance(total_count, int):
            raise TypeError("printevery needs int num_prints and total_count")
        if num_prints < 1 or total_count < 1:
            raise ValueError(
                f"printevery needs num_prints >= 1 and total_count >= 1, found {num_prints} "
                f"and {total_count}"
            )
        every = max(1, total_count // num_prints)
        cls._printevery_count += 1
        if cls._printevery_count % every == 0:
            cls.print(prefix=prefix)
            if erase:
                cls.erase()

    @classmethod
    def erase(cls) -> None:
        """Forget every row (and the printevery counter)."""
        cls._REG.clear()
        cls._printevery_count = 0

    reset = erase
