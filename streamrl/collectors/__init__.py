"""streamrl.collectors: the seed's data collectors, each a prebuilt graph topology.

* :class:`SyncDataCollector`: ``Trigger -> Rollout``, lockstep, in this process.
* :class:`MultiSyncDataCollector`: ``Trigger -> N x Rollout (processes) -> StackBatches``.
* :class:`MultiaSyncDataCollector`: ``N x Rollout (processes)`` fanned in, free-running;
  :class:`AsyncCollector` is the same with one worker process.
* :class:`AsyncBatchedCollector`: ``N x EnvSource`` stepping independently, in a feedback
  loop with one :class:`~streamrl.ops.BatchedPolicyServer` that batches whichever are ready.

Each ends with the same tail: a post-processing Map (``storing_device``, ``split_trajs``,
``postproc``), then :class:`~streamrl.ops.CompleteTrajectories` (``trajs_per_batch``) and
:class:`~streamrl.ops.ReplaySink` (``replay_buffer``: the iterator yields ``None``, and
``start()`` runs the graph in a background thread). They take TorchRL 0.14's keyword
arguments (see :class:`SyncDataCollector`); an argument they do not implement raises
``TypeError`` naming it, before any env is built.

All iterate with ``for batch in collector`` from plain synchronous code. TorchRL 0.14's names
for the same classes work too: :class:`Collector`, :class:`MultiSyncCollector`,
:class:`MultiAsyncCollector`, :class:`BaseCollector`, and :class:`MultiCollector` (the
multi-process base: ``sync=True`` / ``sync=False`` picks the lockstep or free-running one). :func:`utils.split_trajectories` cuts a
batch into padded trajectories; :class:`RandomPolicy` acts at random;
:class:`Evaluator` plays evaluation episodes, blocking or in the background.
"""

from streamrl.collectors._base import DataCollectorBase
from streamrl.collectors.async_batched import AsyncBatchedCollector
from streamrl.collectors.evaluator import Evaluator
from streamrl.collectors.multi import (
    AsyncCollector,
    MultiaSyncDataCollector,
    MultiCollector,
    MultiSyncDataCollector,
)
from streamrl.collectors.sync import SyncDataCollector
from streamrl.collectors.utils import split_trajectories
from streamrl.envs.utils import RandomPolicy

# TorchRL 0.14's names (the seed's names above stay)
Collector = SyncDataCollector
MultiSyncCollector = MultiSyncDataCollector
MultiAsyncCollector = MultiaSyncDataCollector
BaseCollector = DataCollectorBase

__all__ = [
    "AsyncBatchedCollector",
    "AsyncCollector",
    "BaseCollector",
    "Collector",
    "DataCollectorBase",
    "Evaluator",
    "MultiAsyncCollector",
    "MultiCollector",
    "MultiSyncCollector",
    "MultiSyncDataCollector",
    "MultiaSyncDataCollector",
    "RandomPolicy",
    "SyncDataCollector",
    "split_trajectories",
]
