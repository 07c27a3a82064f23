"""D4RLExperienceReplay over HDF5 files in D4RL's layout."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch

from streamrl.data.datasets import D4RLExperienceReplay
from tests.data.datasets.dataset_support import write_d4rl


@pytest.fixture
def root(tmp_path):
    return tmp_path / "cache"


def test_transitions_from_consecutive_observations(tmp_path, root):
    src = write_d4rl(tmp_path / "toy-v0.hdf5", n=30, episode_len=10)
    data = D4RLExperienceReplay(str(tmp_path / "toy-v0.hdf5"), batch_size=4, root=root)
    assert data.dataset_id == "toy-v0"
    assert len(data) == 29  # the last row has no next observation
    rows = data.storage.get(torch.arange(29))
    obs = src["observations"]
    np.testing.assert_array_equal(rows["observation"].numpy(), obs[:29])
    np.testing.assert_array_equal(rows["action"].numpy(), src["actions"][:29])
    np.testing.assert_array_equal(rows["next", "reward"].squeeze(-1).numpy(), src["rewards"][:29])
    done = rows["next", "done"].squeeze(-1)
    assert done.nonzero().reshape(-1).tolist() == [9, 19]
    assert rows["next", "terminated"].squeeze(-1).nonzero().reshape(-1).tolist() == [9]
    assert rows["next", "truncated"].squeeze(-1).nonzero().reshape(-1).tolist() == [19]
    # next observation: the following row's, zeroed where the episode ended
    expected_next = obs[1:30].copy()
    expected_next[[9, 19]] = 0
    np.testing.assert_array_equal(rows["next", "observation"].numpy(), expected_next)
    # root flags and reward are the previous step's (TorchRL's layout)
    assert rows["done"].squeeze(-1).nonzero().reshape(-1).tolist() == [10, 20]
    assert rows["reward"][0].item() == 0
    np.testing.assert_array_equal(rows["reward"][1:].squeeze(-1).numpy(), src["rewards"][:28])
    np.testing.assert_array_equal(rows["info", "qpos"].numpy(), src["infos/qpos"][:29])
    np.testing.assert_array_equal(rows["next", "info", "qpos"].numpy(), src["infos/qpos"][1:30])
    assert data.metadata["metadata"] == {"algorithm": "random"}


def test_next_observations_keep_every_row(tmp_path, root):
    src = write_d4rl(tmp_path / "nxt.hdf5", n=20, next_obs=True)
    data = D4RLExperienceReplay(tmp_path / "nxt.hdf5", batch_size=4, root=root)
    rows = data.storage.get(torch.arange(20))
    assert len(data) == 20
    np.testing.assert_array_equal(rows["next", "observation"].numpy(), src["next_observations"])


def test_chunks_join_without_seams(tmp_path, root, monkeypatch):
    import streamrl.data.datasets.d4rl as d4rl

    monkeypatch.setattr(d4rl, "_CHUNK_ROWS", 7)  # rows cross chunk borders
    src = write_d4rl(tmp_path / "seams.hdf5", n=40, episode_len=6)
    rows = D4RLExperienceReplay(tmp_path / "seams.hdf5", batch_size=4, root=root).storage.get(
        torch.arange(39))
    monkeypatch.setattr(d4rl, "_CHUNK_ROWS", 1 << 16)
    whole = D4RLExperienceReplay(tmp_path / "seams.hdf5", batch_size=4, root=root / "b")
    assert (whole.storage.get(torch.arange(39)) == rows).all()
    np.testing.assert_array_equal(rows["reward"][1:].squeeze(-1).numpy(), src["rewards"][:38])


def test_reopens_without_the_file_and_reconverts_a_changed_one(tmp_path, root):
    path = tmp_path / "toy.hdf5"
    write_d4rl(path, n=30)
    first = D4RLExperienceReplay(path, batch_size=4, root=root)
    expected = first.storage.get(torch.arange(29))
    first.close()
    os.rename(path, tmp_path / "moved.hdf5")
    again = D4RLExperienceReplay("toy", batch_size=4, root=root)  # by name: the cache
    assert (again.storage.get(torch.arange(29)) == expected).all()
    again.close()
    write_d4rl(path, n=40, seed=1)  # a new file under the old name
    changed = D4RLExperienceReplay(path, batch_size=4, root=root)
    assert len(changed) == 39


def test_check_env(tmp_path, root):
    write_d4rl(tmp_path / "toy.hdf5", obs_dim=3, act_dim=1)
    data = D4RLExperienceReplay(tmp_path / "toy.hdf5", batch_size=4, root=root)
    data.check_env(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match=r"dataset field 'observation' does not match the env: "
                       r"expected shape \[4\] .*found shape \[3\]"):
        data.check_env(gym.make("CartPole-v1"))


def test_float64_fields_are_read_as_float32_after_cast_float64(tmp_path, root):
    write_d4rl(tmp_path / "toy.hdf5", obs_dim=3, act_dim=1, obs_dtype=np.float64)
    data = D4RLExperienceReplay(tmp_path / "toy.hdf5", batch_size=4, root=root)
    with pytest.raises(ValueError, match=r"'observation' does not match the env: expected "
                       r"shape \[3\] and torch.float32 .*found shape \[3\] and torch.float64"):
        data.check_env(gym.make("Pendulum-v1"))
    assert data.sample()["observation"].dtype == torch.float64
    assert data.cast_float64() is data.cast_float64()  # idempotent: one cast
    data.check_env(gym.make("Pendulum-v1"))  # no error
    batch = data.sample()
    assert batch["observation"].dtype == batch["next", "observation"].dtype == torch.float32
    assert batch["next", "done"].dtype == torch.bool and batch["index"].dtype == torch.int64
    stored = data.storage.get(batch["index"])
    assert stored["observation"].dtype == torch.float64  # the cache keeps its dtypes
    torch.testing.assert_close(batch["observation"], stored["observation"].float())
    data.close()


def test_sampling_reads_the_stored_rows(tmp_path, root):
    write_d4rl(tmp_path / "toy.hdf5", n=30)
    data = D4RLExperienceReplay(tmp_path / "toy.hdf5", batch_size=6, root=root)
    batch = data.sample()
    assert batch.batch_size == (6,)
    assert (batch.exclude("index") == data.storage.get(batch["index"])).all()


def test_use_truncated_as_done(tmp_path, root):
    path = tmp_path / "toy.hdf5"
    write_d4rl(path, n=30, episode_len=10)
    data = D4RLExperienceReplay(path, batch_size=4, root=root, use_truncated_as_done=False)
    done = data.storage.get(torch.arange(29))["next", "done"].squeeze(-1)
    assert done.nonzero().reshape(-1).tolist() == [9]  # the timeout at 19 is not done
    data.close()
    with pytest.raises(ValueError, match="built with use_truncated_as_done=False, found "
                       "use_truncated_as_done=True"):
        D4RLExperienceReplay("toy", batch_size=4, root=root)
    # with the file, a different setting converts again
    again = D4RLExperienceReplay(path, batch_size=4, root=root)
    done = again.storage.get(torch.arange(29))["next", "done"].squeeze(-1)
    assert done.nonzero().reshape(-1).tolist() == [9, 19]
