"""BatchedPolicyServer and TransitionBatcher, hook by hook (the graph runs are in
tests/collectors/test_async_batched.py)."""

from __future__ import annotations

import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import Many
from streamrl.ops import BatchedPolicyServer, PolicyWeights, TransitionBatcher


class Echo:
    """action = observation; records the batch size of every call."""

    def __init__(self):
        self.sizes: list[tuple[int, ...]] = []

    def __call__(self, td):
        self.sizes.append(tuple(td.batch_size))
        return td.set("action", td["observation"].clone())


def obs(i: int, batch: tuple[int, ...] = ()) -> TensorDict:
    return TensorDict({"observation": torch.full((*batch, 1), float(i))}, list(batch))


def test_each_env_gets_its_own_action_from_one_call():
    policy = Echo()
    server = BatchedPolicyServer(policy, 4)
    out = server.step({"obs_3": obs(3), "obs_1": obs(1)})
    assert sorted(out) == ["action_1", "action_3"]
    assert out["action_1"]["action"].item() == 1.0 and out["action_3"]["action"].item() == 3.0
    assert policy.sizes == [(2,)]
    assert out["action_3"]["collector", "policy_version"].item() == 0
    assert out["action_3"]["policy_version"].item() == 0


def test_batched_envs_are_concatenated_and_split_back():
    policy = Echo()
    server = BatchedPolicyServer(policy, 2)
    out = server.step({"obs_0": obs(0, (3,)), "obs_1": obs(1, (2,))})
    assert policy.sizes == [(5,)]
    assert out["action_0"].batch_size == (3,) and out["action_1"].batch_size == (2,)
    assert out["action_1"]["action"].flatten().tolist() == [1.0, 1.0]
    assert server.served == 5


def test_max_batch_size_serves_the_oldest_and_keeps_the_rest():
    policy = Echo()
    server = BatchedPolicyServer(policy, 3, max_batch_size=2)
    out = server.step({"obs_0": obs(0), "obs_1": obs(1), "obs_2": obs(2)})
    assert sorted(out) == ["action_0", "action_1"]
    out = server.step({"obs_0": obs(0)})  # env 2 waited: served first
    assert sorted(out) == ["action_0", "action_2"]
    assert policy.sizes == [(2,), (2,)]


def test_min_batch_size_holds_until_enough_or_every_env_waits():
    policy = Echo()
    server = BatchedPolicyServer(policy, 3, min_batch_size=2)
    assert server.step({"obs_0": obs(0)}) is None
    assert sorted(server.step({"obs_1": obs(1)})) == ["action_0", "action_1"]
    # min_batch_size larger than the envs: holding until every env waits
    server = BatchedPolicyServer(Echo(), 2, min_batch_size=8, max_batch_size=8)
    assert server.min_batch_size == 2
    assert server.step({"obs_0": obs(0)}) is None
    assert sorted(server.step({"obs_1": obs(1)})) == ["action_0", "action_1"]


def test_server_timeout_releases_a_held_observation_at_the_next_arrival():
    server = BatchedPolicyServer(Echo(), 4, min_batch_size=4, server_timeout=0.01)
    assert server.step({"obs_0": obs(0)}) is None
    time.sleep(0.02)
    assert sorted(server.step({"obs_1": obs(1)})) == ["action_0", "action_1"]


def test_total_frames_ends_the_stream_after_the_budget():
    server = BatchedPolicyServer(Echo(), 3, total_frames=4)
    assert len(server.step({"obs_0": obs(0), "obs_1": obs(1), "obs_2": obs(2)})) == 3
    out = server.step({"obs_0": obs(0), "obs_1": obs(1)})
    assert sorted(out) == ["action_0"]  # one frame left in the budget
    with pytest.raises(StopIteration):
        server.step({"obs_0": obs(0)})


def test_shared_weights_version_and_offset_are_stamped():
    class Policy(torch.nn.Module):
        def forward(self, td):
            return td.set("action", td["observation"])

    weights = PolicyWeights(Policy())
    weights.publish()
    server = BatchedPolicyServer(weights, 1, policy_version=10, policy_version_key=None)
    out = server.step({"obs_0": obs(0)})["action_0"]
    assert out["collector", "policy_version"].item() == 11
    assert "policy_version" not in out.keys()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_envs": 0}, ValueError, "num_envs"),
        ({"max_batch_size": 0}, ValueError, "max_batch_size"),
        ({"min_batch_size": 3, "max_batch_size": 2}, ValueError, "min_batch_size"),
        ({"server_timeout": -1.0}, ValueError, "server_timeout"),
        ({"total_frames": 0}, ValueError, "total_frames"),
        ({"exploration_type": "random"}, TypeError, "exploration_type"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    args = {"num_envs": 2, **kwargs}
    with pytest.raises(error, match=match):
        BatchedPolicyServer(Echo(), **args)


def test_non_tensordict_observation_names_the_port():
    with pytest.raises(TypeError, match="obs_1"):
        BatchedPolicyServer(Echo(), 2).step({"obs_1": [1.0]})


# ---------------------------------------------------------------- TransitionBatcher

def transition(value: float, done: bool = False, batch: tuple[int, ...] = ()) -> TensorDict:
    return TensorDict({"x": torch.full(batch, value),
                       "next": {"done": torch.full((*batch, 1), done)}}, list(batch))


def test_batches_hold_exactly_frames_per_batch_across_batched_steps():
    op = TransitionBatcher(4, 2)
    assert op.step({"in_0": transition(0.0, batch=(3,))}) is None
    out = op.step({"in_1": transition(1.0, batch=(3,))})["out"]
    assert out["x"].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert out["env_index"].tolist() == [0, 0, 0, 1]
    rest = op.finish()["out"]  # the carried rows
    assert rest["x"].tolist() == [1.0, 1.0]


def test_trajectory_ids_are_unique_over_envs_and_renew_at_done():
    op = TransitionBatcher(6, 2)
    steps = [("in_0", True), ("in_1", False), ("in_0", False), ("in_1", True), ("in_0", False),
             ("in_1", False)]
    out = None
    for port, done in steps:
        out = op.step({port: transition(0.0, done)}) or out
    ids = out["out"]["collector", "traj_ids"].tolist()
    assert ids == [0, 1, 2, 1, 2, 3]  # env 0: 0, then 2; env 1: 1, then 3


def test_per_env_pieces_are_in_time_order():
    op = TransitionBatcher(4, 2, per_env=True)
    for port, v in [("in_1", 10.0), ("in_0", 0.0), ("in_1", 11.0), ("in_0", 1.0)]:
        out = op.step({port: transition(v)})
    pieces = out["out"]
    assert isinstance(pieces, Many)
    assert [p["x"].tolist() for p in pieces.items] == [[0.0, 1.0], [10.0, 11.0]]


def test_total_frames_cuts_the_last_batch():
    op = TransitionBatcher(4, 1, total_frames=6)
    outs = [op.step({"in_0": transition(float(t))}) for t in range(8)]
    assert [o["out"].batch_size[0] for o in outs if o] == [4]
    assert op.finish()["out"]["x"].tolist() == [4.0, 5.0]


def test_transition_without_done_is_refused():
    with pytest.raises(KeyError, match="done"):
        TransitionBatcher(4, 1).step({"in_0": TensorDict({"x": torch.zeros(())}, [])})
