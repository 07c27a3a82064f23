"""SyncDataCollector, MultiSyncDataCollector, MultiaSyncDataCollector."""

from __future__ import annotations

import functools
import multiprocessing as mp
import time

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.collectors import (
    AsyncCollector,
    MultiaSyncDataCollector,
    MultiCollector,
    MultiSyncDataCollector,
    SyncDataCollector,
)
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.graph import OperatorError


def pendulum():
    return GymEnv("Pendulum-v1")


def two_pendulums():
    return SerialEnv(2, pendulum)


def constant_actor(value: float) -> TensorDictModule:
    net = nn.Linear(3, 1)
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(value)
    return TensorDictModule(net, in_keys=["observation"], out_keys=["action"])


def _no_children():
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not mp.active_children()


def test_sync_collector_is_lockstep_with_the_learner():
    actor = constant_actor(0.5)
    collector = SyncDataCollector(pendulum, actor, frames_per_batch=20, total_frames=60)
    seen = []
    for i, batch in enumerate(collector):
        assert batch.batch_size == (20,)
        seen.append((batch["action"].unique().tolist(),
                     batch.get(("collector", "policy_version")).unique().tolist()))
        # train: change the weights; the next batch must use them (no batch collected ahead)
        with torch.no_grad():
            actor.module.bias.fill_(-0.5 - i)
        collector.update_policy_weights_()
    collector.shutdown()
    assert seen == [([0.5], [0]), ([-0.5], [1]), ([-1.5], [2])]
    assert collector.frames == 60


def test_sync_collector_endless_breaks_cleanly_and_shutdown_is_idempotent():
    collector = SyncDataCollector(pendulum, None, frames_per_batch=10)
    assert collector.num_batches is None
    for i, _ in enumerate(collector):
        if i == 4:
            break
    collector.shutdown()
    collector.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        iter(collector).__next__()


def test_sync_collector_seeding_is_reproducible():
    def collect():
        c = SyncDataCollector(pendulum, None, frames_per_batch=15, total_frames=30)
        c.set_seed(7)
        torch.manual_seed(7)
        out = torch.cat([b["observation"] for b in c])
        c.shutdown()
        return out

    assert torch.equal(collect(), collect())


def test_multisync_stacks_workers_and_sees_published_weights():
    actor = constant_actor(1.0)
    collector = MultiSyncDataCollector(
        [two_pendulums, two_pendulums], actor, frames_per_batch=40, total_frames=120
    )
    actions = []
    for i, batch in enumerate(collector):
        assert batch.batch_size == (2, 2, 10)
        actions.append(batch["action"].unique().tolist())
        with torch.no_grad():
            actor.module.bias.fill_(-1.0 - i / 2)
        collector.update_policy_weights_()
    collector.shutdown()
    assert actions == [[1.0], [-1.0], [-1.5]]
    ids = batch.get(("collector", "traj_ids"))
    assert not set(ids[0].flatten().tolist()) & set(ids[1].flatten().tolist())
    assert _no_children()


def test_multiasync_yields_per_worker_batches_with_versions():
    actor = constant_actor(0.0)
    collector = MultiaSyncDataCollector(
        [two_pendulums, two_pendulums], actor, frames_per_batch=20, total_frames=240
    )
    versions = []
    for batch in collector:
        assert batch.batch_size == (2, 10)
        versions.append(int(batch.get(("collector", "policy_version")).max()))
        collector.update_policy_weights_()
    collector.shutdown()
    assert len(versions) == 12
    # workers run ahead of the learner by a bounded number of batches (each holds at most one
    # finished batch, plus the edges' capacity): the version stamped on a batch tells how stale
    # it is, and it catches up
    assert versions[-1] >= 1
    assert all(v <= i for i, v in enumerate(versions))
    assert _no_children()


def test_multicollector_sync_picks_the_lockstep_or_free_running_collector():
    for sync, cls in ((True, MultiSyncDataCollector), (False, MultiaSyncDataCollector)):
        collector = MultiCollector([pendulum, pendulum], None, sync=sync, frames_per_batch=20,
                                   total_frames=40)
        try:
            assert type(collector) is cls and isinstance(collector, MultiCollector)
            sizes = [batch.batch_size for batch in collector]
        finally:
            collector.shutdown()
        assert sizes == ([(2, 10)] * 2 if sync else [(20,)] * 2)  # async: whole batches per worker
    assert issubclass(AsyncCollector, MultiCollector)
    # the subclasses take sync only with their own value; the base needs it
    collector = MultiSyncDataCollector([pendulum], None, sync=True, frames_per_batch=8,
                                       total_frames=8)
    collector.shutdown()
    with pytest.raises(ValueError, match="sync=True, found sync=False"):
        MultiSyncDataCollector([pendulum], None, sync=False, frames_per_batch=8)
    with pytest.raises(TypeError, match="needs sync=True"):
        MultiCollector([pendulum], None, frames_per_batch=8)
    with pytest.raises(TypeError, match="sync must be"):
        MultiCollector([pendulum], None, sync="yes", frames_per_batch=8)
    assert _no_children()


def test_worker_error_reaches_the_loop_naming_the_worker():
    def broken():
        raise RuntimeError("cannot build this env")

    collector = MultiSyncDataCollector(
        [two_pendulums, broken], None, frames_per_batch=20, total_frames=40
    )
    with pytest.raises(OperatorError, match="rollout1") as info:
        list(collector)
    assert "cannot build this env" in str(info.value)
    collector.shutdown()
    assert _no_children()


def test_collector_argument_errors():
    with pytest.raises(ValueError, match="frames_per_batch"):
        SyncDataCollector(pendulum, None, frames_per_batch=0)
    with pytest.raises(ValueError, match="total_frames"):
        SyncDataCollector(pendulum, None, frames_per_batch=1, total_frames=0)
    with pytest.raises(TypeError, match="create_env_fn"):
        SyncDataCollector(3, None, frames_per_batch=1)
    with pytest.raises(ValueError, match="list of env constructors"):
        MultiSyncDataCollector(pendulum, None, frames_per_batch=2)
    with pytest.raises(ValueError, match="one device"):
        MultiSyncDataCollector([pendulum], None, frames_per_batch=2, device=["cpu", "meta"])
    c = MultiSyncDataCollector([pendulum, pendulum], None, frames_per_batch=3, total_frames=3)
    with pytest.raises(ValueError, match="divisible"):
        list(c)
    c.shutdown()


def test_device_argument_moves_batches():
    c = SyncDataCollector(functools.partial(GymEnv, "CartPole-v1"), None, frames_per_batch=5,
                          total_frames=5, device="cpu")
    (batch,) = list(c)
    assert batch.device == torch.device("cpu")
    c.shutdown()
