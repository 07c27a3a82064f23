"""When the learner's weights are evaluated: the update counts of the off-policy and offline
graphs' evaluation points."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence


class EvalPoints:
    """``snapshot_at`` of the graph's :class:`WeightSync`: true at the first count at or
    after each evaluation point (every multiple of ``points`` when an int, else each count
    in it) that lies beyond ``start`` (a resumed run's update count)."""

    def __init__(self, points: int | Sequence[int], start: int) -> None:
        if isinstance(points, int) and not isinstance(points, bool):
            if points < 1:
                raise ValueError(f"eval_interval must be a positive int, found {points!r}")
            self.every: int | None = points
            self.points: list[int] = []
            self.next_at: float = (start // points + 1) * points
        else:
            if isinstance(points, bool) or not isinstance(points, Sequence):
                raise ValueError(f"eval_interval must be a positive int or a sequence of "
                                 f"positive ints (update counts), found {points!r}")
            counts = sorted(set(points))
            if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0
                       for c in counts):
                raise ValueError(f"eval_interval must be a positive int or a sequence of "
                                 f"positive ints (update counts), found {points!r}")
            self.every, self.points = None, counts
            i = bisect.bisect_right(counts, start)
            self.next_at = counts[i] if i < len(counts) else math.inf

    def __call__(self, updates: int) -> bool:
        if updates < self.next_at:
            return False
        if self.every is not None:
            self.next_at = (updates // self.every + 1) * self.every
        else:
            i = bisect.bisect_right(self.points, updates)
            self.next_at = self.points[i] if i < len(self.points) else math.inf
        return True
