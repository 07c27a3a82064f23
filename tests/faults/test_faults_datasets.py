"""Offline datasets under bad input and interruptions: a clear error naming the field, the
expected and the found, and no partial cache left behind (a killed conversion included)."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from streamrl.data.datasets import D4RLExperienceReplay, MinariExperienceReplay
from streamrl.envs.libs.gym import GymEnv
from tests.data.datasets.dataset_support import (
    make_minari,
    pendulum_episodes,
    use_private_roots,
    write_d4rl,
)


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    return use_private_roots(tmp_path, monkeypatch)


def _files(root):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_unknown_minari_id(minari_root, tmp_path):
    make_minari("pendulum/random-v0", pendulum_episodes(), env="Pendulum-v1")
    with pytest.raises(ValueError, match=r"unknown dataset id 'pendulum/expert-v0': expected a "
                       r"local Minari dataset .* \(local datasets: \['pendulum/random-v0'\]\)"):
        MinariExperienceReplay("pendulum/expert-v0", batch_size=2)
    assert _files(tmp_path / "cache") == []


def test_unknown_d4rl_id(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset id 'halfcheetah-medium-v2'.*does not "
                       r"download"):
        D4RLExperienceReplay("halfcheetah-medium-v2", batch_size=2, root=tmp_path)


def test_minari_observations_not_matching_the_space(minari_root, tmp_path):
    episodes = pendulum_episodes()
    # the declared observation space has 4 dims; the episodes hold 3
    make_minari("pendulum/bad-v0", episodes,
                observation_space=gym.spaces.Box(-1, 1, (4,), np.float32),
                action_space=gym.spaces.Box(-2, 2, (1,), np.float32))
    with pytest.raises(ValueError, match=r"episode 0, field 'observations': expected shape "
                       r"\[6, 4\] .*found \[6, 3\]"):
        MinariExperienceReplay("pendulum/bad-v0", batch_size=2)
    assert _files(tmp_path / "cache") == []


def test_minari_dataset_not_matching_the_env(minari_root):
    make_minari("pendulum/random-v0", pendulum_episodes(), env="Pendulum-v1")
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=2)
    data.check_env(GymEnv("Pendulum-v1"))  # a streamrl env: its specs are compared
    with pytest.raises(ValueError, match=r"dataset field 'observation' does not match the env: "
                       r"expected shape \[4\] and torch.float32 .*found shape \[3\]"):
        data.check_env(gym.make("CartPole-v1"))

    class Spaces:  # same observations, discrete actions
        observation_space = gym.make("Pendulum-v1").observation_space
        action_space = gym.spaces.Discrete(3)

    with pytest.raises(ValueError, match=r"dataset field 'action' does not match the env: "
                       r"expected shape \[\] and torch.int64 .*found shape \[1\] and "
                       r"torch.float32"):
        data.check_env(Spaces())


def test_truncated_minari_file(minari_root, tmp_path):
    make_minari("pendulum/random-v0", pendulum_episodes(), env="Pendulum-v1")
    h5 = minari_root / "pendulum" / "random-v0" / "data" / "main_data.hdf5"
    os.truncate(h5, h5.stat().st_size // 2)
    with pytest.raises(ValueError, match=r"pendulum/random-v0.*(truncated|cannot read)"):
        MinariExperienceReplay("pendulum/random-v0", batch_size=2)
    assert _files(tmp_path / "cache") == []


def test_truncated_hdf5(tmp_path):
    path = tmp_path / "toy.hdf5"
    write_d4rl(path, n=2000)
    size = path.stat().st_size
    os.truncate(path, size // 2)
    with pytest.raises(ValueError, match=rf"truncated HDF5 file: expected {size} bytes .*found "
                       rf"{size // 2}"):
        D4RLExperienceReplay(path, batch_size=2, root=tmp_path / "cache")
    assert _files(tmp_path / "cache") == []


def test_hdf5_without_terminal_flags(tmp_path):
    path = tmp_path / "toy.hdf5"
    write_d4rl(path, drop=("terminals",))
    with pytest.raises(ValueError, match=r"no terminal flags: expected D4RL's fields .*field "
                       r"'terminals' is missing"):
        D4RLExperienceReplay(path, batch_size=2, root=tmp_path / "cache")
    assert _files(tmp_path / "cache") == []


def test_hdf5_fields_of_different_lengths(tmp_path):
    import h5py

    path = tmp_path / "toy.hdf5"
    write_d4rl(path, n=20)
    with h5py.File(path, "a") as f:
        del f["actions"]
        f.create_dataset("actions", data=np.zeros((19, 2), np.float32))
    with pytest.raises(ValueError, match=r"field 'actions': expected 20 rows \(as "
                       r"'observations'\), found shape \[19, 2\]"):
        D4RLExperienceReplay(path, batch_size=2, root=tmp_path / "cache")


def test_an_interrupted_conversion_leaves_no_cache(tmp_path, monkeypatch):
    import streamrl.data.datasets.d4rl as d4rl

    path = tmp_path / "toy.hdf5"
    write_d4rl(path, n=40)
    monkeypatch.setattr(d4rl, "_CHUNK_ROWS", 8)
    real = d4rl._chunks

    def interrupted(*args):
        for i, chunk in enumerate(real(*args)):
            if i == 2:
                raise KeyboardInterrupt
            yield chunk

    monkeypatch.setattr(d4rl, "_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        D4RLExperienceReplay(path, batch_size=2, root=tmp_path / "cache")
    assert _files(tmp_path / "cache") == []
    monkeypatch.setattr(d4rl, "_chunks", real)
    assert len(D4RLExperienceReplay(path, batch_size=2, root=tmp_path / "cache")) == 39


def test_unsupported_torchrl_arguments(tmp_path):
    path = tmp_path / "toy.hdf5"
    write_d4rl(path)
    for kwargs, match in (({"from_env": True}, "from_env=True"),
                          ({"direct_download": False}, "direct_download=False"),
                          ({"terminate_on_end": False}, "terminate_on_end=False"),
                          ({"split_trajs": True}, "split_trajs=True"),
                          ({"frame_skip": 2}, r"env_kwargs .*\['frame_skip'\]")):
        with pytest.raises(ValueError, match=match):
            D4RLExperienceReplay(path, batch_size=2, root=tmp_path / "cache", **kwargs)


_KILLED_CONVERSION = """
import sys, time
import streamrl.data.datasets.d4rl as d4rl
d4rl._CHUNK_ROWS = 10
real = d4rl._chunks
def slow(*args):
    for i, chunk in enumerate(real(*args)):
        yield chunk
        if i == 1:
            print("converting", flush=True)
            time.sleep(60)
d4rl._chunks = slow
d4rl.D4RLExperienceReplay(sys.argv[1], batch_size=2, root=sys.argv[2])
"""


def test_a_killed_conversion_leaves_no_cache(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "toy.hdf5"
    write_d4rl(path, n=100)
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CONVERSION, str(path), str(cache)],
                            stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout.readline().strip() == "converting"
        assert list(cache.glob(".toy.tmp-*"))  # half written, under a temporary name
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert not (cache / "toy").exists()
    with pytest.raises(FileNotFoundError, match="download=False"):
        D4RLExperienceReplay(path, batch_size=2, root=cache, download=False)
    data = D4RLExperienceReplay(path, batch_size=2, root=cache)
    assert len(data) == 99
    assert [p.name for p in cache.iterdir()] == ["toy"]  # the dead build was removed
