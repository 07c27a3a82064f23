"""RayCollector (TorchRL 0.14's ``torchrl.collectors.distributed.RayCollector``): rollouts on
Ray actors of a local Ray, weights sent from the driver."""

from __future__ import annotations

import functools
import os
import signal

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.collectors import MultiCollector
from streamrl.collectors.distributed import RayCollector
from streamrl.envs import GymEnv

_ENV = functools.partial(GymEnv, "Pendulum-v1")
_REMOTE = {"num_cpus": 0, "memory": 0}  # two or three actors on the test's 2 CPUs




def _policy() -> TensorDictModule:
    return TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["action"])


def test_async_collects_the_budget_from_two_actors(ray):
    collector = RayCollector([_ENV, _ENV], _policy(), frames_per_batch=50, total_frames=400,
                             remote_configs=_REMOTE)
    assert isinstance(collector, RayCollector) and isinstance(collector, MultiCollector)
    sizes, workers = [], set()
    for batch in collector:
        sizes.append(batch.numel())
        workers |= set((batch["collector", "traj_ids"] % 2).tolist())
    collector.shutdown()
    assert sum(sizes) == 400 and set(sizes) == {50}
    assert workers == {0, 1}  # both actors contributed
    stats = collector.graph_stats().operators  # the actors' stats came back
    assert stats["rollout0"].placement == stats["rollout1"].placement == "ray"
    assert stats["rollout0"].items_out + stats["rollout1"].items_out >= 400


def test_sync_stacks_the_collectors_batches(ray):
    collector = RayCollector(_ENV, None, num_collectors=2, sync=True, frames_per_batch=40,
                             total_frames=120, remote_configs=_REMOTE)
    shapes = [batch.batch_size for batch in collector]
    collector.shutdown()
    assert shapes == [torch.Size([2, 20])] * 3


def test_weights_reach_the_actors(ray):
    policy = _policy()
    collector = RayCollector(_ENV, policy, frames_per_batch=20, total_frames=2000,
                             remote_configs=_REMOTE)
    seen = []
    for i, batch in enumerate(collector):
        seen.append(batch)
        if i == 0:
            with torch.no_grad():
                policy.module.weight.zero_()
                policy.module.bias.fill_(0.5)
            collector.update_policy_weights_()
        if int(batch["collector", "policy_version"].max()) >= 1:
            break
    collector.shutdown()
    last = seen[-1]
    assert int(last["collector", "policy_version"].min()) == 1
    assert torch.allclose(last["action"], torch.full_like(last["action"], 0.5))
    assert collector.stats()["policy_version"] == 1


def test_weights_given_as_a_state_dict_to_one_worker(ray):
    policy = _policy()
    collector = RayCollector([_ENV, _ENV], policy, frames_per_batch=20, total_frames=10_000,
                             remote_configs=_REMOTE)
    new = _policy()
    with torch.no_grad():
        new.module.weight.zero_()
        new.module.bias.fill_(-1.0)
    collector.update_policy_weights_(new.state_dict(), worker_ids=1)
    got = {}
    for batch in collector:
        worker = int(batch["collector", "traj_ids"][0] % 2)
        got[worker] = batch
        if len(got) == 2 and int(got[1]["collector", "policy_version"][0]) == 1:
            break
    collector.shutdown()
    assert torch.all(got[1]["action"] == -1.0)
    assert int(got[0]["collector", "policy_version"].max()) == 0
    assert not torch.all(got[0]["action"] == -1.0)


def _kill_actor_of(ray, operator: str) -> str:
    """SIGKILL the process of the actor running ``operator``; return the actor's name."""
    (entry,) = [a for a in ray.util.list_named_actors(all_namespaces=True)
                if f":{operator}:" in a["name"]]
    actor = ray.get_actor(entry["name"], namespace=entry["namespace"])
    _node, _ip, pid = ray.get(actor.ready.remote())
    os.kill(pid, signal.SIGKILL)
    return entry["name"]


def test_a_killed_collector_actor_is_replaced_and_the_budget_is_met(ray):
    """remote_configs max_restarts: a collector's actor SIGKILLed mid-run is replaced; its
    rollout continues (frame budget, trajectory ids, the newest weights), the iterator never
    sees the death."""
    policy = _policy()
    collector = RayCollector([_ENV, _ENV], policy, frames_per_batch=50, total_frames=1500,
                             remote_configs={**_REMOTE, "max_restarts": 1})
    with torch.no_grad():
        policy.module.weight.zero_()
        policy.module.bias.fill_(0.25)
    collector.update_policy_weights_()
    sizes, before, after, killed = [], [], [], None
    for batch in collector:
        sizes.append(batch.numel())
        worker = int(batch["collector", "traj_ids"][0] % 2)
        if worker == 0:
            (after if killed else before).append(batch)
        if killed is None and len(before) == 3:
            killed = _kill_actor_of(ray, "rollout0")
    collector.shutdown()
    assert killed is not None and len(after) >= 2, (len(before), len(after))
    assert sum(sizes) == 1500 and set(sizes) == {50}  # the whole budget, no batch twice
    ids_before = set(before[-1]["collector", "traj_ids"].tolist())
    ids_after = set(after[0]["collector", "traj_ids"].tolist())
    assert min(ids_after) >= min(ids_before)  # ids continue (Pendulum's episode, too)
    last = after[-1]
    assert int(last["collector", "policy_version"].min()) == 1  # the weights were sent again
    assert torch.allclose(last["action"], torch.full_like(last["action"], 0.25))


def test_unsupported_arguments_are_refused():
    with pytest.raises(ValueError, match="max_restarts must be an int >= 0"):
        RayCollector(_ENV, None, total_frames=10, frames_per_batch=5,
                     remote_configs={"max_restarts": -1})
    with pytest.raises(ValueError, match="max_restarts needs sync=False"):
        RayCollector(_ENV, None, total_frames=10, frames_per_batch=5, sync=True,
                     remote_configs={"max_restarts": 1})
    with pytest.raises(ValueError, match="weight_sync_schemes"):
        RayCollector(_ENV, None, frames_per_batch=10, weight_sync_schemes={"policy": 1})
    with pytest.raises(TypeError, match="collector_class"):
        RayCollector(_ENV, None, frames_per_batch=10, collector_class="MultiSyncDataCollector")
    with pytest.raises(ValueError, match="num_collectors"):
        RayCollector([_ENV, _ENV], None, frames_per_batch=10, num_collectors=3)
    with pytest.raises(ValueError, match="num_workers_per_collector"):
        RayCollector(_ENV, None, frames_per_batch=10, num_workers_per_collector=0)
