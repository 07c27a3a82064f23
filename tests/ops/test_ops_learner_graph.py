"""The learner ops in a concurrent off-policy graph: it drains at the end of collection, and a
failing learner stops the whole graph."""

from __future__ import annotations

import time

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.data import LazyTensorStorage, SampleToInsertRatio, TensorDictReplayBuffer
from streamrl.graph import Graph, OperatorError, Source
from streamrl.objectives.common import LossModule
from streamrl.ops import (
    Learner,
    MetricsSink,
    PolicyWeights,
    ReplaySink,
    ReplaySource,
    WeightSync,
    sample_budget,
)


class MSE(LossModule):
    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.net = nn.Linear(2, 1)
        self.calls = 0
        self.fail_after = fail_after

    def forward(self, td):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("loss exploded")
        return TensorDict({"loss_mse": (self.net(td["x"]) - td["y"]).pow(2).mean()})


def batches(n_batches, rows, weights):
    """Collected batches ``[1, rows]``, stamped with the weights' version at collection time."""
    for _ in range(n_batches):
        x = torch.randn(1, rows, 2)
        yield TensorDict({
            "x": x, "y": x @ torch.tensor([[1.0], [-1.0]]),
            ("collector", "policy_version"): torch.full((1, rows), weights.version),
        }, [1, rows])


def build(loss, *, n_batches=20, rows=16, sample=32, spi=2.0, min_size=32):
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(10_000),
        rate_limiter=SampleToInsertRatio(spi, min_size_to_sample=min_size,
                                         error_buffer=sample + rows * spi,
                                         max_sample_batch=sample, max_insert_batch=rows),
        rate_limit_timeout=30.0,
    )
    weights = PolicyWeights(loss.net)
    learner = Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.05), minibatch_size=8)
    num_batches = sample_budget(buffer.rate_limiter, n_batches * rows, sample)
    metrics = MetricsSink(inputs=("collector", "learner"))
    g = Graph()
    src = g.add(Source(batches(n_batches, rows, weights)), name="collect")
    sink = g.add(ReplaySink(buffer), name="replay_sink", placement="thread")
    source = g.add(ReplaySource(buffer, sample, num_batches=num_batches), name="replay_source",
                   placement="thread")
    learn = g.add(learner, name="learner", placement="thread")
    sync = g.add(WeightSync(weights, loss.net, every=4, lock=learner.lock), name="sync")
    out = g.add(metrics, name="metrics")
    g.connect(src, sink).connect(src, out["collector"])
    g.connect(source, learn).connect(learn, sync).connect(sync, out["learner"])
    return g, buffer, weights, learner, metrics, num_batches


def test_off_policy_graph_drains_when_collection_ends():
    torch.manual_seed(0)
    loss = MSE()
    g, buffer, weights, learner, metrics, num_batches = build(loss)
    g.run_sync(watchdog_timeout=20.0)
    lim = buffer.rate_limiter
    assert lim.inserts == 320 and metrics.frames == 320
    assert num_batches == (320 * 2 - (32 * 2 - (32 + 32))) // 32 == 20
    assert lim.samples == 32 * num_batches  # every granted sample was drawn, then it ended
    assert learner.updates == 4 * num_batches and learner.batches == num_batches
    # published every 4 updates, and the pending ones at the end
    assert weights.version == learner.updates // 4
    assert torch.equal(weights.policy.weight, loss.net.weight)
    rows = metrics.rows
    assert len(rows) == num_batches and [r["updates"] for r in rows][-1] == learner.updates
    assert all(r["staleness"] >= 0 for r in rows)
    assert rows[-1]["loss_mse"] < rows[0]["loss_mse"]
    # the learner never got ahead of the ratio: samples <= inserts * spi + slack, per message
    assert "learner" in g.report()


# a thread blocked inside the rate limiter (waiting for inserts or samples that will never come)
# may be abandoned with a warning instead of hanging the shutdown; its wait ends by the buffer's
# rate_limit_timeout
@pytest.mark.filterwarnings("ignore::streamrl.StreamRLWarning")
def test_a_failing_learner_stops_the_graph():
    loss = MSE(fail_after=6)
    g, buffer, _, learner, metrics, _ = build(loss, n_batches=40)
    t0 = time.perf_counter()
    with pytest.raises(OperatorError) as info:
        g.run_sync(watchdog_timeout=20.0)
    assert info.value.operator == "learner"
    assert "loss exploded" in str(info.value.__cause__)
    assert time.perf_counter() - t0 < 15
    assert learner.updates == 6 and len(metrics.rows) <= 1
    assert buffer.rate_limiter.inserts < 40 * 16  # collection stopped with the graph
