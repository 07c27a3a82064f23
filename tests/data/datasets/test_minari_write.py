"""write_minari_dataset: what streamrl writes, minari itself reads (and streamrl again)."""

from __future__ import annotations

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from streamrl.collectors import SyncDataCollector
from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.data.datasets import MinariExperienceReplay, write_minari_dataset
from streamrl.envs.libs.gym import GymEnv


def _rollout(env_id="CartPole-v1", steps=100, seed=0):
    torch.manual_seed(seed)  # random actions come from torch's generator
    env = GymEnv(env_id)
    env.set_seed(seed)
    td = env.rollout(steps, break_when_any_done=False)
    env.close()
    return td


def _episode_bounds(td):
    ends = td["next", "done"].reshape(-1).nonzero().reshape(-1).tolist()
    starts = [0, *(e + 1 for e in ends)]
    return list(zip(starts, ends))


def test_minari_reads_what_streamrl_writes(minari_root):
    td = _rollout()
    bounds = _episode_bounds(td)
    assert len(bounds) >= 2
    seeds = list(range(len(bounds)))
    written = write_minari_dataset(td, "cartpole/streamrl-v0", env="CartPole-v1", seeds=seeds,
                                   author="streamrl tests", algorithm_name="random")
    ds = minari.load_dataset("cartpole/streamrl-v0")
    assert ds.total_episodes == written.total_episodes == len(bounds)
    assert ds.total_steps == sum(e - s + 1 for s, e in bounds)
    assert ds.env_spec.id == "CartPole-v1"
    assert set(ds.storage.metadata["author"]) == {"streamrl tests"}
    assert ds.storage.metadata["algorithm_name"] == "random"
    for ep, (s, e) in zip(ds.iterate_episodes(), bounds):
        part = td[s:e + 1]
        np.testing.assert_array_equal(ep.observations[:-1], part["observation"].numpy())
        np.testing.assert_array_equal(ep.observations[-1], part["next", "observation"][-1])
        # one-hot actions of a Discrete space are written as indices
        np.testing.assert_array_equal(ep.actions, part["action"].argmax(-1).numpy())
        np.testing.assert_array_equal(ep.rewards, part["next", "reward"].reshape(-1).numpy())
        np.testing.assert_array_equal(ep.terminations,
                                      part["next", "terminated"].reshape(-1).numpy())
        np.testing.assert_array_equal(ep.truncations,
                                      part["next", "truncated"].reshape(-1).numpy())
    meta = list(ds.storage.get_episode_metadata(range(ds.total_episodes)))
    assert [m["seed"] for m in meta] == seeds
    # the incomplete last episode of the rollout was left out
    assert bounds[-1][1] < td.batch_size[0] - 1


def test_round_trip_through_minari_and_back(minari_root):
    td = _rollout("Pendulum-v1", steps=30)
    td["next", "truncated"][9] = True  # cut the rollout into episodes of 10 steps...
    td["next", "done"][9] = True
    td["next", "truncated"][19] = True
    td["next", "done"][19] = True
    td = td[:20]
    # ...whose next observation is the following observation (a real reset would differ)
    write_minari_dataset(td, "pendulum/round-v0", env="Pendulum-v1")
    data = MinariExperienceReplay("pendulum/round-v0", batch_size=4)
    rows = data.storage.get(torch.arange(20))
    for key in ("observation", "action", ("next", "observation"), ("next", "terminated"),
                ("next", "truncated"), ("next", "done")):
        assert torch.equal(rows[key], td[key]), key
    assert torch.equal(rows["next", "reward"].to(td["next", "reward"].dtype), td["next", "reward"])
    assert rows["episode"].tolist() == [0] * 10 + [1] * 10


def test_a_replay_buffer_and_collector_batches_are_written(minari_root):
    collector = SyncDataCollector(lambda: GymEnv("CartPole-v1"), policy=None,
                                  frames_per_batch=50, total_frames=150)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(120), batch_size=8)
    for batch in collector:
        rb.extend(batch)
    collector.shutdown()
    # the storage wrapped around (150 rows into 120 slots): written oldest first
    ds = write_minari_dataset(rb, "cartpole/from-rb-v0", env="CartPole-v1")
    rows = rb.storage.get((torch.arange(120) + rb.storage.head) % 120)
    ids = rows["collector", "traj_ids"]
    complete = [t for t in dict.fromkeys(ids.tolist())
                if bool(rows["next", "done"][ids == t][-1])]
    assert ds.total_episodes == len(complete) > 0
    first = rows[ids == complete[0]]
    episode = next(iter(minari.load_dataset("cartpole/from-rb-v0").iterate_episodes()))
    np.testing.assert_array_equal(episode.observations[:-1], first["observation"].numpy())


def test_incomplete_episodes_truncated_on_request(minari_root):
    td = _rollout()
    ds = write_minari_dataset(td, "cartpole/all-v0", env="CartPole-v1", drop_incomplete=False)
    assert ds.total_steps == 100
    last = list(ds.iterate_episodes())[-1]
    assert bool(last.truncations[-1])


def test_batches_of_several_envs(minari_root):
    rows = torch.stack([_rollout(steps=40, seed=s) for s in (0, 1)])  # [envs=2, T=40]
    ds = write_minari_dataset(rows, "cartpole/two-envs-v0", env="CartPole-v1")
    per_env = [len(_episode_bounds(rows[i])) for i in range(2)]
    assert ds.total_episodes == sum(per_env)


def test_nothing_is_left_behind_on_failure(minari_root, monkeypatch):
    from minari.dataset._storages.hdf5_storage import HDF5Storage

    td = _rollout()
    with pytest.raises(ValueError, match="field 'observation': expected shape"):
        write_minari_dataset(td, "cartpole/bad-v0", env="Pendulum-v1")
    assert list(minari_root.iterdir()) == []

    def fail(self, episodes):
        raise OSError("disk full")

    monkeypatch.setattr(HDF5Storage, "update_episodes", fail)
    with pytest.raises(OSError, match="disk full"):
        write_minari_dataset(td, "cartpole/bad-v0", env="CartPole-v1")
    assert [p.name for p in minari_root.iterdir()] == ["cartpole"]
    assert list((minari_root / "cartpole").iterdir()) == []
    assert "cartpole/bad-v0" not in minari.list_local_datasets()


def test_bad_input_is_named(minari_root):
    td = _rollout()
    with pytest.raises(ValueError, match="no terminal flags"):
        write_minari_dataset(td.exclude(("next", "terminated"), ("next", "done")),
                             "cartpole/x-v0", env="CartPole-v1")
    shuffled = td[torch.randperm(td.batch_size[0], generator=torch.Generator().manual_seed(0))]
    shuffled["next", "done"][:] = False
    shuffled["next", "terminated"][:] = False
    shuffled["next", "truncated"][:] = False
    with pytest.raises(ValueError, match="not consecutive steps"):
        write_minari_dataset(shuffled, "cartpole/x-v0", env="CartPole-v1",
                             drop_incomplete=False)
    with pytest.raises(ValueError, match="seeds: expected one per written episode"):
        write_minari_dataset(td, "cartpole/x-v0", env="CartPole-v1", seeds=[1])
    with pytest.raises(ValueError, match="expected env= or both"):
        write_minari_dataset(td, "cartpole/x-v0")
    write_minari_dataset(td, "cartpole/x-v0", env="CartPole-v1")
    with pytest.raises(ValueError, match="already exists"):
        write_minari_dataset(td, "cartpole/x-v0", env="CartPole-v1")
    tiny = TensorDict({"observation": torch.zeros(2, 4)}, [2])
    with pytest.raises(ValueError, match="no terminal flags"):
        write_minari_dataset(tiny, "cartpole/y-v0", observation_space=gym.spaces.Box(-1, 1, (4,)),
                             action_space=gym.spaces.Discrete(2))


def test_dict_observations_round_trip(minari_root):
    obs_space = gym.spaces.Dict({"pos": gym.spaces.Box(-9, 9, (2,)),
                                 "goal": gym.spaces.Box(-9, 9, (1,))})
    n = 6
    pos = torch.arange(n + 1, dtype=torch.float32)[:, None].repeat(1, 2)
    goal = torch.ones(n + 1, 1)
    td = TensorDict({
        "observation": {"pos": pos[:-1], "goal": goal[:-1]},
        "action": torch.tensor([0, 1, 2, 1, 0, 2]),
        "next": {"observation": {"pos": pos[1:], "goal": goal[1:]},
                 "reward": torch.ones(n, 1), "terminated": torch.arange(n)[:, None] == n - 1},
    }, [n])
    write_minari_dataset(td, "grid/dict-v0", observation_space=obs_space,
                         action_space=gym.spaces.Discrete(3))
    episode = next(iter(minari.load_dataset("grid/dict-v0").iterate_episodes()))
    np.testing.assert_array_equal(episode.observations["pos"], pos.numpy())
    back = MinariExperienceReplay("grid/dict-v0", batch_size=2).storage.get(torch.arange(n))
    assert torch.equal(back["next", "observation", "pos"], pos[1:])
    assert torch.equal(back["observation", "goal"], goal[:-1])
    with pytest.raises(ValueError, match=r"field 'observation': expected the keys of the Dict "
                       r"space \['goal', 'pos'\], found \['pos'\]"):
        write_minari_dataset(td.exclude(("observation", "goal"), ("next", "observation", "goal")),
                             "grid/dict-v1", observation_space=obs_space,
                             action_space=gym.spaces.Discrete(3))
