"""streamrl.collectors: the seed's data collectors, each a prebuilt graph topology.

* :class:`SyncDataCollector`: ``Trigger -> Rollout``, lockstep, in this process.
* :class:`MultiSyncDataCollector`: ``Trigger -> N x Rollout (processes) -> StackBatches``.
* :class:`MultiaSyncDataCollector`: ``N x Rollout (processes)`` fanned in, free-running.

All iterate with ``for batch in collector`` from plain synchronous code.
"""

from streamrl.collectors._base import DataCollectorBase
from streamrl.collectors.multi import MultiaSyncDataCollector, MultiSyncDataCollector
from streamrl.collectors.sync import SyncDataCollector

__all__ = [
    "DataCollectorBase",
    "MultiSyncDataCollector",
    "MultiaSyncDataCollector",
    "SyncDataCollector",
]
