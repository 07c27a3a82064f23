"""ReplayDraws: samples from a replay buffer paced by the rows written into it."""

from __future__ import annotations

from typing import Any

from streamrl.graph import Many, Operator

__all__ = ["ReplayDraws"]


class ReplayDraws(Operator):
    """Draws ``draws_per_row`` samples of ``batch_size`` rows per row written into
    ``buffer``, once ``learning_starts`` rows are in: a replay source paced by its writer.

    Its input is a :class:`~streamrl.ops.ReplaySink` with ``emit_counts=True`` (the number
    of rows each batch wrote, sent once they are in the buffer); each count adds
    ``count * draws_per_row`` to a running credit (only for the rows past
    ``learning_starts``) and the whole draws of the credit are sampled at once and emitted
    as :class:`~streamrl.graph.Many` batches (nothing while the credit is below one). Unlike
    a :class:`~streamrl.ops.ReplaySource`, which samples a fixed number of times under a
    rate limiter, it needs no budget known in advance and ends when its writer's stream
    ends: what a second level of a hierarchy trains from, whose transitions (one per
    segment) come at a rate the graph does not know beforehand. Its state: the rows counted,
    the credit and the draws made.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100))
    >>> _ = rb.extend(TensorDict({"x": torch.arange(10.0)}, [10]))
    >>> op = ReplayDraws(rb, 4, draws_per_row=0.25, learning_starts=6)
    >>> op.step({"in": 8}) is None  # two rows past learning_starts: half a draw
    True
    >>> len(op.step({"in": 2})["out"].items)  # two more: the first whole draw
    1
    >>> op.state_dict()
    {'rows': 10, 'credit': 0.0, 'drawn': 1}
    """

    state_keys = ("rows", "credit", "drawn")

    def __init__(self, buffer: Any, batch_size: int, *, draws_per_row: float,
                 learning_starts: int = 0) -> None:
        if not hasattr(buffer, "sample"):
            raise TypeError(f"ReplayDraws: buffer must have sample(), found "
                            f"{type(buffer).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"ReplayDraws: batch_size must be an int >= 1, found "
                             f"{batch_size!r}")
        if isinstance(draws_per_row, bool) or not isinstance(draws_per_row, (int, float)) or (
            not draws_per_row > 0
        ):
            raise ValueError(f"ReplayDraws: draws_per_row must be a number > 0, found "
                             f"{draws_per_row!r}")
        if isinstance(learning_starts, bool) or not isinstance(learning_starts, int) or (
            learning_starts < 0
        ):
            raise ValueError(f"ReplayDraws: learning_starts must be an int >= 0, found "
                             f"{learning_starts!r}")
        self.buffer, self.batch_size = buffer, batch_size
        self.draws_per_row, self.learning_starts = float(draws_per_row), learning_starts
        self.rows, self.credit, self.drawn = 0, 0.0, 0

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        count = inputs["in"]
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise TypeError(f"ReplayDraws: expected the number of rows written (an int >= 0, "
                            f"from ReplaySink(emit_counts=True)), found {count!r}")
        before, self.rows = self.rows, self.rows + count
        self.credit += max(0, self.rows - max(before, self.learning_starts)) * self.draws_per_row
        draws = int(self.credit)
        if not draws:
            return None
        self.credit -= draws
        self.drawn += draws
        return {"out": Many(self.buffer.sample(self.batch_size) for _ in range(draws))}

    def __repr__(self) -> str:
        return (f"ReplayDraws(batch_size={self.batch_size}, draws_per_row={self.draws_per_row:g}, "
                f"learning_starts={self.learning_starts})")
