"""ReplayDraws: sampling paced by the rows a sink wrote."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.graph import Collect, Graph, Source
from streamrl.ops import ReplayDraws, ReplaySink


def _buffer(rows: int = 0) -> TensorDictReplayBuffer:
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(256))
    if rows:
        rb.extend(TensorDict({"x": torch.arange(float(rows))}, [rows]))
    return rb


def test_credit_carries_fractions_across_counts():
    op = ReplayDraws(_buffer(10), 2, draws_per_row=0.3)
    drawn = [op.step({"in": n}) for n in (1, 1, 1, 1)]
    assert [0 if d is None else len(d["out"].items) for d in drawn] == [0, 0, 0, 1]
    assert op.drawn == 1 and op.credit == pytest.approx(0.2)


def test_several_draws_per_row():
    op = ReplayDraws(_buffer(10), 3, draws_per_row=2)
    items = op.step({"in": 3})["out"].items
    assert len(items) == 6 and all(b.batch_size == torch.Size([3]) for b in items)


def test_nothing_before_learning_starts_and_only_the_rows_past_it_count():
    op = ReplayDraws(_buffer(10), 2, draws_per_row=1, learning_starts=5)
    assert op.step({"in": 4}) is None
    assert len(op.step({"in": 3})["out"].items) == 2  # rows 6 and 7


def test_a_graph_fed_by_its_sink_ends_with_its_writer():
    rb = _buffer()
    g = Graph()
    src = g.add(Source([TensorDict({"x": torch.full((4,), float(i))}, [4]) for i in range(5)]),
                name="src")
    sink = g.add(ReplaySink(rb, emit_counts=True), name="sink", placement="thread")
    draws = g.add(ReplayDraws(rb, 8, draws_per_row=0.25, learning_starts=4), name="draws",
                  placement="thread")
    out = g.add(Collect(), name="out")
    g.connect(src, sink).connect(sink, draws).connect(draws, out)
    g.run_sync(watchdog_timeout=10)
    assert len(out.op.items) == 4  # 16 rows past learning_starts, a quarter draw each
    assert all(len(b) == 8 for b in out.op.items)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0, "draws_per_row": 1}, "batch_size must be an int >= 1, found 0"),
    ({"batch_size": 2, "draws_per_row": 0}, "draws_per_row must be a number > 0, found 0"),
    ({"batch_size": 2, "draws_per_row": 1, "learning_starts": -1},
     "learning_starts must be an int >= 0, found -1"),
])
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReplayDraws(_buffer(), **kwargs)


def test_a_bad_count_is_refused_naming_what_was_expected():
    op = ReplayDraws(_buffer(4), 2, draws_per_row=1)
    with pytest.raises(TypeError, match=r"number of rows written .* found 'x'"):
        op.step({"in": "x"})
    with pytest.raises(TypeError, match=r"buffer must have sample\(\)"):
        ReplayDraws(object(), 2, draws_per_row=1)
