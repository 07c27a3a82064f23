"""Compatibility with TorchRL 0.14's ``torchrl.data.replay_buffers`` (and the same names in
``torchrl.data``): the names added for TorchRL parity, importable from both paths, built with
their documented constructor arguments, and their main methods exercised.

Names left out on purpose: ``HERReplayBuffer``/``HindsightStrategy`` (multi-task),
``RayReplayBuffer``/``RemoteTensorDictReplayBuffer`` (Ray), ``PromptGroupSampler`` (LLM).
"""

import pytest
import torch
from tensordict import TensorDict

import streamrl.data as data
import streamrl.data.replay_buffers as rbs
from streamrl.data.replay_buffers import (
    LazyTensorStorage,
    RandomSampler,
    ReplayBuffer,
    ReplayBufferEnsemble,
    RoundRobinWriter,
    SamplerEnsemble,
    StorageEnsemble,
    WriterEnsemble,
)

SURFACE = [
    "SamplerEnsemble", "StorageEnsemble", "WriterEnsemble",
]  # fmt: skip


@pytest.mark.parametrize("name", SURFACE)
def test_name_exported(name):
    assert name in rbs.__all__ and name in data.__all__
    assert getattr(rbs, name) is getattr(data, name)


def test_ensembles():
    storages = StorageEnsemble(LazyTensorStorage(10), LazyTensorStorage(10), transforms=None)
    samplers = SamplerEnsemble(
        RandomSampler(), RandomSampler(), p=None, sample_from_all=False, num_buffer_sampled=None
    )
    writers = WriterEnsemble(RoundRobinWriter(), RoundRobinWriter())
    rb = ReplayBufferEnsemble(storages=storages, samplers=samplers, writers=writers,
                              batch_size=4)
    rb[0].extend(TensorDict({"x": torch.zeros(4)}, [4]))
    rb[1].extend(TensorDict({"x": torch.ones(4)}, [4]))
    assert rb.sample().batch_size == (2, 2)
    index, _ = samplers.sample(storages, 4)
    assert [bid for bid, _ in storages.get(index)] == index["buffer_ids"].tolist()
    assert isinstance(rb[0], ReplayBuffer)
