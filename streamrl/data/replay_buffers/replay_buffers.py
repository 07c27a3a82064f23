"""TorchRL's ``torchrl.data.replay_buffers.replay_buffers`` path: the names of :mod:`streamrl.data.replay_buffers` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.data.replay_buffers.replay_buffers import PrioritizedReplayBuffer
"""

from streamrl.data.replay_buffers import (
    PrioritizedReplayBuffer,
    ReplayBuffer,
    ReplayBufferEnsemble,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)

__all__ = [
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "ReplayBufferEnsemble",
    "TensorDictPrioritizedReplayBuffer",
    "TensorDictReplayBuffer",
]
