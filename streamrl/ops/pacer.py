"""Pacer: releases a gated rollout's batches as the learner's publications reach a schedule."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from streamrl.graph import Many, Operator

__all__ = ["Pacer"]


class Pacer(Operator):
    """Turns an off-policy graph into a lockstep one (SB3's order: collect, then learn).

    ``schedule[b]`` is how many learner publications must have arrived on the input before
    batch ``b`` may be collected (non-decreasing). Connected to a gated
    :class:`~streamrl.ops.Rollout` (``gated=True``), it emits one token on ``out`` per batch
    released: those needing no publication when it opens, then, on each publication, those
    that publication completes. With a replay buffer whose limiter grants ``schedule[b]``
    samples for the frames of batches ``0..b-1`` (see :func:`~streamrl.ops.sample_budget`),
    every batch is collected with the weights of exactly those updates, and every sample is
    drawn from the same buffer contents, run after run: learning no longer depends on thread
    timing.

    >>> pacer = Pacer([0, 0, 2, 3])
    >>> pacer.open()["out"].items, pacer.step({"in": {}}), pacer.step({"in": {}})["out"].items
    ([0, 1], None, [2])
    """

    state_keys = ("seen", "released")

    def __init__(self, schedule: Sequence[int]):
        schedule = list(schedule)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in schedule):
            raise ValueError(f"schedule must hold ints >= 0, found {schedule!r}")
        if any(b < a for a, b in itertools.pairwise(schedule)):
            raise ValueError(f"schedule must be non-decreasing, found {schedule!r}")
        self.schedule = schedule
        self.seen = 0
        self.released = 0

    def _release(self) -> dict[str, Any] | None:
        start = self.released
        while self.released < len(self.schedule) and self.schedule[self.released] <= self.seen:
            self.released += 1
        return {"out": Many(range(start, self.released))} if self.released > start else None

    def open(self) -> dict[str, Any] | None:
        return self._release()

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        self.seen += 1
        return self._release()

    def __repr__(self) -> str:
        return f"Pacer(batches={len(self.schedule)}, released={self.released}, seen={self.seen})"
