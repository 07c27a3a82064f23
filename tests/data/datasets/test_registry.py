"""load_dataset by prefixed id, register_dataset."""

from __future__ import annotations

import pytest
import torch

from streamrl.data import LazyTensorStorage, ReplayBuffer, prefill_replay_buffer
from streamrl.data.datasets import (
    D4RLExperienceReplay,
    MinariExperienceReplay,
    load_dataset,
    register_dataset,
)
from streamrl.data.datasets import registry as registry_module
from tests.data.datasets.dataset_support import make_minari, pendulum_episodes, write_d4rl


def test_builtin_prefixes(minari_root, tmp_path):
    make_minari("pendulum/random-v0", pendulum_episodes(), env="Pendulum-v1")
    data = load_dataset("minari:pendulum/random-v0", batch_size=4)
    assert isinstance(data, MinariExperienceReplay) and len(data) == 16
    write_d4rl(tmp_path / "toy.hdf5", n=20)
    d4rl = load_dataset(f"d4rl:{tmp_path / 'toy.hdf5'}", batch_size=4, root=tmp_path / "c")
    assert isinstance(d4rl, D4RLExperienceReplay) and len(d4rl) == 19


def test_register_and_errors(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    register_dataset("Toy", "textwrap:dedent")  # imported on first use
    assert load_dataset("toy:  x") == "x"
    with pytest.raises(KeyError, match="already registered"):
        register_dataset("toy", dict)
    register_dataset("toy", lambda name, **kw: (name, kw), replace=True)
    assert load_dataset("toy:a:b", batch_size=2) == ("a:b", {"batch_size": 2})
    with pytest.raises(ValueError, match=r"unknown dataset prefix 'nope': expected one of"):
        load_dataset("nope:x")
    with pytest.raises(ValueError, match="expected '<prefix>:<id>'"):
        load_dataset("no-prefix")
    with pytest.raises(ValueError, match="'module:attribute'"):
        register_dataset("bad", "module_only")
    with pytest.raises(ValueError, match="without ':'"):
        register_dataset("a:b", dict)


def test_prefill_from_a_dataset_id(minari_root):
    make_minari("pendulum/random-v0", pendulum_episodes(), env="Pendulum-v1")
    online = ReplayBuffer(storage=LazyTensorStorage(100))
    prefill_replay_buffer(online, "minari:pendulum/random-v0", n_samples=10, chunk_size=4)
    assert len(online) == 10
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=2)
    stored = data.storage.get(torch.arange(10))
    assert torch.equal(online.storage.get(torch.arange(10))["observation"], stored["observation"])
