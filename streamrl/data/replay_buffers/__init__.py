"""Replay buffers: storages, samplers, writers, rate limiters and loaders.

A buffer is a storage (where items live) x a writer (which slots a batch goes to) x a sampler
(which items a batch reads), behind one lock, with an optional rate limiter.
"""

from streamrl.data.replay_buffers.checkpoint import load_checkpoint, save_checkpoint
from streamrl.data.replay_buffers.loaders import ReplayDataset, ReplayNode
from streamrl.data.replay_buffers.rate_limiters import MinSize, RateLimiter, SampleToInsertRatio
from streamrl.data.replay_buffers.replay_buffer import PrioritizedReplayBuffer, ReplayBuffer
from streamrl.data.replay_buffers.samplers import (
    MinTree,
    PrioritizedSampler,
    RandomSampler,
    Sampler,
    SamplerWithoutReplacement,
    SliceSampler,
    SumTree,
)
from streamrl.data.replay_buffers.storages import (
    LazyMemmapStorage,
    LazyTensorStorage,
    ListStorage,
    Storage,
)
from streamrl.data.replay_buffers.tensordict_buffer import (
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)
from streamrl.data.replay_buffers.writers import (
    RoundRobinWriter,
    TensorDictMaxValueWriter,
    WritePlan,
    Writer,
)

__all__ = [
    "LazyMemmapStorage",
    "LazyTensorStorage",
    "ListStorage",
    "MinSize",
    "MinTree",
    "PrioritizedReplayBuffer",
    "PrioritizedSampler",
    "RandomSampler",
    "RateLimiter",
    "ReplayBuffer",
    "ReplayDataset",
    "ReplayNode",
    "RoundRobinWriter",
    "SampleToInsertRatio",
    "Sampler",
    "SamplerWithoutReplacement",
    "SliceSampler",
    "Storage",
    "SumTree",
    "TensorDictMaxValueWriter",
    "TensorDictPrioritizedReplayBuffer",
    "TensorDictReplayBuffer",
    "WritePlan",
    "Writer",
    "load_checkpoint",
    "save_checkpoint",
]
