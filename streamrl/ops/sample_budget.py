"""How many samples a replay buffer's rate limiter grants for a collection budget."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["sample_budget"]


def sample_budget(limiter: Any, inserts: int, batch_size: int, *, limit: int = 10_000_000) -> int:
    """The number of ``batch_size`` samples ``limiter`` allows once ``inserts`` items were
    inserted in all (counting from its current state).

    This is how an off-policy graph ends: the collector stops after its frame budget, and a
    :class:`~streamrl.ops.ReplaySource` given ``num_batches=sample_budget(...)`` draws exactly
    the batches the limiter will ever grant, so it never waits for an insert that will not
    come. A limiter that bounds samples by inserts (e.g.
    :class:`~streamrl.data.SampleToInsertRatio`) is needed; one that never stops sampling
    (e.g. ``MinSize``) raises ``ValueError``.

    >>> from streamrl.data.replay_buffers.rate_limiters import SampleToInsertRatio
    >>> lim = SampleToInsertRatio(2.0, min_size_to_sample=10, error_buffer=8, max_sample_batch=4)
    >>> sample_budget(lim, inserts=100, batch_size=4)  # (100 * 2 - (10 * 2 - 8)) // 4
    47
    """
    for name, value in (("inserts", inserts), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (name == "batch_size"):
            raise ValueError(f"{name} must be an int >= {int(name == 'batch_size')}, got {value!r}")
    if not callable(getattr(limiter, "can_sample", None)):
        raise TypeError(f"limiter must have can_sample(n), found {type(limiter).__name__}")
    sim = copy.copy(limiter)  # counters are plain ints: a shallow copy is independent
    sim.inserts = max(int(limiter.inserts), inserts)
    start = int(limiter.samples)

    def allows(k: int) -> bool:  # may a k-th batch be sampled after k - 1 of them?
        sim.samples = start + (k - 1) * batch_size
        return bool(sim.can_sample(batch_size))

    if allows(limit + 1):
        raise ValueError(
            f"{type(limiter).__name__} grants more than {limit} samples for {inserts} inserts: "
            "it does not bound sampling by inserts; give the ReplaySource num_batches yourself"
        )
    lo, hi = 0, limit + 1  # allows(lo) or lo == 0; not allows(hi); monotone in k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if allows(mid):
            lo = mid
        else:
            hi = mid
    return lo
