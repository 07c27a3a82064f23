"""MinariExperienceReplay over datasets written by minari itself."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch

from streamrl.data import SamplerWithoutReplacement
from streamrl.data.datasets import MinariExperienceReplay
from streamrl.data.specs import Bounded
from tests.data.datasets.dataset_support import make_minari, pendulum_episodes


@pytest.fixture
def pendulum(minari_root):
    episodes = pendulum_episodes()
    make_minari("pendulum/random-v0", episodes, env="Pendulum-v1")
    return episodes


def test_values_match_the_minari_episodes(pendulum):
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=4)
    assert len(data) == sum(len(ep.rewards) for ep in pendulum) == 16
    rows = data.storage.get(torch.arange(len(data)))
    start = 0
    for k, ep in enumerate(pendulum):
        n = len(ep.rewards)
        part = rows[start:start + n]
        np.testing.assert_array_equal(part["observation"].numpy(), ep.observations[:-1])
        np.testing.assert_array_equal(part["next", "observation"].numpy(), ep.observations[1:])
        np.testing.assert_array_equal(part["action"].numpy(), ep.actions)
        np.testing.assert_array_equal(part["next", "reward"].squeeze(-1).numpy(), ep.rewards)
        np.testing.assert_array_equal(part["next", "terminated"].squeeze(-1).numpy(),
                                      ep.terminations)
        np.testing.assert_array_equal(part["next", "truncated"].squeeze(-1).numpy(),
                                      ep.truncations)
        assert part["next", "done"].squeeze(-1).tolist() == [False] * (n - 1) + [True]
        assert (part["episode"] == k).all()
        start += n
    assert rows["next", "reward"].shape == (16, 1)
    assert rows["observation"].dtype == torch.float32
    assert rows["next", "reward"].dtype == torch.float64  # minari's dtype, kept as TorchRL does


def test_sample_has_torchrl_keys(pendulum):
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=5)
    batch = data.sample()
    assert batch.batch_size == (5,)
    assert set(batch.keys(True, True)) == {
        "observation", "action", "episode", "index",
        ("next", "observation"), ("next", "reward"), ("next", "terminated"),
        ("next", "truncated"), ("next", "done"),
    }
    # each sampled row is the stored row it names
    np.testing.assert_array_equal(batch["observation"].numpy(),
                                  data.storage.get(batch["index"])["observation"].numpy())


def test_an_epoch_without_replacement_visits_every_transition(pendulum):
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=4,
                                  sampler=SamplerWithoutReplacement())
    seen = torch.cat([data.sample()["index"] for _ in range(4)])
    assert sorted(seen.tolist()) == list(range(16))


def test_metadata_and_specs(pendulum):
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=2)
    assert data.metadata["dataset_id"] == "pendulum/random-v0"
    assert isinstance(data.specs["action"], Bounded)
    assert data.specs["observation"].shape == (3,)
    assert data.metadata["observation_space_gym"] == gym.make("Pendulum-v1").observation_space
    data.check_env(gym.make("Pendulum-v1"))  # no error


def test_extend_is_refused(pendulum):
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=2)
    with pytest.raises(RuntimeError, match="immutable"):
        data.extend(data.sample().exclude("index"))


def test_the_cache_reopens_without_the_source(pendulum, minari_root, tmp_path):
    first = MinariExperienceReplay("pendulum/random-v0", batch_size=4)
    expected = first.storage.get(torch.arange(16))
    first.close()
    os.rename(minari_root, tmp_path / "gone")  # the source is no longer there
    again = MinariExperienceReplay("pendulum/random-v0", batch_size=4)
    got = again.storage.get(torch.arange(16))
    assert (got == expected).all()
    assert again.data_path == tmp_path / "cache" / "minari" / "pendulum/random-v0"


def test_force_converts_again_and_download_false_needs_a_cache(pendulum, minari_root):
    with pytest.raises(FileNotFoundError, match="download=False"):
        MinariExperienceReplay("pendulum/random-v0", batch_size=2, download=False)
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=2)
    stamp = (data.data_path / "metadata.json").stat().st_mtime_ns
    data.close()
    again = MinariExperienceReplay("pendulum/random-v0", batch_size=2, download="force")
    assert (again.data_path / "metadata.json").stat().st_mtime_ns != stamp
    assert len(again) == 16
    assert [p.name for p in again.data_path.parent.iterdir()] == ["random-v0"]  # no temp left


def test_delete_removes_the_cache_only(pendulum, minari_root):
    data = MinariExperienceReplay("pendulum/random-v0", batch_size=2)
    data.delete()
    assert not data.data_path.exists()
    assert (minari_root / "pendulum" / "random-v0" / "data").is_dir()


def test_discrete_actions_and_dict_observations(minari_root):
    from minari.data_collector import EpisodeBuffer

    obs_space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,)),
                                 "goal": gym.spaces.Box(-1, 1, (1,))})
    act_space = gym.spaces.Discrete(3)
    n = 4
    ep = EpisodeBuffer(
        id=0, observations={"pos": np.repeat(np.arange(n + 1, dtype=np.float32)[:, None], 2, 1),
                            "goal": np.ones((n + 1, 1), np.float32)},
        actions=np.array([0, 1, 2, 1]), rewards=np.ones(n), terminations=np.eye(n)[-1] > 0,
        truncations=np.zeros(n, bool))
    make_minari("grid/dict-v0", [ep], observation_space=obs_space, action_space=act_space)
    data = MinariExperienceReplay("grid/dict-v0", batch_size=2)
    rows = data.storage.get(torch.arange(n))
    assert rows["observation", "pos"][:, 0].tolist() == [0, 1, 2, 3]
    assert rows["next", "observation", "pos"][:, 0].tolist() == [1, 2, 3, 4]
    assert rows["action"].tolist() == [0, 1, 2, 1]
    assert rows["action"].dtype == torch.int64
