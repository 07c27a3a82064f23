"""streamrl.ops: RL operators for the dataflow graph.

Where the layers meet: env sources, policy stages, batchers and replay-buffer sinks and
sources, built on :mod:`streamrl.graph` operators.

* :class:`Rollout`: env + policy in one source operator, one ``[envs, T]`` batch per message
  (the building block of the collectors, placeable in a worker process).
* :class:`EnvSource` + :class:`PolicyStage` + :class:`TrajectoryBatcher`: the same work as a
  feedback cycle, for topologies where one policy stage serves several env sources.
* :class:`ReplaySink` / :class:`ReplaySource`: extend a buffer / sample from it.
* :class:`PolicyWeights`: shared policy weights with a version counter.
* :class:`Trigger`, :class:`StackBatches`: pace a graph from outside; zip N batches into one.
"""

from streamrl.ops.env_source import EnvSource
from streamrl.ops.policy_stage import PolicyStage
from streamrl.ops.policy_weights import PolicyWeights
from streamrl.ops.replay import ReplaySink, ReplaySource
from streamrl.ops.rollout import Rollout, make_env
from streamrl.ops.stack import StackBatches
from streamrl.ops.trajectory_batcher import TrajectoryBatcher
from streamrl.ops.trigger import Trigger

__all__ = [
    "EnvSource",
    "PolicyStage",
    "PolicyWeights",
    "ReplaySink",
    "ReplaySource",
    "Rollout",
    "StackBatches",
    "TrajectoryBatcher",
    "Trigger",
    "make_env",
]
