"""Tiny local datasets: Minari ones made with minari itself, D4RL-layout HDF5 files."""

from __future__ import annotations

import warnings

import gymnasium as gym
import h5py
import minari
import numpy as np


def use_private_roots(tmp_path, monkeypatch):
    """A private ``MINARI_DATASETS_PATH`` (returned) and cache root under ``tmp_path``."""
    root = tmp_path / "minari-datasets"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    monkeypatch.setenv("STREAMRL_DATASETS_ROOT", str(tmp_path / "cache"))
    return root


def pendulum_episodes(n_episodes=3, steps=(5, 7, 4), seed=0):
    """Pendulum episodes as minari ``EpisodeBuffer``s: the last step of each truncated,
    the second episode terminated instead (a dataset needs both kinds)."""
    from minari.data_collector import EpisodeBuffer

    env = gym.make("Pendulum-v1")
    env.action_space.seed(seed)
    out = []
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        observations, actions, rewards = [obs], [], []
        n = steps[k % len(steps)]
        for _ in range(n):
            action = env.action_space.sample()
            obs, reward, _, _, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
        ended = np.zeros(n, dtype=bool)
        ended[-1] = True
        out.append(EpisodeBuffer(
            id=k, seed=seed + k, observations=np.stack(observations),
            actions=np.stack(actions), rewards=np.asarray(rewards, dtype=np.float64),
            terminations=ended if k == 1 else np.zeros(n, dtype=bool),
            truncations=np.zeros(n, dtype=bool) if k == 1 else ended,
        ))
    env.close()
    return out


def make_minari(dataset_id, episodes, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # minari asks for author, description, ...
        return minari.create_dataset_from_buffers(dataset_id, episodes, **kwargs)


def write_d4rl(path, n=50, obs_dim=3, act_dim=2, *, episode_len=10, next_obs=False,
               drop=(), infos=True, seed=0, obs_dtype=np.float32):
    """An HDF5 file in D4RL's layout: episodes of ``episode_len`` steps, the first ending
    terminated, the others by timeout."""
    rng = np.random.default_rng(seed)
    fields = {
        "observations": rng.standard_normal((n, obs_dim)).astype(obs_dtype),
        "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        "rewards": rng.standard_normal(n).astype(np.float32),
        "terminals": np.zeros(n, dtype=bool),
        "timeouts": np.zeros(n, dtype=bool),
    }
    ends = np.arange(episode_len - 1, n, episode_len)
    fields["terminals"][ends[:1]] = True
    fields["timeouts"][ends[1:]] = True
    if next_obs:
        fields["next_observations"] = rng.standard_normal((n, obs_dim)).astype(np.float32)
    if infos:
        fields["infos/qpos"] = rng.standard_normal((n, 2))
    with h5py.File(path, "w") as f:
        for key, value in fields.items():
            if key not in drop:
                f.create_dataset(key, data=value)
        f.create_dataset("metadata/algorithm", data="random")
    return {k: v for k, v in fields.items() if k not in drop}
