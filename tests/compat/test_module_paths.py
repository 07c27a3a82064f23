"""TorchRL 0.14's submodule paths that users (and TorchRL's own tests) import from: each is a
namespace over the package's objects, the same objects, with docstrings."""

from __future__ import annotations

import importlib

import pytest

PATHS = {
    "streamrl.modules.tensordict_module.actors": ("streamrl.modules", ["ProbabilisticActor",
                                                                        "QValueActor", "Actor"]),
    "streamrl.modules.tensordict_module.common": ("streamrl.modules", ["SafeModule"]),
    "streamrl.modules.tensordict_module.probabilistic": ("streamrl.modules",
                                                         ["SafeProbabilisticModule"]),
    "streamrl.modules.tensordict_module.sequence": ("streamrl.modules", ["SafeSequential"]),
    "streamrl.modules.tensordict_module.exploration": ("streamrl.modules", ["EGreedyModule"]),
    "streamrl.modules.tensordict_module.rnn": ("streamrl.modules", ["LSTMModule", "GRUModule"]),
    "streamrl.envs.transforms.transforms": ("streamrl.envs", ["Compose", "StepCounter",
                                                              "TransformedEnv"]),
    "streamrl.data.postprocs.postprocs": ("streamrl.data.postprocs", ["MultiStep"]),
    "streamrl.data.replay_buffers.checkpointers": ("streamrl.data", ["TensorStorageCheckpointer"]),
    "streamrl.data.replay_buffers.replay_buffers": ("streamrl.data", ["ReplayBuffer",
                                                                      "TensorDictReplayBuffer"]),
    "streamrl.data.replay_buffers.scheduler": ("streamrl.data", [
        "LinearScheduler", "StepScheduler", "SchedulerList", "LambdaScheduler",
        "ParameterScheduler"]),
    "streamrl.modules.models.exploration": ("streamrl.modules", ["NoisyLinear"]),
    "streamrl.modules.models.multiagent": ("streamrl.modules", [
        "MultiAgentMLP", "MultiAgentConvNet", "QMixer", "VDNMixer"]),
    "streamrl.objectives.multiagent": ("streamrl.objectives", ["QMixerLoss"]),
    "streamrl.objectives.multiagent.qmixer": ("streamrl.objectives", ["QMixerLoss"]),
    "streamrl.objectives.value.advantages": ("streamrl.objectives.value", ["GAE", "TD0Estimator"]),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_submodule_path_reexports_the_package_objects(path):
    module = importlib.import_module(path)
    package_name, expected = PATHS[path]
    package = importlib.import_module(package_name)
    assert set(expected) <= set(module.__all__)
    for name in module.__all__:
        obj = getattr(module, name)
        assert obj.__doc__, f"{path}.{name} has no docstring"
        if hasattr(package, name):
            assert obj is getattr(package, name), f"{path}.{name} is another object"
