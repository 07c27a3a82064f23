"""streamrl.train.datasets: episodes of a policy, or a checkpoint's replay buffer, written as
Minari datasets that minari and MinariExperienceReplay read back."""

from __future__ import annotations

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from streamrl.cli import load_pipeline, resolve_pipeline
from streamrl.data.datasets import MinariExperienceReplay
from streamrl.data.replay_buffers import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.envs import GymEnv
from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.train.checkpoint_policy import (
    load_checkpoint_state,
    policy_from_checkpoint,
)
from streamrl.train.datasets import dataset_from_replay, record_dataset, replay_rows
from tests.data.datasets.dataset_support import use_private_roots
from tests.train.recording_support import tiny_checkpoint


@pytest.fixture(autouse=True)
def roots(tmp_path, monkeypatch):
    return use_private_roots(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return {name: tiny_checkpoint(name, base / name) for name in ("sac_pendulum", "td3_mujoco")}


def _actor(path):
    state = load_checkpoint_state(path)
    env = GymEnv("Pendulum-v1")
    try:
        return policy_from_checkpoint(state, env, lambda n: load_pipeline(resolve_pipeline(n)),
                                      path=path)[0]
    finally:
        env.close()


def _episodes(dataset_id):
    ds = minari.load_dataset(dataset_id)
    return ds, list(ds.iterate_episodes())


def test_random_episodes_replay_in_gym_from_their_seeds(roots):
    rec = record_dataset("Pendulum-v1", "random", 3, 7, "pendulum/random-v0")
    assert rec.path == roots / "pendulum" / "random-v0"
    assert rec.seeds == [7, 8, 9] and rec.lengths == [200, 200, 200]
    ds, episodes = _episodes("pendulum/random-v0")
    assert ds.total_episodes == 3 and ds.total_steps == 600
    assert ds.env_spec.id == "Pendulum-v1"
    meta = ds.storage.metadata
    assert meta["algorithm_name"] == "random"
    assert "uniformly random actions" in meta["description"] and "seed 7 + k" in meta["description"]
    seeds = [m["seed"] for m in ds.storage.get_episode_metadata(range(3))]
    assert seeds == [7, 8, 9]
    for ep, seed, ret in zip(episodes, seeds, rec.returns, strict=True):
        # the recorded actions, replayed from the recorded seed, give the recorded episode
        env = gym.make("Pendulum-v1")
        obs, _ = env.reset(seed=int(seed))
        np.testing.assert_array_equal(obs, ep.observations[0])
        rewards = []
        for t, action in enumerate(ep.actions):
            obs, reward, terminated, truncated, _ = env.step(action)
            np.testing.assert_allclose(obs, ep.observations[t + 1], rtol=1e-6, atol=1e-6)
            rewards.append(reward)
        assert truncated and not terminated and bool(ep.truncations[-1])
        np.testing.assert_allclose(ep.rewards, rewards, rtol=1e-5)
        assert float(ep.rewards.sum()) == pytest.approx(ret, rel=1e-5)
        # uniform actions over the whole range
        assert ep.actions.min() >= -2 and ep.actions.max() <= 2


def test_the_seed_fixes_the_random_dataset():
    a = record_dataset("Pendulum-v1", "random", 2, 3, "pd/a-v0")
    b = record_dataset("Pendulum-v1", "random", 2, 3, "pd/b-v0")
    c = record_dataset("Pendulum-v1", "random", 2, 4, "pd/c-v0")
    assert a.returns == b.returns and a.returns != c.returns
    acts = [np.concatenate([e.actions for e in _episodes(i)[1]]) for i in ("pd/a-v0", "pd/b-v0")]
    np.testing.assert_array_equal(*acts)


class _ThreadsSeen(torch.nn.Module):
    """A Pendulum actor (zero torque) that notes torch's thread count at each call."""

    def __init__(self):
        super().__init__()
        self.seen = set()

    def forward(self, td):
        self.seen.add(torch.get_num_threads())
        return td.set("action", torch.zeros(*td.batch_size, 1))


def test_the_policy_plays_on_one_thread_and_the_count_is_restored():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        actor = _ThreadsSeen()
        record_dataset("Pendulum-v1", actor, 1, 0, "pendulum/threads-v0")
        assert actor.seen == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_minari_experience_replay_reads_the_recorded_rows():
    rec = record_dataset("Pendulum-v1", "random", 2, 0, "pendulum/random-v0")
    rb = MinariExperienceReplay("pendulum/random-v0", batch_size=32)
    assert len(rb) == 400
    rows = rb[:]
    per_episode = [float(rows["next", "reward"][rows["episode"] == k].double().sum())
                   for k in range(2)]
    assert per_episode == pytest.approx(rec.returns, rel=1e-5)
    assert rb.sample().batch_size == torch.Size([32])


@pytest.mark.parametrize("pipeline", ["sac_pendulum", "td3_mujoco"])
def test_checkpoint_policy_plays_its_deterministic_actions(checkpoints, pipeline):
    rec = record_dataset("Pendulum-v1", _actor(checkpoints[pipeline]), 2, 0, f"pd/{pipeline}-v0",
                         algorithm_name=pipeline, ref_min_score=-1500.0, ref_max_score=-150.0)
    ds, episodes = _episodes(f"pd/{pipeline}-v0")
    meta = ds.storage.metadata
    assert meta["algorithm_name"] == pipeline
    assert (meta["ref_min_score"], meta["ref_max_score"]) == (-1500.0, -150.0)
    assert "deterministic actions" in meta["description"]
    assert [float(e.rewards.sum()) for e in episodes] == pytest.approx(rec.returns, rel=1e-5)
    # a fresh copy of the checkpoint's actor, in its deterministic mode, gives each action
    actor = _actor(checkpoints[pipeline])
    for ep in episodes:
        td = TensorDict({"observation": torch.as_tensor(ep.observations[:-1])}, [200])
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            expected = actor(td)["action"].numpy()
        np.testing.assert_allclose(ep.actions, expected, rtol=1e-5, atol=1e-6)


def test_random_exploration_and_noise_change_the_actions(checkpoints):
    actor = _actor(checkpoints["sac_pendulum"])
    det = record_dataset("Pendulum-v1", actor, 1, 0, "pd/det-v0")
    sampled = record_dataset("Pendulum-v1", actor, 1, 0, "pd/sampled-v0", exploration="random")
    noisy = record_dataset("Pendulum-v1", actor, 1, 0, "pd/noisy-v0", noise=0.3)
    acts = {i: _episodes(i)[1][0].actions for i in ("pd/det-v0", "pd/sampled-v0", "pd/noisy-v0")}
    assert det.returns != sampled.returns and det.returns != noisy.returns
    # the same first observation (seed 0): the first actions differ by the sampling / noise
    assert acts["pd/sampled-v0"][0] != acts["pd/det-v0"][0]
    assert acts["pd/noisy-v0"][0] != acts["pd/det-v0"][0]
    for a in acts.values():
        assert a.min() >= -2 and a.max() <= 2
    assert "Gaussian noise of 0.3" in minari.load_dataset("pd/noisy-v0").storage.metadata[
        "description"]


def test_from_replay_writes_the_buffer_oldest_first(checkpoints):
    state = load_checkpoint_state(checkpoints["sac_pendulum"])
    rec = dataset_from_replay(state["buffer"], "Pendulum-v1", "pd/replay-v0",
                              algorithm_name="sac_pendulum")
    ds, episodes = _episodes("pd/replay-v0")
    # 400 frames: two whole 200-step episodes, in the buffer's order
    assert ds.total_episodes == 2 and ds.total_steps == 400
    assert rec.seeds == [None, None]
    rows = replay_rows(state["buffer"])
    obs = rows["observation"].numpy()
    np.testing.assert_array_equal(episodes[0].observations[:-1], obs[:200])
    np.testing.assert_array_equal(episodes[1].observations[:-1], obs[200:])
    np.testing.assert_array_equal(episodes[1].observations[-1],
                                  rows["next", "observation"][-1].numpy())
    np.testing.assert_allclose(episodes[0].rewards, rows["next", "reward"][:200, 0].numpy())
    assert [float(e.rewards.sum()) for e in episodes] == pytest.approx(rec.returns)


def _cartpole_trajectories(n, seed=0):
    env = GymEnv("CartPole-v1")
    env.set_seed(seed)
    out = []
    for k in range(n):
        r = env.rollout(500, break_when_any_done=True)
        r.set(("collector", "traj_ids"), torch.full((r.batch_size[0],), k))
        out.append(r.select("observation", "action", ("next", "observation"),
                            ("next", "reward"), ("next", "terminated"), ("next", "truncated"),
                            ("collector", "traj_ids")))
    env.close()
    return out


def test_a_wrapped_buffer_leaves_out_its_cut_oldest_trajectory():
    trajs = _cartpole_trajectories(4)
    total = sum(t.batch_size[0] for t in trajs)
    size = total - trajs[0].batch_size[0] // 2  # half of trajectory 0 overwritten
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(size))
    for t in trajs:
        rb.extend(t)
    state = rb.state_dict()
    rows = replay_rows(state)
    assert rows[("collector", "traj_ids")].unique().tolist() == [1, 2, 3]
    np.testing.assert_array_equal(rows["observation"].numpy(),
                                  torch.cat([t["observation"] for t in trajs[1:]]).numpy())
    rec = dataset_from_replay(state, "CartPole-v1", "cartpole/replay-v0")
    assert rec.lengths == [t.batch_size[0] for t in trajs[1:]]
    ds = minari.load_dataset("cartpole/replay-v0")
    # one-hot actions written as the Discrete space's indices
    ep = next(ds.iterate_episodes())
    np.testing.assert_array_equal(ep.actions, trajs[1]["action"].argmax(-1).numpy())


def test_a_full_buffer_that_never_wrapped_keeps_every_trajectory():
    trajs = _cartpole_trajectories(2)
    size = sum(t.batch_size[0] for t in trajs)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(size))
    for t in trajs:
        rb.extend(t)
    state = {**rb.state_dict(), "rate_limiter": {"inserts": size}}
    assert replay_rows(state)[("collector", "traj_ids")].unique().tolist() == [0, 1]
