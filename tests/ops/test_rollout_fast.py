"""Rollout's buffered per-step path gives exactly the batches of the generic per-step loop."""

from __future__ import annotations

import functools

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.ops import Rollout
from streamrl.ops._trajectories import TrajectoryIds


def cartpole():
    return GymEnv("CartPole-v1", categorical_action_encoding=True)  # index actions


def pendulum():
    return GymEnv("Pendulum-v1")


class _ArgmaxWithLogits(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 2)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.lin(obs)
        return logits.argmax(-1), logits


def argmax_policy() -> TensorDictModule:
    return TensorDictModule(
        _ArgmaxWithLogits(), in_keys=["observation"], out_keys=["action", "logits"]
    )


def collect(make, policy, fast: bool, batches: int = 3, **kwargs) -> list:
    r = Rollout(make, policy, frames_per_batch=kwargs.pop("frames", 60), seed=3, **kwargs)
    r.use_fast_path = fast
    r.open()
    try:
        return [r.step({})["out"] for _ in range(batches)]
    finally:
        r.close()


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.batch_size == y.batch_size
        assert set(x.keys(True, True)) == set(y.keys(True, True))
        for key in x.keys(True, True):
            u, v = x.get(key), y.get(key)
            assert u.dtype == v.dtype and u.shape == v.shape, key
            assert torch.equal(u, v), key


MAKERS = {
    "gym": cartpole,
    "serial": functools.partial(SerialEnv, 3, cartpole),
    "parallel": functools.partial(ParallelEnv, 2, cartpole),
}


@pytest.mark.parametrize("env", sorted(MAKERS))
@pytest.mark.parametrize("with_policy", [False, True])
def test_fast_path_matches_generic(env, with_policy):
    policy = argmax_policy() if with_policy else None
    fast = collect(MAKERS[env], policy, True)
    generic = collect(MAKERS[env], policy, False)
    assert_same(fast, generic)
    batch = fast[0]
    if with_policy:
        assert "logits" in batch.keys()
    # episodes end inside the batches, so resets and new trajectory ids are exercised
    assert sum(int(b.get(("next", "done")).sum()) for b in fast) > 0


def test_fast_path_continuous_actions_and_projection():
    class Big(nn.Module):  # out of Pendulum's [-2, 2] bounds: projected before the step
        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return obs[..., :1] * 10

    policy = TensorDictModule(Big(), in_keys=["observation"], out_keys=["action"])
    fast = collect(functools.partial(SerialEnv, 2, pendulum), policy, True, frames=40)
    assert_same(fast, collect(functools.partial(SerialEnv, 2, pendulum), policy, False, frames=40))
    assert fast[0].get("action").abs().max() <= 2


def test_fast_path_records_an_observation_the_policy_replaces():
    def policy(td):
        td.set("observation", td.get("observation") * 2)
        td.set("action", torch.zeros((), dtype=torch.int64))
        return td

    assert_same(collect(cartpole, policy, True), collect(cartpole, policy, False))


def test_policy_writing_under_next_takes_the_generic_path():
    def policy(td):  # a recurrent policy: its next state goes under "next"
        td.set("action", torch.ones((2,), dtype=torch.int64))
        hidden = td.get("hidden", torch.zeros(2, 3))
        td.set("hidden", hidden)
        td.set(("next", "hidden"), hidden + 1)
        return td

    fast = collect(lambda: SerialEnv(2, cartpole), policy, True)
    assert_same(fast, collect(lambda: SerialEnv(2, cartpole), policy, False))
    assert torch.equal(fast[1].get(("next", "hidden"))[:, -1], torch.full((2, 3), 60.0))


def test_fast_path_rejects_bad_actions_like_step():
    def bad(td):
        td.set("action", torch.full((), 5, dtype=torch.int64))
        return td

    for fast in (True, False):  # (projection, on by default, would clamp it)
        with pytest.raises(ValueError, match="out of the action spec"):
            collect(cartpole, bad, fast, batches=1, project_actions=False)

    def missing(td):
        return td

    with pytest.raises(KeyError, match="missing action key"):
        collect(cartpole, missing, True, batches=1)


def test_env_state_after_fast_collection_allows_partial_reset():
    # SerialEnv keeps its sub-envs' current observations: a partial reset afterwards must
    # return the other rows' observations as the generic path leaves them
    def state_after(fast: bool) -> TensorDict:
        r = Rollout(lambda: SerialEnv(2, cartpole), None, frames_per_batch=20, seed=0)
        r.use_fast_path = fast
        r.open()
        try:
            r.step({})
            mask = torch.tensor([[True], [False]])
            out = r.env.reset(TensorDict({"_reset": mask}, batch_size=[2]))
            return out.get("observation")[1].clone(), r._td.get("observation")[1].clone()
        finally:
            r.close()

    fast_state, fast_root = state_after(True)
    generic_state, _ = state_after(False)
    assert torch.equal(fast_state, generic_state)
    assert torch.equal(fast_state, fast_root)


def test_max_frames_per_traj_still_truncates():
    fast = collect(cartpole, None, True, max_frames_per_traj=5)
    assert_same(fast, collect(cartpole, None, False, max_frames_per_traj=5))
    assert bool(fast[0].get(("next", "truncated"))[4])


@pytest.mark.parametrize("seed", range(5))
def test_trajectory_ids_step_many_matches_step(seed):
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(7, 4, generator=g) < 0.3
    one, many = TrajectoryIds(4, first_id=2), TrajectoryIds(4, first_id=2)
    expected = torch.stack([one.step(d) for d in done])
    assert torch.equal(many.step_many(done), expected)
    assert torch.equal(many.current, one.current) and many.next_id == one.next_id
    assert torch.equal(many.step_many(torch.zeros(3, 4, dtype=torch.bool)), one.current.expand(3, 4))
    with pytest.raises(ValueError, match=r"shape \[T, 4\]"):
        many.step_many(torch.zeros(3, dtype=torch.bool))


def test_out_of_range_discrete_actions_are_projected_like_the_generic_path():
    def wild(td):  # 5 and -3: clamped to 1 and 0 by the projection
        td.set("action", torch.tensor([5, -3]))
        return td

    make = functools.partial(SerialEnv, 2, cartpole)
    fast = collect(make, wild, True)
    assert_same(fast, collect(make, wild, False))
    assert fast[0].get("action")[:, 0].tolist() == [1, 0]


@pytest.mark.parametrize("shape", [(), (2,), (2, 3), (8, 9)])
def test_categorical_value_check_small_and_large(shape):
    # a few actions are checked with Python compares, many with tensor ops: same answers
    from streamrl.data.specs import Categorical

    spec = Categorical(3, shape=shape)
    for value in (0, 2, 3, -1):
        action = torch.full(shape, value, dtype=torch.int64)
        assert spec.is_in(action) == (0 <= value < 3)
    if shape:
        mixed = torch.zeros(shape, dtype=torch.int64)
        mixed.view(-1)[-1] = 3
        assert not spec.is_in(mixed)


def test_probabilistic_actor_batches_match_the_generic_path():
    # the PPO pipeline's actor: logits, sampled action and its log-probability
    from streamrl.modules import MLP, Categorical, ProbabilisticActor

    make = functools.partial(SerialEnv, 3, cartpole)
    with make() as probe:
        spec = probe.action_spec
    torch.manual_seed(0)
    actor = ProbabilisticActor(
        TensorDictModule(MLP(in_features=4, out_features=2, num_cells=[8]),
                         in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=Categorical,
        return_log_prob=True,
        spec=spec,
    )
    outs = []
    for fast in (True, False):
        torch.manual_seed(1)  # the same samples (Rollout seeds torch with its seed too)
        outs.append(collect(make, actor, fast))
    assert_same(*outs)
    assert {"logits", "action"} <= set(outs[0][0].keys())
    assert len(set(outs[0][0].keys())) > 8  # the log-probability entry came along
