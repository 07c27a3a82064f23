"""The learner half of the off-policy and offline graphs: sampled batches in, weights
published and evaluated, metrics logged."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from streamrl.graph import Graph, Map, Node, Port
from streamrl.ops._eval_points import EvalPoints
from streamrl.ops.evaluator import Evaluator
from streamrl.ops.learner import Learner
from streamrl.ops.metrics_sink import MetricsSink
from streamrl.ops.policy_weights import PolicyWeights
from streamrl.ops.weight_sync import WeightSync

LEARNER_CAPACITY = 2


def add_learner_half(g: Graph, source: Node, learner: Learner, weights: PolicyWeights,
                     policy: nn.Module, evaluator: Evaluator, metrics: MetricsSink, *,
                     eval_interval: int | Sequence[int],
                     before_publish: Callable[[], Any] | None = None,
                     extra_metrics: Mapping[str, Callable[[], Any]] | None = None,
                     ) -> tuple[Port, Node]:
    """Add to ``g``::

        source --> learner --> weight_sync [--> extras] --> metrics (learner port)
                                  |                            ^
                                  +--> evaluator (snapshots) --+ (eval port)

    The learner (on a thread) trains on each message of ``source``; the
    :class:`WeightSync` publishes ``policy`` into ``weights`` after each (``before_publish``
    called first) and sends a snapshot at the first publication at or after each of
    ``eval_interval``'s update counts to ``evaluator`` (on a thread, FIFO edge: the learner
    goes on while it plays); each of ``extra_metrics`` is added to the learner's rows.
    Returns the port of the learner's rows as published (what a pacer follows) and the
    metrics node (whose ``collector`` port the caller may feed)."""
    learn = g.add(learner, name="learner", placement="thread")
    sync = g.add(WeightSync(weights, policy, lock=learner.lock, before_publish=before_publish,
                            snapshot_at=EvalPoints(eval_interval, learner.updates)),
                 name="weight_sync")
    published = sync["out"]
    if extra_metrics:
        extras = dict(extra_metrics)
        node = g.add(Map(lambda msg: {**msg, **{k: f() for k, f in extras.items()}}),
                     name="_".join(extras))
        g.connect(published, node)
        published = node["out"]
    eval_node = g.add(evaluator, name="evaluator", placement="thread")
    sink = g.add(metrics, name="metrics")
    g.connect(source, learn, capacity=LEARNER_CAPACITY)
    g.connect(learn, sync, capacity=LEARNER_CAPACITY)
    g.connect(published, sink["learner"], capacity=8)
    g.connect(sync["snapshot"], eval_node, capacity=2).connect(eval_node, sink["eval"])
    return published, sink
