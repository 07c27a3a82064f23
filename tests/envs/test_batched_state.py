"""SerialEnv / ParallelEnv with sub-envs that have a state spec: state entries given to
step/reset reach the sub-envs, and those in the output specs come back (as in TorchRL)."""

import functools

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import Bounded, Categorical, Composite, Unbounded
from streamrl.envs import (
    Compose,
    EnvBase,
    EnvClosedError,
    ParallelEnv,
    RewardSum,
    SerialEnv,
    StepCounter,
    TensorDictPrimer,
    TransformedEnv,
)
from streamrl.errors import RemoteError
from streamrl.testing import EnvContractTests


class GoalEnv(EnvBase):
    """``goal`` is a state-only input: the observation after a step is ``goal + steps``;
    reset reads ``goal`` when given (default 5) and returns it and the observation
    ``[goal, 0]``. A step without
    ``goal`` raises KeyError with ``strict`` (else the goal is 0)."""

    def __init__(self, limit=3, strict=False):
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded((2,)))
        self.state_spec = Composite(goal=Unbounded((1,)))
        self.action_spec = Bounded(-1.0, 1.0, (1,))
        self.limit, self.strict = limit, strict
        self.steps = 0

    def _set_seed(self, seed):
        pass

    def _reset(self, td):
        goal = td.get("goal", None) if td is not None else None
        goal = torch.full((1,), 5.0) if goal is None else goal.clone()
        self.steps = 0
        return TensorDict({"observation": torch.cat([goal, torch.zeros(1)]), "goal": goal}, [])

    def _step(self, td):
        goal = td.get("goal", None)
        if goal is None:
            if self.strict:
                raise KeyError("step: no 'goal' in the input")
            goal = torch.zeros(1)
        self.steps += 1
        done = torch.tensor([self.steps >= self.limit])
        return TensorDict(
            {
                "observation": torch.cat([goal + self.steps, td["action"]]),
                "reward": torch.ones(1),
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros(1, dtype=torch.bool),
            },
            [],
        )


def make_primed():
    return TransformedEnv(GoalEnv(limit=4), TensorDictPrimer(h=Unbounded((2,))))


BATCHED = [SerialEnv, ParallelEnv]


@pytest.fixture(params=BATCHED, ids=["serial", "parallel"])
def cls(request):
    return request.param


class TestSerialStateContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, make_primed)


class TestParallelStateContract(EnvContractTests):
    def make_env(self):
        return ParallelEnv(2, make_primed)


def test_specs_and_reset_output_carry_the_state_entries(cls):
    with cls(2, make_primed) as env:
        assert set(env.state_spec.keys()) == {"goal", "h"}
        assert env.state_spec["h"].shape == (2, 2)
        td = env.reset()
        # h is an observation as well (the primer's); goal is what the sub-envs' reset returned
        assert set(td.keys()) == {"observation", "goal", "h", "done", "terminated", "truncated"}
        assert torch.equal(td["h"], torch.zeros(2, 2))
        assert torch.equal(td["goal"], torch.full((2, 1), 5.0))


def test_state_given_to_step_reaches_the_sub_envs_and_comes_back(cls):
    with cls(2, make_primed) as env:
        td = env.reset()
        td["goal"] = torch.tensor([[10.0], [20.0]])
        td["h"] = torch.arange(4.0).view(2, 2)
        td["action"] = torch.tensor([[0.5], [-0.5]])
        out = env.step(td)
        assert torch.equal(out["next", "observation"], torch.tensor([[11.0, 0.5], [21.0, -0.5]]))
        assert torch.equal(out["next", "h"], torch.arange(4.0).view(2, 2))
        assert set(out["next"].keys()) == {
            "observation", "h", "reward", "done", "terminated", "truncated"
        }


def test_state_given_to_reset_reaches_the_sub_envs(cls):
    with cls(2, make_primed) as env:
        td = env.reset(TensorDict({"goal": torch.tensor([[1.0], [2.0]])}, [2]))
        assert torch.equal(td["observation"][:, 0], torch.tensor([1.0, 2.0]))
        # without it the sub-env takes its default
        assert torch.equal(env.reset()["observation"][:, 0], torch.tensor([5.0, 5.0]))


def test_partial_reset_passes_only_the_reset_rows_state(cls):
    with cls(2, make_primed) as env:
        td = env.reset()
        td["goal"] = torch.tensor([[1.0], [2.0]])
        td["action"] = torch.zeros(2, 1)
        env.step(td)
        part = TensorDict(
            {"goal": torch.tensor([[7.0], [8.0]]), "_reset": torch.tensor([[False], [True]])},
            [2],
        )
        out = env.reset(part)
        # row 0 keeps the observation of its step, row 1 was reset with its goal
        assert torch.equal(out["observation"], torch.tensor([[2.0, 0.0], [8.0, 0.0]]))


def test_rollouts_match_between_serial_and_parallel():
    def policy(td):
        return td.set("action", torch.full((2, 1), 0.25))

    def run(cls):
        with cls(2, make_primed) as env:
            env.set_seed(0)
            td = env.reset()
            td["goal"] = torch.tensor([[1.0], [2.0]])
            return env.rollout(
                9, policy, auto_reset=False, tensordict=td, break_when_any_done=False
            )

    serial, parallel = run(SerialEnv), run(ParallelEnv)
    assert serial.batch_size == (2, 9)
    assert (serial == parallel).all()
    # the episodes ended at step 4: the sub-envs were reset and carried on
    assert serial["next", "done"][:, 3].all()
    # the goal given at the start was carried through the steps and the resets
    assert torch.equal(serial["next", "observation"][:, 5, 0], torch.tensor([3.0, 4.0]))


def test_missing_state_entry_is_the_sub_envs_error():
    strict = functools.partial(GoalEnv, strict=True)
    with SerialEnv(2, strict) as env:
        td = env.rand_action(env.reset().exclude("goal"))
        with pytest.raises(KeyError, match="goal"):
            env.step(td)
    with ParallelEnv(2, strict) as env:
        td = env.rand_action(env.reset().exclude("goal"))
        with pytest.raises(RemoteError, match="goal"):
            env.step(td)


def test_state_entry_of_the_wrong_shape_is_refused_before_stepping(cls):
    with cls(2, make_primed) as env:
        td = env.rand_action(env.reset())
        td["goal"] = torch.zeros(2, 1)
        env.step(td)
        td = env.rand_action(env.reset())
        td.set("goal", torch.zeros(2, 3))
        with pytest.raises(ValueError, match=r"'goal'.*\(2, 1\).*\(2, 3\)"):
            env.step(td)


def test_closed_state_env_refuses_steps(cls):
    env = cls(2, make_primed)
    td = env.reset()
    env.close()
    env.close()  # idempotent
    with pytest.raises(EnvClosedError):
        env.step(env.rand_action(td))


def test_view_of_a_state_env_takes_the_state_to_its_sub_envs(cls):
    with cls(3, make_primed) as env:
        view = env[[2, 0]]
        td = view.reset(TensorDict({"goal": torch.tensor([[3.0], [4.0]])}, [2]))
        assert torch.equal(td["goal"], torch.tensor([[3.0], [4.0]]))
        td["h"] = torch.ones(2, 2)
        out = view.step(view.rand_action(td))
        assert torch.equal(out["next", "observation"][:, 0], torch.tensor([4.0, 5.0]))
        assert torch.equal(out["next", "h"], torch.ones(2, 2))


class TwoActions(EnvBase):
    """Two action keys (no flat step buffers either): the observation is ``[a, b]``."""

    def __init__(self):
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded((2,)))
        self.full_action_spec = Composite(a=Bounded(-1.0, 1.0, (1,)), b=Bounded(-1.0, 1.0, (1,)))

    def _set_seed(self, seed):
        pass

    def _reset(self, td):
        return TensorDict({"observation": torch.zeros(2)}, [])

    def _step(self, td):
        done = torch.zeros(1, dtype=torch.bool)
        return TensorDict(
            {"observation": torch.cat([td["a"], td["b"]]), "reward": torch.zeros(1),
             "done": done, "terminated": done.clone(), "truncated": done.clone()},
            [],
        )


def test_several_action_keys_take_the_same_path(cls):
    with cls(2, TwoActions) as env:
        td = env.reset()
        td["a"], td["b"] = torch.tensor([[0.5], [-0.5]]), torch.tensor([[0.25], [1.0]])
        out = env.step(td)
        assert torch.equal(out["next", "observation"], torch.tensor([[0.5, 0.25], [-0.5, 1.0]]))
        assert env.rollout(3).batch_size == (2, 3)


def make_counted():
    return TransformedEnv(GoalEnv(limit=10), Compose(StepCounter(), RewardSum()))


def test_observations_carried_by_sub_env_transforms_reach_the_sub_envs(cls):
    # GoalEnv has a state spec (the general path): the step counts and episode returns that
    # the sub-envs' transforms carry from step to step come from the root the caller gives
    with cls(2, make_counted) as env:
        for roll in (env.rollout(4), env.rollout(4, policy=env.rand_action)):
            assert roll["next", "step_count"][0].squeeze(-1).tolist() == [1, 2, 3, 4]
            assert roll["next", "episode_reward"][1].squeeze(-1).tolist() == [1, 2, 3, 4]
        td = env.reset()
        td["step_count"] = torch.tensor([[5], [0]])  # the caller's root is what they read
        stepped = env.step(env.rand_action(td))
        assert stepped["next", "step_count"].squeeze(-1).tolist() == [6, 1]
        view = env[1:]
        view_td = view.rand_step(TensorDict({"step_count": torch.tensor([[7]])}, [1])
                                 .update(view.reset()).set("step_count", torch.tensor([[7]])))
        assert view_td["next", "step_count"].tolist() == [[8]]


class GroupDoneEnv(GoalEnv):
    """GoalEnv with a nested done flag for a group of 2 agents."""

    def __init__(self):
        super().__init__(limit=2)
        self.full_done_spec["agents", "done"] = Categorical(2, (2, 1), dtype=torch.bool)

    def _reset(self, td):
        return super()._reset(td).set(("agents", "done"), torch.zeros(2, 1, dtype=torch.bool))

    def _step(self, td):
        out = super()._step(td)
        return out.set(("agents", "done"), out["done"].expand(2, 1).clone())


def test_nested_done_flags_are_part_of_the_batched_root(cls):
    with cls(2, GroupDoneEnv) as env:
        assert ("agents", "done") in env.done_keys
        td = env.reset()
        assert td["agents", "done"].shape == (2, 2, 1) and not td["agents", "done"].any()
        roll = env.rollout(3, break_when_any_done=False)
        # (the reset after the done step does not write into the step's nested flags)
        assert roll["next", "agents", "done"][0].squeeze(-1).tolist() == [
            [False, False], [True, True], [False, False]
        ]
