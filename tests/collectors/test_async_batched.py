"""AsyncBatchedCollector: N env sources in a feedback loop with one batching policy server."""

from __future__ import annotations

import functools
import multiprocessing as mp
import time

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.collectors import AsyncBatchedCollector
from streamrl.data import Composite, LazyTensorStorage, ReplayBuffer, Unbounded
from streamrl.envs import EnvBase
from streamrl.envs.utils import ExplorationType, exploration_type
from streamrl.graph import OperatorError

pytestmark = pytest.mark.timeout(60)


class IndexEnv(EnvBase):
    """Observation ``[index, t, seed]``; it must be given ``action == index`` (an action meant
    for another env raises); the episode ends after ``episode_len`` steps; ``fail_at`` raises
    at that step; ``delay`` sleeps in every step (a slow simulator)."""

    def __init__(self, index: int, episode_len: int = 5, fail_at: int | None = None,
                 delay: float = 0.0):
        super().__init__()
        self.index, self.episode_len, self.fail_at, self.delay = index, episode_len, fail_at, delay
        self.observation_spec = Composite(observation=Unbounded((3,)))
        self.action_spec = Unbounded((1,))
        self.t, self.steps, self.seed = 0, 0, -1

    def _set_seed(self, seed):
        self.seed = -1 if seed is None else seed

    def _obs(self):
        return torch.tensor([float(self.index), float(self.t), float(self.seed)])

    def _reset(self, td):
        self.t = 0
        return TensorDict({"observation": self._obs()}, [])

    def _step(self, td):
        action = td["action"].item()
        if action != self.index:
            raise ValueError(f"env {self.index} got the action of env {action}")
        self.steps += 1
        if self.fail_at is not None and self.steps >= self.fail_at:
            raise RuntimeError(f"env {self.index} failed on purpose")
        if self.delay:
            time.sleep(self.delay)
        self.t += 1
        done = torch.tensor([self.t >= self.episode_len])
        return TensorDict({"observation": self._obs(), "reward": torch.ones(1), "done": done,
                           "terminated": done.clone(), "truncated": torch.zeros(1, dtype=torch.bool)},
                          [])


def envs(n: int, **kwargs) -> list:
    return [functools.partial(IndexEnv, i, **kwargs) for i in range(n)]


class Echo:
    """action = the env index in the observation; records each call's batch size and
    exploration type."""

    def __init__(self):
        self.sizes: list[int] = []
        self.modes: set = set()

    def __call__(self, td):
        self.sizes.append(td.batch_size[0])
        self.modes.add(exploration_type())
        return td.set("action", td["observation"][..., :1].clone())


class EchoModule(nn.Module):
    """Echo as a torch module (shared weights and versions); ``bias`` is added to nothing
    the envs check, it only gives the module a parameter."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, td):
        return td.set("action", td["observation"][..., :1] + 0 * self.bias)


def _no_children():
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not mp.active_children()


def test_batches_have_frames_per_batch_frames_and_the_keys():
    with AsyncBatchedCollector(envs(3), policy=Echo(), frames_per_batch=24,
                               total_frames=72) as collector:
        batches = list(collector)
    assert [b.batch_size for b in batches] == [torch.Size([24])] * 3
    keys = set(batches[0].keys(True, True))
    for key in ["observation", "action", "env_index", "policy_version", ("next", "observation"),
                ("next", "reward"), ("next", "done"), ("collector", "traj_ids"),
                ("collector", "policy_version")]:
        assert key in keys, key
    data = torch.cat(batches)
    assert (data["observation"][:, 0] == data["env_index"].float()).all()
    # every env contributed, and its steps stay in time order within its episode
    for i in range(3):
        mine = data[data["env_index"] == i]
        assert mine.numel() > 0
        t = mine["observation"][:, 1]
        step = (t[1:] - t[:-1])
        assert ((step == 1) | (t[1:] == 0)).all()


@pytest.mark.parametrize("env_backend", ["threading", "multiprocessing"])
def test_every_env_steps_only_with_its_own_actions(env_backend):
    # IndexEnv raises on another env's action: collection completing is the check
    policy = Echo()
    collector = AsyncBatchedCollector(envs(4), policy=policy, frames_per_batch=40,
                                      total_frames=120, max_batch_size=3,
                                      env_backend=env_backend)
    frames = sum(b.numel() for b in collector)
    collector.shutdown()
    assert frames == 120
    assert max(policy.sizes) <= 3
    assert sum(policy.sizes) == 120  # one action per env step
    assert _no_children()


def test_server_batches_several_ready_envs_in_one_call():
    policy = Echo()
    collector = AsyncBatchedCollector(envs(4, delay=0.002), policy=policy, frames_per_batch=40,
                                      total_frames=80)
    list(collector)
    collector.shutdown()
    assert sum(policy.sizes) == 80
    assert len(policy.sizes) < 80 and max(policy.sizes) > 1


def test_min_batch_size_waits_for_every_env_when_there_is_no_timeout():
    # with server_timeout=0 disabled by a huge value, the hold only ends when all 4 wait
    policy = Echo()
    collector = AsyncBatchedCollector(envs(4), policy=policy, frames_per_batch=20,
                                      total_frames=40, min_batch_size=4, server_timeout=60.0)
    assert sum(b.numel() for b in collector) == 40
    collector.shutdown()
    assert set(policy.sizes) == {4}


def test_total_frames_ends_the_iterator_with_a_cut_last_batch():
    collector = AsyncBatchedCollector(envs(2), policy=Echo(), frames_per_batch=20,
                                      total_frames=50)
    assert len(collector) == 3
    assert [b.numel() for b in collector] == [20, 20, 10]
    assert collector.frames == 50
    collector.shutdown()


def test_replay_buffer_is_filled_and_the_iterator_yields_none():
    buffer = ReplayBuffer(storage=LazyTensorStorage(100))
    collector = AsyncBatchedCollector(envs(2), policy=Echo(), frames_per_batch=16,
                                      total_frames=48, replay_buffer=buffer)
    assert list(collector) == [None, None, None]
    collector.shutdown()
    assert len(buffer) == 48
    assert set(buffer[:]["env_index"].tolist()) == {0, 1}


def test_start_collects_into_the_buffer_in_the_background():
    buffer = ReplayBuffer(storage=LazyTensorStorage(100))
    collector = AsyncBatchedCollector(envs(2), policy=Echo(), frames_per_batch=16,
                                      total_frames=48, replay_buffer=buffer)
    collector.start()
    deadline = time.monotonic() + 20
    while collector.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    collector.async_shutdown()
    assert len(buffer) == 48 and collector.batches == 3


def test_yield_completed_trajectories_gives_whole_episodes():
    collector = AsyncBatchedCollector(envs(3, episode_len=4), policy=Echo(), frames_per_batch=12,
                                      total_frames=60, yield_completed_trajectories=True,
                                      postproc=lambda td: td.set("seen", torch.ones(td.shape)))
    trajs = list(collector)
    collector.shutdown()
    assert len(trajs) >= 9  # 60 frames of 4-step episodes, minus the ones cut at the end
    for traj in trajs:
        assert traj.batch_size == (4,)
        assert traj["env_index"].unique().numel() == 1
        assert traj["collector", "traj_ids"].unique().numel() == 1
        assert traj["observation"][:, 1].tolist() == [0.0, 1.0, 2.0, 3.0]
        assert traj["next", "done"].flatten().tolist() == [False, False, False, True]
        assert (traj["seen"] == 1).all()
    ids = [int(t["collector", "traj_ids"][0]) for t in trajs]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("env_backend", ["threading", "multiprocessing"])
def test_a_failing_env_surfaces_in_the_loop_naming_it(env_backend):
    fns = envs(3)
    fns[2] = functools.partial(IndexEnv, 2, fail_at=3)
    collector = AsyncBatchedCollector(fns, policy=Echo(), frames_per_batch=10, total_frames=-1,
                                      env_backend=env_backend)
    with pytest.raises(OperatorError, match="env2") as info:
        for _ in collector:
            pass
    assert "failed on purpose" in str(info.value)
    collector.shutdown()
    assert _no_children()


def test_shutdown_mid_iteration_leaves_no_child_process():
    collector = AsyncBatchedCollector(envs(3), policy=Echo(), frames_per_batch=10,
                                      env_backend="multiprocessing")
    for i, _ in enumerate(collector):
        if i == 1:
            break
    collector.shutdown()
    collector.shutdown()  # idempotent
    assert _no_children()
    with pytest.raises(RuntimeError, match="shut down"):
        iter(collector)


def test_policy_versions_and_weight_updates():
    module = EchoModule()
    collector = AsyncBatchedCollector(envs(2), policy=module, frames_per_batch=10,
                                      total_frames=40, policy_version=5)
    versions = []
    for batch in collector:
        versions.append(set(batch["policy_version"].tolist()))
        assert (batch["policy_version"] == batch["collector", "policy_version"]).all()
        collector.update_policy_weights_(module)
    collector.shutdown()
    assert versions[0] == {5}
    assert max(max(v) for v in versions) > 5  # the server picked the new weights up
    with pytest.raises(TypeError, match="one of"):
        collector.update_policy_weights_(module, weights=module.state_dict())


def test_policy_factory_device_exploration_type_and_no_version_key():
    policy = Echo()
    collector = AsyncBatchedCollector(envs(2), policy_factory=lambda: policy, frames_per_batch=8,
                                      total_frames=8, device="cpu", policy_version_key=None,
                                      exploration_type=ExplorationType.DETERMINISTIC)
    (batch,) = list(collector)
    collector.shutdown()
    assert policy.modes == {ExplorationType.DETERMINISTIC}
    assert "policy_version" not in batch.keys()
    assert ("collector", "policy_version") in batch.keys(True)
    with pytest.raises(TypeError, match="not a torch module"):
        collector.update_policy_weights_(nn.Linear(1, 1))


def test_set_seed_and_create_env_kwargs_reach_the_envs():
    collector = AsyncBatchedCollector([IndexEnv] * 2, policy=Echo(), frames_per_batch=8,
                                      total_frames=8,
                                      create_env_kwargs=[{"index": 0}, {"index": 1}])
    assert collector.set_seed(10) == 12
    (batch,) = list(collector)
    seeds = {int(i): float(s) for i, s in zip(batch["env_index"], batch["observation"][:, 2])}
    assert seeds == {0: 10.0, 1: 11.0}
    assert collector.set_seed(3, static_seed=True) == 3
    collector.shutdown()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"transport": "auto"}, TypeError, "transport"),
        ({"server_config": object()}, TypeError, "server_config"),
        ({"weight_sync": object()}, TypeError, "weight_sync"),
        ({"worker_affinity": [[0]]}, TypeError, "worker_affinity"),
        ({"backend": "ray"}, ValueError, "backend"),
        ({"policy_backend": "monarch"}, ValueError, "policy_backend"),
        ({"env_backend": "ray"}, ValueError, "env_backend"),
        ({"envs_per_worker": 2}, ValueError, "envs_per_worker"),
        ({"reset_at_each_iter": True}, ValueError, "reset_at_each_iter"),
        ({"min_batch_size": 4, "max_batch_size": 2}, ValueError, "min_batch_size"),
        ({"server_timeout": -1}, ValueError, "server_timeout"),
        ({"frames_per_batch": 0}, ValueError, "frames_per_batch"),
        ({"create_env_kwargs": [{}]}, ValueError, "create_env_kwargs"),
        ({"policy_factory": Echo}, TypeError, "exactly one of policy and policy_factory"),
        ({"split_trajs": True}, TypeError, "split_trajs"),
    ],
)
def test_argument_errors_name_the_argument(kwargs, error, match):
    args = {"policy": Echo(), "frames_per_batch": 8, **kwargs}
    with pytest.raises(error, match=match):
        AsyncBatchedCollector(envs(2), **args)


def test_create_env_fn_must_be_a_list_and_a_policy_is_required():
    with pytest.raises(ValueError, match="create_env_fn"):
        AsyncBatchedCollector(IndexEnv, policy=Echo(), frames_per_batch=8)
    with pytest.raises(TypeError, match="exactly one of policy and policy_factory"):
        AsyncBatchedCollector(envs(2), frames_per_batch=8)
