"""The offline training graph: learn from a fixed dataset, evaluate online now and then."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from streamrl.graph import Graph
from streamrl.ops._learner_half import add_learner_half
from streamrl.ops.evaluator import Evaluator
from streamrl.ops.learner import Learner
from streamrl.ops.metrics_sink import MetricsSink
from streamrl.ops.policy_weights import PolicyWeights
from streamrl.ops.replay import ReplaySource

__all__ = ["OfflineGraph", "build_offline_graph"]


@dataclass
class OfflineGraph:
    """What :func:`build_offline_graph` made: the graph, and the pieces a driver reads
    (``learner.updates``, :attr:`evaluations`) or saves (:meth:`checkpoint`)."""

    graph: Graph
    learner: Learner
    dataset: Any
    source: ReplaySource
    metrics: MetricsSink
    weights: PolicyWeights
    saved: dict[str, Any]

    @property
    def evaluations(self) -> list[tuple[int, float]]:
        """``(updates, eval_return)`` of each evaluation so far, in order."""
        return [(int(r["updates"]), float(r["eval_return"])) for r in self.metrics.rows
                if "eval_return" in r and "updates" in r]

    def checkpoint(self, config: Any) -> dict[str, Any]:
        """Everything a resumed run needs, without the dataset's rows (they stay where they
        are read from): ``pipeline``, the state of each ``saved`` piece and of the learner,
        the dataset sampler's state (its generator: the draws go on as if never stopped),
        ``config`` (a dataclass, as a dict), ``updates`` made and ``policy_version``."""
        return {
            "pipeline": self.graph.name,
            **{key: piece.state_dict() for key, piece in self.saved.items()},
            "learner": self.learner.state_dict(),
            "sampler": self.dataset.sampler.sampling_state(),
            "config": dataclasses.asdict(config),
            "updates": self.learner.updates,
            "policy_version": self.weights.version,
        }


def build_offline_graph(
    name: str,
    dataset: Any,
    policy: nn.Module,
    learner: Learner,
    *,
    updates: int,
    sample_size: int,
    make_eval_env: Callable[[], Any],
    eval_interval: int | Sequence[int],
    eval_seed: int | None,
    saved: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    run_dir: Path | None = None,
    columns: Sequence[str] | None = None,
    logger: str = "none",
) -> OfflineGraph:
    """The graph that learns from a fixed dataset and evaluates the policy online::

        dataset_source --> learner --> weight_sync --> metrics
                                           |             ^
                                           +--> evaluator (snapshots)

    ``dataset`` is a replay buffer holding the data (e.g. a
    :class:`~streamrl.data.datasets.MinariExperienceReplay`, or any buffer filled
    beforehand); the source draws ``sample_size`` rows per message from it with its own
    sampler, on a thread, as many messages as make ``updates`` learner updates in all (the
    last message may make a few more when ``learner`` splits messages into minibatches).
    Nothing is collected: the graph ends once the learner has made its updates and the
    final weights are published and evaluated.

    ``policy`` is what ``learner`` trains (its parameters, or a module sharing them); the
    :class:`WeightSync` publishes it after each learner message, and at the first publication
    at or after every multiple of ``eval_interval`` updates (or each count in it, when a
    sequence) the evaluator plays a snapshot of those weights on ``make_eval_env``'s env
    (reset with ``eval_seed``), while the learner goes on; the final weights are evaluated
    too. Metrics go to ``run_dir`` (``columns``, through ``logger`` as in
    :class:`MetricsSink`); :attr:`OfflineGraph.evaluations` lists ``(updates, return)``.

    With ``state`` (a checkpoint from :meth:`OfflineGraph.checkpoint`) the ``saved``
    pieces, the learner and the dataset's sampler are restored first, and the run makes the
    updates left up to ``updates``.

    Raises ``ValueError`` for an empty dataset or a checkpoint already at ``updates``.
    """
    if not callable(getattr(dataset, "sample", None)) or not hasattr(dataset, "sampler"):
        raise TypeError(f"dataset must be a replay buffer (sample() and a sampler), found "
                        f"{type(dataset).__name__}")
    if not isinstance(learner, Learner):
        raise TypeError(f"learner must be a Learner, found {type(learner).__name__}")
    for arg, value in (("updates", updates), ("sample_size", sample_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive int, found {value!r}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty: an offline run needs the rows to learn from")
    saved = dict(saved or {})
    if state is not None:
        for key, piece in (*saved.items(), ("learner", learner)):
            piece.load_state_dict(state[key])
        dataset.sampler.load_sampling_state(state["sampler"])
    done = learner.updates
    if done >= updates:
        raise ValueError(f"the checkpoint is at {done} updates, already at the budget "
                         f"updates={updates}; pass more updates")
    per_message = learner.updates_per_batch(sample_size)
    messages = math.ceil((updates - done) / per_message)
    version = 0 if state is None else int(state.get("policy_version", 0))
    weights = PolicyWeights(policy, version=version)
    metrics = MetricsSink(run_dir, columns=columns, inputs=("learner", "eval"), desc=name,
                          logger=logger)
    evaluator = Evaluator(make_eval_env, weights, seed=eval_seed, interval=None)

    g = Graph(name)
    source = ReplaySource(dataset, sample_size, num_batches=messages, timeout=None)
    src = g.add(source, name="dataset_source", placement="thread")
    add_learner_half(g, src, learner, weights, policy, evaluator, metrics,
                     eval_interval=eval_interval)
    return OfflineGraph(g, learner, dataset, source, metrics, weights, saved)
