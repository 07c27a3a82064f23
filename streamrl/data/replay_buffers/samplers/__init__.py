"""Samplers: which stored items a batch reads (uniform, epochs, prioritized, slices)."""

from streamrl.data.replay_buffers.samplers.base import Sampler
from streamrl.data.replay_buffers.samplers.consuming import ConsumingSampler
from streamrl.data.replay_buffers.samplers.ensemble import SamplerEnsemble
from streamrl.data.replay_buffers.samplers.prioritized import PrioritizedSampler
from streamrl.data.replay_buffers.samplers.prioritized_slice import PrioritizedSliceSampler
from streamrl.data.replay_buffers.samplers.random_sampler import RandomSampler
from streamrl.data.replay_buffers.samplers.slice_sampler import SliceSampler
from streamrl.data.replay_buffers.samplers.slice_without_replacement import (
    SliceSamplerWithoutReplacement,
)
from streamrl.data.replay_buffers.samplers.staleness import StalenessAwareSampler
from streamrl.data.replay_buffers.samplers.streaming_slice import StreamingSliceSampler
from streamrl.data.replay_buffers.samplers.sum_tree import MinTree, SumTree
from streamrl.data.replay_buffers.samplers.window import WindowSampler
from streamrl.data.replay_buffers.samplers.without_replacement import SamplerWithoutReplacement

__all__ = [
    "ConsumingSampler",
    "MinTree",
    "PrioritizedSampler",
    "PrioritizedSliceSampler",
    "RandomSampler",
    "Sampler",
    "SamplerEnsemble",
    "SamplerWithoutReplacement",
    "SliceSampler",
    "SliceSamplerWithoutReplacement",
    "StalenessAwareSampler",
    "StreamingSliceSampler",
    "SumTree",
    "WindowSampler",
]
