"""streamrl.ops: RL operators for the dataflow graph.

Where the layers meet: env sources, policy stages, batchers and replay-buffer sinks and
sources, built on :mod:`streamrl.graph` operators.

* :class:`Rollout`: env + policy in one source operator, one ``[envs, T]`` batch per message
  (the building block of the collectors, placeable in a worker process); a
  :class:`WeightsSource` sends it weights where it shares no memory with the learner.
* :class:`EnvSource` + :class:`PolicyStage` + :class:`TrajectoryBatcher`: the same work as a
  feedback cycle, for topologies where one policy stage serves several env sources.
* :class:`ReplaySink` / :class:`ReplaySource`: extend a buffer / sample from it;
  :class:`ReplayDraws` samples paced by the rows its sink wrote.
* :class:`PolicyWeights`: shared policy weights with a version counter.
* :class:`Trigger`, :class:`StackBatches`: pace a graph from outside; zip N batches into one.
* :class:`Pacer`: gate a rollout on the learner's publications (lockstep off-policy graphs).
* :class:`GradientStep`: one optimizer update from a loss's output (the arithmetic
  :class:`Learner` and :class:`streamrl.trainers.Trainer` share).
* :class:`CompleteTrajectories`: regroup collected batches into whole episodes (the
  collectors' ``trajs_per_batch``).
* :class:`Learner`, :class:`WeightSync`, :class:`Evaluator`, :class:`MetricsSink`: the learner
  side of off-policy graphs (train on sampled batches, publish weights, evaluate, log;
  :func:`evaluate_episodes` / :func:`play_episodes` and :class:`MetricsLogger` are what they use);
  :func:`sample_budget` sizes a ReplaySource so the graph ends with its collection budget.
* :func:`build_offpolicy_graph`: all of these wired into the concurrent off-policy topology
  (collect, store, sample, learn, publish, evaluate, log), with :func:`ratio_buffer` (or
  :func:`frame_ratio_buffer`, which stores each frame of stacked observations once) as its
  replay buffer; it returns an :class:`OffPolicyGraph`.
* :func:`build_offline_graph`: learn from a fixed dataset (a filled replay buffer), publish,
  evaluate online and log; it returns an :class:`OfflineGraph`.
"""

from streamrl.ops.batched_policy_server import BatchedPolicyServer
from streamrl.ops.complete_trajectories import CompleteTrajectories
from streamrl.ops.env_source import EnvSource
from streamrl.ops.evaluator import EpisodeStats, Evaluator, evaluate_episodes, play_episodes
from streamrl.ops.gradient_step import GradientStep
from streamrl.ops.last_row import LastRow
from streamrl.ops.learner import Learner
from streamrl.ops.metrics_logger import (
    MetricsLogger,
    check_run_logger,
    default_run_logger,
    read_metrics,
    run_logger,
    run_metrics_logger,
)
from streamrl.ops.metrics_sink import MetricsSink
from streamrl.ops.offline import OfflineGraph, build_offline_graph
from streamrl.ops.offpolicy import (
    OffPolicyGraph,
    build_offpolicy_graph,
    frame_ratio_buffer,
    min_policy_lag,
    ratio_buffer,
    ratio_limiter,
)
from streamrl.ops.pacer import Pacer
from streamrl.ops.policy_stage import PolicyStage
from streamrl.ops.policy_weights import PolicyWeights
from streamrl.ops.replay import ReplaySink, ReplaySource
from streamrl.ops.replay_draws import ReplayDraws
from streamrl.ops.rollout import Rollout, make_env
from streamrl.ops.sample_budget import sample_budget
from streamrl.ops.segment_batcher import SegmentBatcher
from streamrl.ops.stack import StackBatches
from streamrl.ops.trajectory_batcher import TrajectoryBatcher
from streamrl.ops.transition_batcher import TransitionBatcher
from streamrl.ops.trigger import Trigger
from streamrl.ops.weight_sync import WeightSync
from streamrl.ops.weights_source import WeightsSource, WeightsToken

__all__ = [
    "BatchedPolicyServer",
    "CompleteTrajectories",
    "EnvSource",
    "EpisodeStats",
    "Evaluator",
    "GradientStep",
    "LastRow",
    "Learner",
    "MetricsLogger",
    "MetricsSink",
    "OffPolicyGraph",
    "OfflineGraph",
    "Pacer",
    "PolicyStage",
    "PolicyWeights",
    "ReplayDraws",
    "ReplaySink",
    "ReplaySource",
    "Rollout",
    "SegmentBatcher",
    "StackBatches",
    "TrajectoryBatcher",
    "TransitionBatcher",
    "Trigger",
    "WeightSync",
    "WeightsSource",
    "WeightsToken",
    "build_offline_graph",
    "build_offpolicy_graph",
    "check_run_logger",
    "default_run_logger",
    "evaluate_episodes",
    "frame_ratio_buffer",
    "make_env",
    "min_policy_lag",
    "play_episodes",
    "ratio_buffer",
    "ratio_limiter",
    "read_metrics",
    "run_logger",
    "run_metrics_logger",
    "sample_budget",
]
