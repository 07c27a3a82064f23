"""LastRow: the newest metrics row of a side stream (a second learner's), read column by
column into the main metrics rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["LastRow"]


class LastRow:
    """Keeps the last row given to :meth:`update` (connect it as ``Sink(last.update)``
    after a learner); :meth:`reader` gives a zero-argument function reading one column of
    it, ``nan`` until a row has it (``extra_metrics`` of an off-policy graph).

    >>> last = LastRow()
    >>> loss = last.reader("loss")
    >>> loss()
    nan
    >>> last.update({"loss": 0.5, "updates": 3})
    >>> loss()
    0.5
    """

    def __init__(self) -> None:
        self.row: dict[str, Any] = {}

    def update(self, row: dict[str, Any]) -> None:
        """Keep ``row`` (the newest)."""
        self.row = row

    def reader(self, key: str) -> Callable[[], Any]:
        """A function returning the newest row's ``key`` (``nan`` when it has none)."""
        return lambda: self.row.get(key, float("nan"))
