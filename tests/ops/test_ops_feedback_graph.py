"""EnvSource <-> PolicyStage feedback topology, TrajectoryBatcher, replay sink and source."""

from __future__ import annotations

import functools
import multiprocessing as mp
import threading
import time

import anyio
import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.data import LazyTensorStorage, ReplayBuffer
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.graph import Collect, Graph, OperatorError, Process
from streamrl.ops import (
    EnvSource,
    PolicyStage,
    PolicyWeights,
    ReplaySink,
    ReplaySource,
    TrajectoryBatcher,
)


class ConstantPolicy(nn.Module):
    def __init__(self, action=1):
        super().__init__()
        self.action = nn.Parameter(torch.tensor(float(action)), requires_grad=False)

    def forward(self, td):
        td.set("action", torch.full(td.batch_size, int(self.action), dtype=torch.int64))
        return td


def make_envs(n=3):
    return SerialEnv(n, functools.partial(GymEnv, "CartPole-v1", categorical_action_encoding=True))


def build(total_frames, frames_per_batch, env_placement="inline", policy=None):
    g = Graph("collect")
    env = g.add(EnvSource(make_envs, total_frames=total_frames, seed=0), "envs", env_placement)
    pol = g.add(PolicyStage(policy or ConstantPolicy()), "policy")
    batcher = g.add(TrajectoryBatcher(frames_per_batch), "batcher")
    out = g.add(Collect(), "out")
    g.connect(env["obs"], pol).connect(pol, env["action"], feedback=True)
    g.connect(env["out"], batcher).connect(batcher, out)
    return g, out.op


@pytest.mark.parametrize("placement", ["inline", "thread", Process()])
async def test_feedback_topology_collects_every_frame(placement):
    g, out = build(total_frames=60, frames_per_batch=30, env_placement=placement)
    await g.run()
    assert [b.batch_size for b in out.items] == [torch.Size([3, 10]), torch.Size([3, 10])]
    batch = torch.cat(out.items, 1)
    assert (batch["action"] == 1).all()
    assert (batch.get(("collector", "policy_version")) == 0).all()
    done = batch.get(("next", "done")).squeeze(-1)
    ids = batch.get(("collector", "traj_ids"))
    for env in range(3):
        assert torch.equal(ids[env, 1:] != ids[env, :-1], done[env, :-1])
        keep = ~done[env, :-1]
        assert torch.equal(
            batch.get(("next", "observation"))[env, :-1][keep], batch["observation"][env, 1:][keep]
        )


async def test_partial_batch_is_flushed_at_end_of_stream():
    g, out = build(total_frames=45, frames_per_batch=30)
    await g.run()
    assert [b.batch_size for b in out.items] == [torch.Size([3, 10]), torch.Size([3, 5])]


async def test_policy_weights_version_is_stamped():
    weights = PolicyWeights(ConstantPolicy(0))
    weights.publish(ConstantPolicy(1))
    g, out = build(total_frames=30, frames_per_batch=30, policy=weights)
    await g.run()
    batch = out.items[0]
    assert (batch.get(("collector", "policy_version")) == 1).all()
    assert (batch["action"] == 1).all()


def test_env_error_in_process_names_the_operator_and_leaves_nothing():
    class Broken(nn.Module):
        def forward(self, td):
            return td  # writes no action

    threads = set(threading.enumerate())
    g, _ = build(total_frames=60, frames_per_batch=30, env_placement=Process(),
                 policy=Broken())
    t0 = time.monotonic()
    with pytest.raises(OperatorError, match="envs") as info:
        g.run_sync()
    assert time.monotonic() - t0 < 10
    assert "action" in str(info.value)
    deadline = time.monotonic() + 5
    while (mp.active_children() or set(threading.enumerate()) - threads) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert not mp.active_children()
    assert not {t for t in set(threading.enumerate()) - threads if t.is_alive()}


async def test_replay_sink_and_source_round_trip():
    rb = ReplayBuffer(storage=LazyTensorStorage(1000))
    g = Graph()
    env = g.add(EnvSource(make_envs, total_frames=90, seed=1), "envs")
    pol = g.add(PolicyStage(ConstantPolicy()), "policy")
    batcher = g.add(TrajectoryBatcher(30), "batcher")
    sink = g.add(ReplaySink(rb), "sink")
    g.connect(env["obs"], pol).connect(pol, env["action"], feedback=True)
    g.connect(env["out"], batcher).connect(batcher, sink)
    await g.run()
    assert len(rb) == 90 and sink.op.written == 90

    g2 = Graph()
    src = g2.add(ReplaySource(rb, 16, num_batches=3), "src")
    out = g2.add(Collect(), "out")
    g2.connect(src, out)
    await g2.run()
    assert [b.batch_size for b in out.op.items] == [torch.Size([16])] * 3
    assert set(out.op.items[0].keys()) >= {"observation", "action", "next"}


def test_ops_reject_bad_input():
    with pytest.raises(ValueError, match="total_frames"):
        EnvSource(make_envs, total_frames=0)
    with pytest.raises(ValueError, match="frames_per_batch"):
        TrajectoryBatcher(0)
    with pytest.raises(TypeError, match="callable"):
        PolicyStage(3)
    with pytest.raises(TypeError, match="extend"):
        ReplaySink(object())
    with pytest.raises(ValueError, match="batch_size"):
        ReplaySource(ReplayBuffer(), 0)
    with pytest.raises(TypeError, match="TensorDict"):
        PolicyStage(ConstantPolicy()).step({"in": [1, 2]})
    b = TrajectoryBatcher(10)
    b.step({"in": TensorDict({"next": {"done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])})
    with pytest.raises(ValueError, match="batch size"):
        b.step({"in": TensorDict({"next": {"done": torch.zeros(3, 1, dtype=torch.bool)}}, [3])})
    with pytest.raises(KeyError, match="done"):
        TrajectoryBatcher(10).step({"in": TensorDict({}, [2])})


async def test_cancellation_stops_an_endless_collection_quickly():
    g, _ = build(total_frames=None, frames_per_batch=30, env_placement=Process())
    t0 = time.monotonic()
    with anyio.move_on_after(1.0):
        await g.run()
    assert time.monotonic() - t0 < 3
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    assert not mp.active_children()
