"""The collectors' TorchRL 0.14 keyword arguments: behaviour and bad values."""

from __future__ import annotations

import functools
import multiprocessing as mp
import threading
import time

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl._warnings import StreamRLWarning
from streamrl.collectors import (
    AsyncCollector,
    MultiaSyncDataCollector,
    MultiSyncDataCollector,
    SyncDataCollector,
)
from streamrl.data import LazyTensorStorage, ReplayBuffer
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.graph import OperatorError
from streamrl.modules import QValueActor


def pendulum():
    return GymEnv("Pendulum-v1")


def cartpole():
    return GymEnv("CartPole-v1")


def two_pendulums():
    return SerialEnv(2, pendulum)


def constant_actor(value: float) -> TensorDictModule:
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(value)
    return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])


def _no_children() -> bool:
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not mp.active_children()


def _is_const(batch, value) -> bool:
    return bool((batch["action"] == value).all())


# ---------------------------------------------------------------------- argument checking
def test_unknown_argument_is_named_before_any_env_is_built():
    built = []

    def factory():
        built.append(1)
        return pendulum()

    for cls, fn in ((SyncDataCollector, factory), (MultiSyncDataCollector, [factory])):
        with pytest.raises(TypeError, match=r"\['no_cuda_sync'\].*accepts.*frames_per_batch"):
            cls(fn, None, frames_per_batch=10, no_cuda_sync=True)
    with pytest.raises(TypeError, match="update_at_each_batch"):  # multi collectors only
        SyncDataCollector(factory, None, frames_per_batch=10, update_at_each_batch=True)
    with pytest.raises(TypeError, match="frames_per_batch"):
        SyncDataCollector(factory, None)
    assert built == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"init_random_frames": -3}, ValueError, "init_random_frames"),
        ({"init_random_frames": 2.5}, ValueError, "init_random_frames"),
        ({"trajs_per_batch": 0}, ValueError, "trajs_per_batch"),
        ({"traj_format": "cat"}, ValueError, "needs trajs_per_batch"),
        ({"trajs_per_batch": 2, "traj_format": "nested"}, ValueError, "traj_format"),
        ({"trajs_per_batch": 2, "split_trajs": True}, ValueError, "one of them"),
        ({"reset_when_done": False}, ValueError, "reset_when_done"),
        ({"replay_buffer": object()}, TypeError, "extend"),
        ({"replay_buffer": ReplayBuffer(storage=LazyTensorStorage(10)), "extend_buffer": False},
         ValueError, "extend_buffer"),
        ({"postproc": 3}, TypeError, "postproc"),
        ({"split_trajs": "yes"}, TypeError, "split_trajs"),
        ({"max_frames_per_traj": 0}, ValueError, "max_frames_per_traj"),
        ({"reset_at_each_iter": 1}, TypeError, "reset_at_each_iter"),
        ({"storing_device": "not-a-device"}, ValueError, "storing_device"),
        ({"create_env_kwargs": 3}, TypeError, "create_env_kwargs"),
    ],
)
def test_bad_values_raise_before_any_env_is_built(kwargs, error, match):
    built = []

    def factory():
        built.append(1)
        return pendulum()

    with pytest.raises(error, match=match):
        SyncDataCollector(factory, None, frames_per_batch=10, **kwargs)
    assert built == []


def test_multi_collector_bad_values():
    with pytest.raises(ValueError, match="one per env constructor"):
        MultiSyncDataCollector([pendulum, pendulum], None, frames_per_batch=10,
                               create_env_kwargs=[{}])
    with pytest.raises(ValueError, match="policy_device must be the CPU"):
        MultiSyncDataCollector([pendulum], constant_actor(0.0), frames_per_batch=10,
                               policy_device="cuda")
    with pytest.raises(ValueError, match="one device per worker"):
        MultiSyncDataCollector([pendulum, pendulum], None, frames_per_batch=10,
                               env_device=["cpu"])
    with pytest.raises(TypeError, match="one env constructor"):
        AsyncCollector([pendulum], None, frames_per_batch=10)


def test_start_needs_a_replay_buffer_and_len_needs_a_budget():
    c = SyncDataCollector(pendulum, None, frames_per_batch=10)
    with pytest.raises(RuntimeError, match="replay_buffer"):
        c.start()
    with pytest.raises(TypeError, match="no length"):
        len(c)
    c.shutdown()
    c = SyncDataCollector(pendulum, None, frames_per_batch=10, total_frames=25)
    assert len(c) == c.num_batches == 3
    assert len(list(c.iterator())) == 3
    c.shutdown()


# ---------------------------------------------------------------------- init_random_frames
def test_init_random_frames_rounds_up_to_whole_batches():
    with pytest.warns(StreamRLWarning, match="first 40 frames are random"):
        c = SyncDataCollector(pendulum, constant_actor(0.5), frames_per_batch=20,
                              total_frames=80, init_random_frames=30)
    consts = [_is_const(b, 0.5) for b in c]
    c.shutdown()
    assert consts == [False, False, True, True]
    # random actions come from the action spec: within Pendulum's bounds
    c = SyncDataCollector(pendulum, constant_actor(0.5), frames_per_batch=20, total_frames=20,
                          init_random_frames=20)
    (batch,) = list(c)
    c.shutdown()
    assert batch["action"].abs().max() <= 2.0 and batch["action"].unique().numel() > 1
    # TorchRL's documented example passes -1: no random frames
    c = SyncDataCollector(pendulum, constant_actor(0.5), frames_per_batch=10, total_frames=10,
                          init_random_frames=-1)
    assert all(_is_const(b, 0.5) for b in c)
    c.shutdown()


def test_init_random_frames_discrete_actions_follow_the_spec():
    env = cartpole()
    spec = env.action_spec
    c = SyncDataCollector(env, None, frames_per_batch=30, total_frames=30, init_random_frames=30)
    (batch,) = list(c)
    c.shutdown()
    assert spec.is_in(batch["action"][0])  # one-hot or integer: whatever the env declares


def test_init_random_frames_batches_have_the_policy_keys():
    """Random batches carry what the policy writes besides the action (zeros), so a replay
    buffer's storage takes every batch."""
    env = cartpole()
    value = TensorDictModule(torch.nn.Linear(4, env.action_spec.shape[-1]),
                             in_keys=["observation"], out_keys=["action_value"])
    policy = QValueActor(value.module, in_keys=["observation"], spec=env.action_spec)
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    c = SyncDataCollector(env, policy, frames_per_batch=20, total_frames=40,
                          init_random_frames=20)
    first, second = list(c)
    c.shutdown()
    assert set(first.keys(True, True)) == set(second.keys(True, True))
    assert first["action_value"].shape == second["action_value"].shape
    assert not first["action_value"].any() and second["action_value"].any()
    rb.extend(first.reshape(-1))
    rb.extend(second.reshape(-1))
    assert len(rb) == 40


def test_init_random_frames_multi_sync():
    c = MultiSyncDataCollector([pendulum, pendulum], constant_actor(0.5), frames_per_batch=20,
                               total_frames=60, init_random_frames=20)
    consts = [_is_const(b, 0.5) for b in c]
    c.shutdown()
    assert consts == [False, True, True]
    assert _no_children()


# ---------------------------------------------------------------------- split_trajs, postproc
def test_split_trajs_pads_trajectories_with_a_mask():
    c = SyncDataCollector(pendulum, None, frames_per_batch=30, total_frames=60,
                          max_frames_per_traj=8, split_trajs=True)
    for batch in c:
        mask = batch["collector", "mask"]
        assert batch.batch_dims == 2 and batch.batch_size[1] == 8
        assert int(mask.sum()) == 30
        ids = batch["collector", "traj_ids"]
        for row, m in zip(ids, mask, strict=True):
            assert row[m].unique().numel() == 1
    c.shutdown()


def test_split_trajs_multi_sync_and_postproc_order():
    calls = []

    def postproc(td):
        calls.append(tuple(td.batch_size))
        return td.set("seen", torch.ones(td.batch_size))

    c = MultiSyncDataCollector([pendulum, pendulum], None, frames_per_batch=20, total_frames=40,
                               max_frames_per_traj=6, split_trajs=True, postproc=postproc)
    batches = list(c)
    c.shutdown()
    assert len(calls) == 2 and all(len(s) == 2 and s[1] == 6 for s in calls)  # after the split
    assert all(bool(b["seen"].all()) for b in batches)
    assert all(int(b["collector", "mask"].sum()) == 20 for b in batches)


# ---------------------------------------------------------------------- devices
def test_device_precedence():
    c = SyncDataCollector(pendulum, None, frames_per_batch=5, device="cpu")
    assert (c.storing_device, c.env_device, c.policy_device) == (torch.device("cpu"),) * 3
    c.shutdown()
    c = SyncDataCollector(pendulum, None, frames_per_batch=5, storing_device="cpu")
    assert c.storing_device == torch.device("cpu") and c.env_device is None
    assert c.policy_device is None
    c.shutdown()
    c = SyncDataCollector(pendulum, None, frames_per_batch=5, device="cuda", storing_device="cpu",
                          env_device="cpu", policy_device="cpu")
    assert {c.storing_device, c.env_device, c.policy_device} == {torch.device("cpu")}
    c.shutdown()


def test_storing_and_policy_device_on_cpu():
    c = SyncDataCollector(pendulum, constant_actor(0.5), frames_per_batch=5, total_frames=5,
                          storing_device="cpu", policy_device="cpu", env_device="cpu")
    (batch,) = list(c)
    c.shutdown()
    assert batch.device == torch.device("cpu") and _is_const(batch, 0.5)


def test_env_device_mismatch_names_both_devices():
    c = SyncDataCollector(pendulum, None, frames_per_batch=5, total_frames=5, env_device="cuda")
    with pytest.raises(OperatorError, match="env_device is cuda but the env was built on cpu"):
        list(c)
    c.shutdown()


# ---------------------------------------------------------------------- resets
def _first_ids(batches):
    return [int(b["collector", "traj_ids"].reshape(-1)[0]) for b in batches]


def test_reset_at_each_iter_starts_new_trajectories():
    c = SyncDataCollector(pendulum, None, frames_per_batch=10, total_frames=30,
                          reset_at_each_iter=True)
    batches = list(c)
    c.shutdown()
    ids = [b["collector", "traj_ids"] for b in batches]
    assert [int(i.min()) for i in ids] == [0, 1, 2]  # pendulum never ends within 10 steps
    c = SyncDataCollector(pendulum, None, frames_per_batch=10, total_frames=30)
    assert _first_ids(list(c)) == [0, 0, 0]
    c.shutdown()


def test_reset_request_reaches_sync_and_multi_workers():
    c = SyncDataCollector(pendulum, None, frames_per_batch=10, total_frames=30)
    firsts = []
    for b in c:
        firsts.append(int(b["collector", "traj_ids"][0]))
        c.reset()
    c.shutdown()
    assert firsts == [0, 1, 2]
    c = MultiSyncDataCollector([pendulum, pendulum], None, frames_per_batch=20, total_frames=40)
    ids = []
    for b in c:
        ids.append(b["collector", "traj_ids"][:, 0].tolist())
        c.reset([False, True])
    c.shutdown()
    assert ids[0] == [0, 1] and ids[1][0] == 0 and ids[1][1] != 1  # only worker 1 restarted
    with pytest.raises(ValueError, match="one bool per worker"):
        c.reset([True])


# ---------------------------------------------------------------------- replay buffers
@pytest.mark.parametrize("cls", [SyncDataCollector, MultiSyncDataCollector, MultiaSyncDataCollector])
def test_replay_buffer_is_extended_and_the_iterator_yields_none(cls):
    rb = ReplayBuffer(storage=LazyTensorStorage(1000))
    fn = pendulum if cls is SyncDataCollector else [pendulum, pendulum]
    c = cls(fn, None, frames_per_batch=20, total_frames=60, replay_buffer=rb)
    sizes = []
    for item in c:
        assert item is None
        sizes.append(len(rb))  # written before the iterator yields
    c.shutdown()
    if cls is MultiaSyncDataCollector:  # free-running workers may write ahead of the loop
        assert sizes[-1] == 60 and all(s >= 20 * (i + 1) for i, s in enumerate(sizes))
    else:
        assert sizes == [20, 40, 60]
    assert len(rb) == 60  # the rollouts stop at the budget: nothing written past it
    assert rb.sample(5).batch_size == (5,)


def test_start_fills_the_buffer_while_the_caller_samples():
    rb = ReplayBuffer(storage=LazyTensorStorage(10_000))
    c = MultiaSyncDataCollector([pendulum, pendulum], None, frames_per_batch=20,
                                total_frames=400, replay_buffer=rb)
    c.start()
    assert c.is_running()
    with pytest.raises(RuntimeError, match="background"):
        next(iter(c))
    with pytest.raises(RuntimeError, match="already collecting"):
        c.start()
    sampled = 0
    deadline = time.monotonic() + 30
    while len(rb) < 400 and time.monotonic() < deadline:
        if len(rb):
            sampled += rb.sample(4).numel()
        time.sleep(0.01)
    c.async_shutdown(timeout=10)
    assert len(rb) >= 400 and sampled > 0
    assert not c.is_running() and _collector_threads() == []
    assert _no_children()


def _collector_threads() -> list:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = [t for t in threading.enumerate() if t.name == "streamrl-collector"]
        if not left:
            break
        time.sleep(0.05)
    return left


def test_async_shutdown_stops_an_endless_background_run():
    threads_before = threading.active_count()
    rb = ReplayBuffer(storage=LazyTensorStorage(100_000))
    c = SyncDataCollector(pendulum, None, frames_per_batch=10, replay_buffer=rb)
    c.start()
    deadline = time.monotonic() + 10
    while len(rb) < 30 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.async_shutdown(timeout=10)
    assert not c.is_running() and len(rb) >= 30
    n = len(rb)
    time.sleep(0.1)
    assert len(rb) == n  # nothing writes any more
    assert _collector_threads() == []
    deadline = time.monotonic() + 5  # the event loop's portal thread ends too
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before
    with pytest.raises(RuntimeError, match="shut down"):
        c.start()


def test_background_error_is_raised_by_shutdown():
    def broken(td):
        raise RuntimeError("policy broke")

    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    c = SyncDataCollector(pendulum, broken, frames_per_batch=10, total_frames=10,
                          replay_buffer=rb)
    c.start()
    deadline = time.monotonic() + 10
    while c.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(OperatorError, match="policy broke"):
        c.async_shutdown()
    c.shutdown()  # idempotent, the error was reported once


# ---------------------------------------------------------------------- trajs_per_batch
def _check_complete(traj):
    done = traj["next", "done"].reshape(len(traj))
    assert bool(done[-1]) and not bool(done[:-1].any())
    assert traj["collector", "traj_ids"].unique().numel() == 1


@pytest.mark.parametrize("cls", [SyncDataCollector, MultiSyncDataCollector, MultiaSyncDataCollector])
def test_trajs_per_batch_yields_complete_padded_trajectories(cls):
    fn = [cartpole, cartpole] if cls is not SyncDataCollector else cartpole
    c = cls(fn, None, frames_per_batch=20, total_frames=300, trajs_per_batch=3)
    assert c.num_batches is None
    batches = list(c)
    c.shutdown()
    assert len(batches) >= 2
    for b in batches:
        assert b.batch_size[0] == 3
        mask = b["collector", "mask"]
        for row, m in zip(b.unbind(0), mask, strict=True):
            _check_complete(row[m])
        assert bool(mask[:, 0].all()) and int(mask.sum(-1).max()) == b.batch_size[1]
    ids = torch.cat([b["collector", "traj_ids"][:, 0] for b in batches])
    assert ids.unique().numel() == ids.numel()  # every trajectory once


def test_trajs_per_batch_cat_format_and_postproc():
    c = SyncDataCollector(cartpole, None, frames_per_batch=25, total_frames=200,
                          trajs_per_batch=2, traj_format="cat",
                          postproc=lambda td: td.set("post", torch.ones(td.batch_size)))
    for b in c:
        assert b.batch_dims == 1 and bool(b["post"].all())
        ids = b["collector", "traj_ids"]
        assert ids.unique_consecutive().numel() == 2
        for tid in ids.unique():
            _check_complete(b[ids == tid])
    c.shutdown()


def test_trajs_per_batch_with_a_replay_buffer_writes_flat_trajectories():
    rb = ReplayBuffer(storage=LazyTensorStorage(1000))
    c = SyncDataCollector(cartpole, None, frames_per_batch=20, total_frames=200,
                          trajs_per_batch=2, replay_buffer=rb)
    assert all(item is None for item in c)
    c.shutdown()
    stored = rb[: len(rb)]
    assert stored.batch_dims == 1 and len(stored) > 0
    ids = stored["collector", "traj_ids"]
    for tid in ids.unique():
        _check_complete(stored[ids == tid])


def test_trajs_per_batch_drops_episodes_cut_by_a_reset():
    c = SyncDataCollector(cartpole, None, frames_per_batch=10, total_frames=400,
                          trajs_per_batch=2, reset_at_each_iter=True)
    for b in c:
        mask = b["collector", "mask"]
        for row, m in zip(b.unbind(0), mask, strict=True):
            _check_complete(row[m])
            assert int(m.sum()) <= 10  # no episode spans a reset
    c.shutdown()


# ---------------------------------------------------------------------- weights and seeds
def test_update_policy_weights_accepts_module_tensordict_and_state_dict():
    actor = constant_actor(0.0)
    c = SyncDataCollector(pendulum, actor, frames_per_batch=5, total_frames=20)
    other = constant_actor(0.25)
    actions = []
    updates = [
        other,
        TensorDict.from_module(constant_actor(0.5)),
        constant_actor(0.75).state_dict(),
    ]
    for b in c:
        actions.append(float(b["action"][0]))
        if updates:
            c.update_policy_weights_(updates.pop(0))
    c.shutdown()
    assert actions == [0.0, 0.25, 0.5, 0.75]
    with pytest.raises(ValueError, match="do not match"):
        c.update_policy_weights_(TensorDict({"x": torch.zeros(1)}, []))
    with pytest.raises(ValueError, match="worker_ids"):
        c.update_policy_weights_(worker_ids=1)


def test_multi_update_policy_weights_per_worker():
    actor = constant_actor(0.0)
    c = MultiSyncDataCollector([pendulum, pendulum], actor, frames_per_batch=10, total_frames=20)
    actions = []
    for b in c:
        actions.append(b["action"][:, 0, 0].tolist())
        c.update_policy_weights_(constant_actor(1.0).state_dict(), worker_ids=[1])
    c.shutdown()
    assert actions == [[0.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="worker_ids"):
        c.update_policy_weights_(worker_ids=[2])
    assert _no_children()


def test_update_at_each_batch_publishes_the_policy():
    actor = constant_actor(0.0)
    c = MultiSyncDataCollector([pendulum], actor, frames_per_batch=5, total_frames=15,
                               update_at_each_batch=True)
    actions = []
    for i, b in enumerate(c):
        actions.append(float(b["action"][0, 0]))
        with torch.no_grad():
            actor.module.bias.fill_(i + 1.0)  # no explicit update_policy_weights_()
    c.shutdown()
    assert actions == [0.0, 1.0, 2.0]


def test_set_seed_returns_the_next_seed_and_is_reproducible():
    c = SyncDataCollector(two_pendulums, None, frames_per_batch=10, total_frames=10)
    assert c.set_seed(5) == 7
    assert c.set_seed(5, static_seed=True) == 5
    c.shutdown()

    def collect():
        m = MultiaSyncDataCollector([two_pendulums, pendulum], None, frames_per_batch=30,
                                    total_frames=60)
        assert m.set_seed(11) == 14  # 2 envs, then 1
        batches = sorted(m, key=lambda b: b.batch_dims)  # one batch from each worker
        m.shutdown()
        return torch.cat([batches[0]["observation"], batches[1]["observation"].reshape(-1, 3)])

    assert torch.equal(collect(), collect())
    assert _no_children()


def test_create_env_kwargs():
    c = SyncDataCollector(GymEnv, None, frames_per_batch=5, total_frames=5,
                          create_env_kwargs={"env_name": "CartPole-v1"})
    (b,) = list(c)
    c.shutdown()
    assert b["observation"].shape == (5, 4)
    m = MultiSyncDataCollector(
        [GymEnv, GymEnv], None, frames_per_batch=10, total_frames=10,
        create_env_kwargs=[{"env_name": "Pendulum-v1"}, {"env_name": "Pendulum-v1"}],
    )
    (b,) = list(m)
    m.shutdown()
    assert b["observation"].shape == (2, 5, 3)
    with pytest.raises(ValueError, match="callable"):
        SyncDataCollector(pendulum(), None, frames_per_batch=5, create_env_kwargs={"x": 1})


def test_async_collector_runs_one_worker_process():
    actor = constant_actor(0.5)
    with AsyncCollector(functools.partial(GymEnv, "Pendulum-v1"), actor, frames_per_batch=10,
                        total_frames=30, split_trajs=True) as c:
        batches = list(c)
    assert len(batches) == 3 and all(int(b["collector", "mask"].sum()) == 10 for b in batches)
    assert _no_children()


def test_shutdown_closes_the_env_unless_asked_not_to():
    env = pendulum()
    c = SyncDataCollector(env, None, frames_per_batch=5, total_frames=10)
    list(c)
    list(c)  # a second pass reuses the env: the rollout does not close an env it was given
    c.shutdown(close_env=False)
    assert not env.is_closed
    c = SyncDataCollector(env, None, frames_per_batch=5, total_frames=5)
    c.shutdown()
    assert env.is_closed


def test_torchrl_docstring_example_runs_unchanged():
    from streamrl.collectors import Collector

    env_maker = lambda: GymEnv("Pendulum-v1", device="cpu")  # noqa: E731
    policy = TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["action"])
    collector = Collector(
        create_env_fn=env_maker,
        policy=policy,
        total_frames=2000,
        max_frames_per_traj=50,
        frames_per_batch=200,
        init_random_frames=-1,
        reset_at_each_iter=False,
        device="cpu",
        storing_device="cpu",
    )
    seen = []
    for i, data in enumerate(collector):
        seen.append(data)
        if i == 2:
            break
    collector.shutdown()
    data = seen[-1]
    assert data.batch_size == (200,) and data["collector", "traj_ids"].shape == (200,)
    ids = data["collector", "traj_ids"]
    assert int(torch.bincount(ids - ids.min()).max()) <= 50  # max_frames_per_traj


def test_update_at_each_batch_async_publishes_after_each_batch():
    c = MultiaSyncDataCollector([pendulum], constant_actor(0.0), frames_per_batch=5,
                                total_frames=30, update_at_each_batch=True)
    versions = [int(b["collector", "policy_version"].max()) for b in c]
    c.shutdown()
    assert versions[0] == 0 and versions[-1] >= 1  # published after each yielded batch
    assert c.weights[0].version == len(versions)
