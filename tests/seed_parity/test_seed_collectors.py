"""The seed tutorial's "Collectors" section, with torchrl replaced by streamrl."""

from __future__ import annotations

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.collectors import MultiaSyncDataCollector, MultiSyncDataCollector
from streamrl.envs import EnvCreator, SerialEnv
from streamrl.envs.libs.gym import GymEnv

_KEYS = {
    ("action",): (torch.float32, (1,)),
    ("done",): (torch.bool, (1,)),
    ("terminated",): (torch.bool, (1,)),
    ("truncated",): (torch.bool, (1,)),
    ("observation",): (torch.float32, (3,)),
    ("next", "done"): (torch.bool, (1,)),
    ("next", "observation"): (torch.float32, (3,)),
    ("next", "reward"): (torch.float32, (1,)),
    ("next", "terminated"): (torch.bool, (1,)),
    ("next", "truncated"): (torch.bool, (1,)),
    ("collector", "traj_ids"): (torch.int64, ()),
}


def _check(d, batch_size):
    assert d.batch_size == torch.Size(batch_size)
    assert d.device == torch.device("cpu")
    for key, (dtype, shape) in _KEYS.items():
        value = d.get(key)
        assert value.dtype == dtype, key
        assert value.shape == torch.Size([*batch_size, *shape]), key
    assert d["collector"].batch_size == torch.Size(batch_size)


def _seed_objects():
    parallel_env = SerialEnv(3, EnvCreator(lambda: GymEnv("Pendulum-v1")))
    create_env_fn = [parallel_env, parallel_env]
    actor_module = nn.Linear(3, 1)
    actor = TensorDictModule(actor_module, in_keys=["observation"], out_keys=["action"])
    return create_env_fn, actor


def test_seed_multisync_collector():
    create_env_fn, actor = _seed_objects()
    devices = ["cpu", "cpu"]
    collector = MultiSyncDataCollector(
        create_env_fn=create_env_fn,
        policy=actor,
        total_frames=240,
        max_frames_per_traj=-1,
        frames_per_batch=60,
        device=devices,
    )
    for i, d in enumerate(collector):
        if i == 0:
            _check(d, (2, 3, 10))  # trajectories split in [2 workers x 3 envs x 10 steps]
        collector.update_policy_weights_()
    assert i == 3
    collector.shutdown()
    del collector


def test_seed_multiasync_collector():
    create_env_fn, actor = _seed_objects()
    devices = ["cpu", "cpu"]
    collector = MultiaSyncDataCollector(
        create_env_fn=create_env_fn,
        policy=actor,
        total_frames=240,
        max_frames_per_traj=-1,
        frames_per_batch=60,
        device=devices,
    )
    for i, d in enumerate(collector):
        if i == 0:
            _check(d, (3, 20))
        collector.update_policy_weights_()
    assert i == 3
    collector.shutdown()
    del collector
