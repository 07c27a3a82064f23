"""Rollout, TrajectoryIds, PolicyWeights, Trigger, StackBatches."""

from __future__ import annotations

import functools

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl._mp import Worker
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.ops import PolicyWeights, Rollout, StackBatches, Trigger
from streamrl.ops._trajectories import TrajectoryIds


def cartpole():
    return GymEnv("CartPole-v1")


def pendulum():
    return GymEnv("Pendulum-v1")


def test_trajectory_ids_new_id_after_done_and_state_round_trip():
    ids = TrajectoryIds(3)
    assert ids.step(torch.tensor([False, True, False])).tolist() == [0, 1, 2]
    assert ids.step(torch.tensor([True, True, False])).tolist() == [0, 3, 2]
    assert ids.step(torch.tensor([False, False, False])).tolist() == [4, 5, 2]
    other = TrajectoryIds(3)
    other.load_state_dict(ids.state_dict())
    assert other.step(torch.zeros(3, dtype=torch.bool)).tolist() == [4, 5, 2]
    with pytest.raises(ValueError, match="done flag per env"):
        ids.step(torch.zeros(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="num_envs"):
        TrajectoryIds(0)


def test_rollout_batches_have_env_by_time_layout_and_consistent_transitions():
    r = Rollout(functools.partial(SerialEnv, 2, cartpole), frames_per_batch=100, seed=0)
    r.open()
    try:
        batch = r.step({})["out"]
        assert batch.batch_size == (2, 50)
        ids = batch.get(("collector", "traj_ids"))
        done = batch.get(("next", "done")).squeeze(-1)
        # within an env, the id changes exactly after a done step
        for env in range(2):
            changes = (ids[env, 1:] != ids[env, :-1])
            assert torch.equal(changes, done[env, :-1])
            # the next observation of a step that is not done is the next step's observation
            keep = ~done[env, :-1]
            nxt = batch.get(("next", "observation"))[env, :-1][keep]
            cur = batch.get("observation")[env, 1:][keep]
            assert torch.equal(nxt, cur)
        assert (batch.get(("collector", "policy_version")) == 0).all()
        assert len(set(ids[0].tolist()) & set(ids[1].tolist())) == 0
    finally:
        r.close()


def test_rollout_same_seed_same_data_and_total_frames():
    def run():
        r = Rollout(cartpole, frames_per_batch=40, total_frames=80, seed=3)
        r.open()
        out = [r.step({})["out"] for _ in range(2)]
        with pytest.raises(StopIteration):
            r.step({})
        r.close()
        return torch.cat(out)

    a, b = run(), run()
    assert a.batch_size == (80,)
    assert torch.equal(a["observation"], b["observation"])
    assert torch.equal(a["action"], b["action"])


def test_rollout_truncates_long_trajectories():
    r = Rollout(pendulum, frames_per_batch=30, max_frames_per_traj=7, seed=0)
    r.open()
    batch = r.step({})["out"]
    r.close()
    done = batch.get(("next", "done")).squeeze(-1)
    truncated = batch.get(("next", "truncated")).squeeze(-1)
    assert done.nonzero().squeeze(-1).tolist() == [6, 13, 20, 27]
    assert torch.equal(done, truncated)
    # the step after a truncation starts a new episode: a fresh trajectory id
    ids = batch.get(("collector", "traj_ids"))
    assert ids[7] == ids[6] + 1 and ids[8] == ids[7]


def test_rollout_projects_actions_into_the_spec():
    class Big(nn.Module):
        def forward(self, td):
            td.set("action", torch.full((1,), 50.0))
            return td

    r = Rollout(pendulum, Big(), frames_per_batch=5)
    r.open()
    batch = r.step({})["out"]
    r.close()
    assert torch.all(batch["action"] == 2.0)  # Pendulum's high bound

    raw = Rollout(pendulum, Big(), frames_per_batch=5, project_actions=False)
    raw.open()
    raw.env.check_actions = False  # let the env take what the policy gives
    batch = raw.step({})["out"]
    raw.close()
    assert torch.all(batch["action"] == 50.0)


def test_rollout_bad_arguments():
    with pytest.raises(ValueError, match="frames_per_batch"):
        Rollout(cartpole, frames_per_batch=0)
    with pytest.raises(ValueError, match="total_frames"):
        Rollout(cartpole, frames_per_batch=1, total_frames=0)
    with pytest.raises(TypeError, match="callable"):
        Rollout(cartpole, policy=3, frames_per_batch=1)
    with pytest.raises(ValueError, match="worker_index"):
        Rollout(cartpole, frames_per_batch=1, worker_index=2, num_workers=2)
    r = Rollout(lambda: "not an env", frames_per_batch=1)
    with pytest.raises(TypeError, match="EnvBase"):
        r.open()


def test_policy_weights_publish_is_seen_by_another_process():
    net = nn.Linear(2, 1)
    weights = PolicyWeights(net)

    class Reader:
        def __init__(self, w):
            self.w = w

        def read(self):
            return self.w.version, self.w.policy.weight.detach().clone().tolist()

    with Worker(lambda: Reader(weights), name="reader") as w:
        assert w.call("read")[0] == 0
        with torch.no_grad():
            net.weight.fill_(0.5)
        assert weights.publish(net) == 1
        version, value = w.call("read")
    assert version == 1 and value == [[0.5, 0.5]]


def test_policy_weights_errors():
    with pytest.raises(TypeError, match=r"nn\.Module"):
        PolicyWeights(lambda td: td)
    with pytest.raises(ValueError, match="lazy"):
        PolicyWeights(nn.LazyLinear(2))
    weights = PolicyWeights(nn.Linear(2, 1))
    with pytest.raises(ValueError, match="do not match"):
        weights.publish(nn.Linear(3, 1, bias=False))


def test_trigger_and_stack_batches():
    t = Trigger(poll_s=0.01)
    assert t.step({}) is None  # nothing asked for yet
    t.pull(2)
    t.stop()
    assert set(t.step({})) == {"out"}
    assert set(t.step({})) == {"out"}
    assert t.emitted == 2
    with pytest.raises(StopIteration):
        t.step({})
    s = StackBatches(2)
    assert s.inputs == ("in0", "in1")
    a = TensorDict({"x": torch.zeros(3)}, [3])
    out = s.step({"in0": a, "in1": a})["out"]
    assert out.batch_size == (2, 3)
    with pytest.raises(ValueError, match="equal batch sizes"):
        s.step({"in0": a, "in1": TensorDict({"x": torch.zeros(2)}, [2])})
