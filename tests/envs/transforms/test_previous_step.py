"""PreviousStepInputs: each step's observations hold the action, reward and done flag that led
there, a reset zeros them (only the rows reset, in a batched env), the specs hold, and the
transform refuses to run outside an env."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.envs import (
    GymEnv,
    PointNavigationEnv,
    PreviousStepInputs,
    SerialEnv,
    TransformedEnv,
)
from streamrl.envs.utils import check_env_specs
from streamrl.testing import EnvContractTests


class TestPendulumContract(EnvContractTests):
    def make_env(self):
        return TransformedEnv(GymEnv("Pendulum-v1"), PreviousStepInputs())


class TestCartPoleBatchContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, lambda: TransformedEnv(GymEnv("CartPole-v1"), PreviousStepInputs()))


def test_a_rollout_carries_the_step_before():
    env = TransformedEnv(GymEnv("Pendulum-v1"), PreviousStepInputs())
    check_env_specs(env, seed=0)
    rollout = env.rollout(6)
    nxt = rollout["next"]
    torch.testing.assert_close(nxt["prev_action"], rollout["action"])
    torch.testing.assert_close(nxt["prev_reward"], nxt["reward"])
    assert (nxt["prev_done"] == nxt["done"].float()).all()
    # what the policy saw at t+1 is what happened at t
    torch.testing.assert_close(rollout["prev_action"][1:], rollout["action"][:-1])
    assert (rollout["prev_action"][0] == 0).all() and (rollout["prev_reward"][0] == 0).all()


def test_one_hot_actions_stay_one_hot():
    env = TransformedEnv(GymEnv("CartPole-v1"), PreviousStepInputs())
    assert env.observation_spec["prev_action"].shape == env.action_spec.shape == (2,)
    td = env.reset()
    out = env.step(td.set("action", torch.tensor([0, 1])))["next"]
    assert out["prev_action"].tolist() == [0.0, 1.0]


def test_a_partial_reset_zeros_only_the_rows_reset():
    env = TransformedEnv(PointNavigationEnv(goal=[0.5, 0.5], batch_size=[2]),
                         PreviousStepInputs())
    td = env.reset()
    out = env.step(td.set("action", torch.full((2, 2), 0.1)))["next"]
    again = env.reset(out.clone().set("_reset", torch.tensor([[True], [False]])))
    assert again["prev_action"].tolist() == [[0.0, 0.0], [pytest.approx(0.1), pytest.approx(0.1)]]
    assert again["prev_reward"][0].item() == 0 and again["prev_reward"][1].item() < 0


def test_bad_use_is_named():
    with pytest.raises(ValueError, match="out_keys must name 3 entries"):
        PreviousStepInputs(out_keys=["a", "r"])
    with pytest.raises(NotImplementedError, match="use it inside a TransformedEnv"):
        PreviousStepInputs()(TensorDict({"action": torch.zeros(1)}, []))
