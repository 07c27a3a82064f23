"""Compatibility with TorchRL 0.14's ``torchrl.collectors``: every name listed here imports
from the same path under ``streamrl``, and its documented constructor and main method work.
Names of the module that streamrl does not provide are listed in docs/torchrl_differences.md."""

import importlib

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

PROVIDED = {
    "torchrl.collectors": [
        "AsyncBatchedCollector", "AsyncCollector", "BaseCollector", "Collector", "Evaluator",
        "MultiAsyncCollector", "MultiCollector", "MultiSyncCollector", "RandomPolicy",
    ],
}


@pytest.mark.parametrize("path", sorted(PROVIDED))
def test_names_import_from_the_same_path(path):
    module = importlib.import_module(path.replace("torchrl", "streamrl", 1))
    for name in PROVIDED[path]:
        assert getattr(module, name).__doc__, f"{path}.{name} has no docstring"


def test_async_batched_collector_with_documented_arguments():
    from streamrl.collectors import AsyncBatchedCollector
    from streamrl.envs import GymEnv

    policy = TensorDictModule(nn.Linear(4, 2), in_keys=["observation"], out_keys=["action"])
    collector = AsyncBatchedCollector(
        create_env_fn=[lambda: GymEnv("CartPole-v1")] * 2,
        policy=policy,
        frames_per_batch=20,
        total_frames=40,
        max_batch_size=2,
        min_batch_size=1,
        server_timeout=0.01,
        env_backend="threading",
    )
    shapes = [batch.shape for batch in collector]
    collector.update_policy_weights_(policy)
    collector.shutdown()
    assert shapes == [torch.Size([20])] * 2
