"""Replay-buffer operators: a sink that extends a buffer, a source that samples it."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from tensordict import TensorDictBase

from streamrl.graph import Operator

__all__ = ["ReplaySink", "ReplaySource"]


class ReplaySink(Operator):
    """Writes every incoming batch into a replay buffer (``[envs, T]`` batches are flattened
    to ``[envs * T]`` first, as buffers store transitions; empty batches are skipped).

    ``emit_counts=True`` gives the sink an ``out`` port that emits the number of rows each
    batch wrote, once it is in the buffer (so a reader downstream knows the data is there).
    """

    outputs = ()
    state_keys = ("written",)

    def __init__(self, buffer: Any, *, flatten: bool = True, emit_counts: bool = False):
        if not hasattr(buffer, "extend"):
            raise TypeError(f"buffer must have extend(), found {type(buffer).__name__}")
        self.buffer = buffer
        self.flatten = flatten
        self.emit_counts = emit_counts
        if emit_counts:
            self.outputs = ("out",)
        self.written = 0

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        batch = inputs["in"]
        if self.flatten and isinstance(batch, TensorDictBase) and batch.batch_dims > 1:
            batch = batch.reshape(-1)
        n = len(batch)
        if n:
            self.buffer.extend(batch)
        self.written += n
        return {"out": n} if self.emit_counts else None

    def __repr__(self) -> str:
        return f"ReplaySink({type(self.buffer).__name__})"


class ReplaySource(Operator):
    """Samples ``batch_size`` items from a replay buffer per step, ``num_batches`` times
    (``None``: forever). A rate limiter on the buffer makes the sampling wait; place the source
    on a thread so the wait does not block the event loop.

    **Bounded policy lag.** With a buffer whose sampler is a
    :class:`~streamrl.data.StalenessAwareSampler` and ``first_version`` set, each draw first
    sets the sampler's ``consumer_version`` to ``first_version + sampled``: the policy version
    the learner holds when it trains on that draw, in a graph whose
    :class:`~streamrl.ops.WeightSync` publishes once per learner message (as
    :func:`~streamrl.ops.build_offpolicy_graph`'s does). Items more than the sampler's
    ``max_staleness`` versions older are never drawn; while no stored item is fresh enough,
    the source waits for the collector's next insert (polling every ``poll`` seconds; after
    ``timeout`` seconds without an insert, ``TimeoutError``, so a stalled collector is an
    error, not a hang).

    **Remote buffers.** A :class:`~streamrl.data.RayReplayBuffer` (or its ``client()``) works
    as any buffer: each step is one blocking ``sample`` call on the buffer's actor, and the
    actor's rate limiter makes it wait. ``prefetch=k`` keeps ``k`` sample calls in flight
    while the learner works on the current batch (the buffer's ``sample_async``), never more
    than ``num_batches`` leaves to draw, so prefetching draws nothing beyond the budget. It needs a buffer with ``sample_async`` (a
    local buffer prefetches with ``ReplayBuffer(prefetch=k)``) and cannot be combined with
    ``first_version``, which decides each draw when it is made. Bounded policy lag
    (``first_version``) reads the sampler directly, so it needs a local buffer.
    """

    inputs = ()
    state_keys = ("sampled",)

    def __init__(self, buffer: Any, batch_size: int, *, num_batches: int | None = None,
                 first_version: int | None = None, timeout: float | None = 120.0,
                 poll: float = 0.001, prefetch: int = 0):
        if not hasattr(buffer, "sample"):
            raise TypeError(f"buffer must have sample(), found {type(buffer).__name__}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if num_batches is not None and (not isinstance(num_batches, int) or num_batches < 0):
            raise ValueError(f"num_batches must be an int >= 0 or None, got {num_batches!r}")
        if first_version is not None:
            if isinstance(first_version, bool) or not isinstance(first_version, int):
                raise TypeError(f"first_version must be an int or None, got {first_version!r}")
            sampler = getattr(buffer, "sampler", None)
            if not hasattr(sampler, "consumer_version") or not callable(
                getattr(buffer, "can_sample", None)
            ):
                raise TypeError(
                    "first_version needs a buffer with can_sample() whose sampler has a "
                    f"consumer_version (a StalenessAwareSampler), found "
                    f"{type(buffer).__name__} with {type(sampler).__name__}"
                )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 or None, got {timeout!r}")
        if not poll > 0:
            raise ValueError(f"poll must be > 0, got {poll!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0, got {prefetch!r}")
        if prefetch and not callable(getattr(buffer, "sample_async", None)):
            raise TypeError(
                f"prefetch={prefetch} needs a buffer with sample_async() (a RayReplayBuffer or "
                f"its client), found {type(buffer).__name__}; a local buffer prefetches with "
                "ReplayBuffer(prefetch=k)"
            )
        if prefetch and first_version is not None:
            raise ValueError("prefetch and first_version cannot be combined: bounded lag "
                             "decides each draw when it is made")
        self.buffer = buffer
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.first_version = first_version
        self.timeout = timeout
        self.poll = poll
        self.prefetch = prefetch
        self.sampled = 0
        self._ahead: deque[Any] = deque()  # sample calls in flight (prefetch), oldest first

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.num_batches is not None and self.sampled >= self.num_batches:
            raise StopIteration
        if self.first_version is not None:
            self._wait_fresh(self.first_version + self.sampled)
        if self.prefetch:
            # this step's draw and `prefetch` more, within what the budget leaves
            want = self.prefetch + 1
            if self.num_batches is not None:
                want = min(want, self.num_batches - self.sampled)
            while len(self._ahead) < want:
                self._ahead.append(self.buffer.sample_async(self.batch_size))
            batch = self._ahead.popleft().result()
        else:
            batch = self.buffer.sample(self.batch_size)
        self.sampled += 1
        return {"out": batch}

    def close(self) -> None:
        self._ahead.clear()  # their batches are dropped (the calls finish on the buffer)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_ahead"] = deque()  # calls in flight stay with this copy
        return state

    def _wait_fresh(self, version: int) -> None:
        sampler = self.buffer.sampler
        sampler.consumer_version = version
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        written = self.buffer.write_count
        # inserts only add fresher items (a ring buffer overwrites the oldest): once a fresh
        # item is seen, the draw below finds one
        while not self.buffer.can_sample(self.batch_size):
            if deadline is not None:
                if self.buffer.write_count != written:  # the collector is alive: wait afresh
                    written = self.buffer.write_count
                    deadline = time.monotonic() + self.timeout
                elif time.monotonic() > deadline:
                    raise TimeoutError(
                        f"ReplaySource: no stored item within max_staleness="
                        f"{sampler.max_staleness} of policy version {version} after "
                        f"{self.timeout} s without an insert (is the collector running?)"
                    )
            time.sleep(self.poll)

    def __repr__(self) -> str:
        lag = "" if self.first_version is None else ", bounded lag"
        return (f"ReplaySource(batch_size={self.batch_size}, num_batches={self.num_batches}"
                f"{lag})")
