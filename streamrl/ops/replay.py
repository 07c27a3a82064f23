"""Replay-buffer operators: a sink that extends a buffer, a source that samples it."""

from __future__ import annotations

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
    on a thread so the wait does not block the event loop."""

    inputs = ()
    state_keys = ("sampled",)

    def __init__(self, buffer: Any, batch_size: int, *, num_batches: int | None = None):
        if not hasattr(buffer, "sample"):
            raise TypeError(f"buffer must have sample(), found {type(buffer).__name__}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if num_batches is not None and (not isinstance(num_batches, int) or num_batches < 0):
            raise ValueError(f"num_batches must be an int >= 0 or None, got {num_batches!r}")
        self.buffer = buffer
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.sampled = 0

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.num_batches is not None and self.sampled >= self.num_batches:
            raise StopIteration
        batch = self.buffer.sample(self.batch_size)
        self.sampled += 1
        return {"out": batch}

    def __repr__(self) -> str:
        return f"ReplaySource(batch_size={self.batch_size}, num_batches={self.num_batches})"
