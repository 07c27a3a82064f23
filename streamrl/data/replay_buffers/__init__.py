"""Replay buffers: storages, samplers, writers, rate limiters and loaders.

A buffer is a storage (where items live) x a writer (which slots a batch goes to) x a sampler
(which items a batch reads), behind one lock, with an optional rate limiter.

>>> import torch
>>> from tensordict import TensorDict
>>> rb = TensorDictPrioritizedReplayBuffer(
...     alpha=0.7, beta=0.5, storage=LazyTensorStorage(1000), batch_size=4)
>>> _ = rb.extend(TensorDict({"obs": torch.zeros(8, 3)}, batch_size=[8]))
>>> batch = rb.sample()  # carries "index" and "_weight"
>>> batch["td_error"] = torch.rand(4)
>>> rb.update_tensordict_priority(batch)

- Loaders: ``torch.utils.data.DataLoader(rb, batch_size=None)`` (endless, or one epoch with
  :class:`SamplerWithoutReplacement`), ``rb.as_dataset(num_batches)``, and ``rb.as_node()``
  for ``torchdata.nodes`` (``Loader`` checkpoints resume exactly).
- Rate limiters: ``ReplayBuffer(..., rate_limiter=SampleToInsertRatio(...))`` makes
  ``extend``/``sample`` block (``aextend``/``asample`` await); the same limiter objects gate
  the graph's rate-limited edges (``acquire_insert`` / ``acquire_sample``).
- Offline-to-online: :class:`OfflineToOnlineReplayBuffer` samples a fixed dataset and the
  rows collected since in a set proportion.
- Hindsight: :class:`HERReplayBuffer` relabels goal-conditioned rows with goals achieved
  later in their episode (:class:`HindsightStrategy`).
- Remote: ``RayReplayBuffer(storage=partial(LazyTensorStorage, N), ...)`` (or
  ``ReplayBuffer(..., service_backend="ray")``) serves the buffer from a Ray actor;
  ``rb.client()`` hands picklable read/write handles to writer and learner actors.
- Checkpoints: ``rb.dumps(path)`` / ``rb.loads(path)``: one file, written atomically, read
  with ``torch.load(weights_only=True)``; or, with a storage checkpointer
  (``storage.checkpointer = FlatStorageCheckpointer()``, or ``rb.register_save_hook(...)``),
  a directory whose ``storage/`` the checkpointer writes (e.g. TED data in a compact layout).
"""

from streamrl.data.replay_buffers.checkpoint import load_checkpoint, save_checkpoint
from streamrl.data.replay_buffers.ensemble import ReplayBufferEnsemble
from streamrl.data.replay_buffers.her import HERReplayBuffer, HindsightStrategy
from streamrl.data.replay_buffers.loaders import ReplayDataset, ReplayNode
from streamrl.data.replay_buffers.offline_to_online import OfflineToOnlineReplayBuffer
from streamrl.data.replay_buffers.prefill import prefill_replay_buffer
from streamrl.data.replay_buffers.rate_limiters import MinSize, RateLimiter, SampleToInsertRatio
from streamrl.data.replay_buffers.ray_buffer import RayReplayBuffer, ReplayActorDiedError
from streamrl.data.replay_buffers.replay_buffer import PrioritizedReplayBuffer, ReplayBuffer
from streamrl.data.replay_buffers.samplers import (
    ConsumingSampler,
    MinTree,
    PrioritizedSampler,
    PrioritizedSliceSampler,
    RandomSampler,
    Sampler,
    SamplerEnsemble,
    SamplerWithoutReplacement,
    SliceSampler,
    SliceSamplerWithoutReplacement,
    StalenessAwareSampler,
    StreamingSliceSampler,
    SumTree,
    WindowSampler,
)
from streamrl.data.replay_buffers.storages import (
    CompressedListStorage,
    CompressedListStorageCheckpointer,
    FlatStorageCheckpointer,
    H5StorageCheckpointer,
    LazyMemmapStorage,
    LazyStackStorage,
    LazyTensorStorage,
    ListStorage,
    ListStorageCheckpointer,
    NestedStorageCheckpointer,
    Storage,
    StorageCheckpointerBase,
    StorageEnsemble,
    TensorStorage,
    TensorStorageCheckpointer,
)
from streamrl.data.replay_buffers.ted_layouts import (
    Flat2TED,
    H5Combine,
    H5Split,
    Nested2TED,
    TED2Flat,
    TED2Nested,
)
from streamrl.data.replay_buffers.tensordict_buffer import (
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)
from streamrl.data.replay_buffers.trajectories import (
    DEFAULT_DONE_KEYS,
    Trajectory,
    filter_trajectories,
    find_start_stop_traj,
    iter_trajectories,
)
from streamrl.data.replay_buffers.writers import (
    ImmutableDatasetWriter,
    RoundRobinWriter,
    TensorDictMaxValueWriter,
    TensorDictRoundRobinWriter,
    WritePlan,
    Writer,
    WriterEnsemble,
)

__all__ = [
    "DEFAULT_DONE_KEYS",
    "CompressedListStorage",
    "CompressedListStorageCheckpointer",
    "ConsumingSampler",
    "Flat2TED",
    "FlatStorageCheckpointer",
    "H5Combine",
    "H5Split",
    "H5StorageCheckpointer",
    "HERReplayBuffer",
    "HindsightStrategy",
    "ImmutableDatasetWriter",
    "LazyMemmapStorage",
    "LazyStackStorage",
    "LazyTensorStorage",
    "ListStorage",
    "ListStorageCheckpointer",
    "MinSize",
    "MinTree",
    "Nested2TED",
    "NestedStorageCheckpointer",
    "OfflineToOnlineReplayBuffer",
    "PrioritizedReplayBuffer",
    "PrioritizedSampler",
    "PrioritizedSliceSampler",
    "RandomSampler",
    "RateLimiter",
    "RayReplayBuffer",
    "ReplayActorDiedError",
    "ReplayBuffer",
    "ReplayBufferEnsemble",
    "ReplayDataset",
    "ReplayNode",
    "RoundRobinWriter",
    "SampleToInsertRatio",
    "Sampler",
    "SamplerEnsemble",
    "SamplerWithoutReplacement",
    "SliceSampler",
    "SliceSamplerWithoutReplacement",
    "StalenessAwareSampler",
    "Storage",
    "StorageCheckpointerBase",
    "StorageEnsemble",
    "StreamingSliceSampler",
    "SumTree",
    "TED2Flat",
    "TED2Nested",
    "TensorDictMaxValueWriter",
    "TensorDictPrioritizedReplayBuffer",
    "TensorDictReplayBuffer",
    "TensorDictRoundRobinWriter",
    "TensorStorage",
    "TensorStorageCheckpointer",
    "Trajectory",
    "WindowSampler",
    "WritePlan",
    "Writer",
    "WriterEnsemble",
    "filter_trajectories",
    "find_start_stop_traj",
    "iter_trajectories",
    "load_checkpoint",
    "prefill_replay_buffer",
    "save_checkpoint",
]
