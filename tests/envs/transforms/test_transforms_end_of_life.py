"""EndOfLifeTransform: a lost life flags the step, lives are carried, the default ALE
attribute path through a GymEnv, SerialEnv sub-envs, loss keys, bad input."""

from __future__ import annotations

import types

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv

from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.transforms import EndOfLifeTransform, TransformedEnv


class LivesEnv(CountingEnv):
    """CountingEnv with 3 lives, one lost every second step: ``lives = 3 - count // 2``."""

    def lives(self):
        return (3 - self.count // 2).reshape(self.batch_size)


def test_life_loss_and_done_flag_the_step():
    env = TransformedEnv(LivesEnv(max_count=5), EndOfLifeTransform(eol_attribute="lives"))
    r = env.rollout(5)
    # counts 1..5: lives 3, 2, 2, 1, 1; lost at counts 2 and 4, done at 5
    assert r["next", "lives"].tolist() == [3, 2, 2, 1, 1]
    assert r["lives"].tolist() == [3, 3, 2, 2, 1]
    assert r["next", "end-of-life"].squeeze(-1).tolist() == [False, True, False, True, True]
    assert not r["end-of-life"][0].any()  # reset: no end of life
    assert r["next", "done"].squeeze(-1).tolist() == [False] * 4 + [True]
    env.close()


def test_custom_keys_and_batched_rows():
    t = EndOfLifeTransform(eol_key="eol", lives_key=("info", "lives"), eol_attribute="lives")
    env = TransformedEnv(LivesEnv(batch_size=(2,), max_count=9), t)
    td = env.reset()
    assert td["info", "lives"].tolist() == [3, 3] and td["eol"].shape == (2, 1)
    env.base_env.count[1] = 1  # sub-env 1 is one step ahead: it loses its life first
    td = env.rand_step(td)
    assert td["next", "eol"].squeeze(-1).tolist() == [False, True]
    assert td["next", "info", "lives"].tolist() == [3, 2]
    assert env.observation_spec["eol"].shape == (2, 1)
    assert env.observation_spec["info", "lives"].dtype == torch.int64
    env.close()


def test_default_attribute_is_gym_unwrapped_ale_lives():
    env = GymEnv("CartPole-v1")
    lives = iter([5, 5, 4])
    env.unwrapped.ale = types.SimpleNamespace(lives=lambda: next(lives))
    env = TransformedEnv(env, EndOfLifeTransform())
    td = env.reset()
    td = env.step(env.rand_action(td))
    assert td["next", "lives"].item() == 5 and not td["next", "end-of-life"].item()
    td = env.step(env.rand_action(td["next"].clone()))
    assert td["next", "lives"].item() == 4 and td["next", "end-of-life"].item()
    env.close()


def test_serial_sub_envs_are_read_and_parallel_base_refused():
    fns = [lambda: LivesEnv(max_count=9), lambda: LivesEnv(max_count=9)]
    env = TransformedEnv(SerialEnv(2, fns), EndOfLifeTransform(eol_attribute="lives"))
    r = env.rollout(2)
    assert r["next", "lives"].tolist() == [[3, 2], [3, 2]]
    env.close()
    env = TransformedEnv(
        ParallelEnv(2, lambda: LivesEnv(), mp_start_method="fork"),
        EndOfLifeTransform(eol_attribute="lives"),
    )
    with pytest.raises(TypeError, match="inside each sub-env"):
        env.reset()
    env.close()


def test_register_keys_sets_loss_done_and_terminated():
    from streamrl.objectives import DQNLoss

    loss = DQNLoss(torch.nn.Linear(3, 2), action_space="categorical")
    EndOfLifeTransform(eol_key="eol").register_keys(loss)
    assert loss.tensor_keys.done == "eol" and loss.tensor_keys.terminated == "eol"
    with pytest.raises(TypeError, match="set_keys"):
        EndOfLifeTransform().register_keys(object())


def test_bad_input():
    with pytest.raises(ValueError, match="one key"):
        EndOfLifeTransform(eol_key=["a", "b"])
    with pytest.raises(TypeError, match="dotted attribute path"):
        EndOfLifeTransform(eol_attribute=3)
    with pytest.raises(ValueError, match="TransformedEnv"):
        EndOfLifeTransform()(TensorDict({"done": torch.zeros(1, dtype=torch.bool)}))
    env = TransformedEnv(CountingEnv(), EndOfLifeTransform())
    with pytest.raises(AttributeError, match="'unwrapped'"):
        env.reset()
    env = TransformedEnv(LivesEnv(), EndOfLifeTransform(eol_attribute="lives", done_key="over"))
    with pytest.raises(KeyError, match="over"):
        _ = env.observation_spec
    env = TransformedEnv(LivesEnv(), EndOfLifeTransform(eol_attribute="lives"))
    td = env.reset().exclude("lives")
    with pytest.raises(KeyError, match="step input has no 'lives'"):
        env.rand_step(td)


class TestEndOfLifeContract(TransformContractTests):
    base_env = LivesEnv

    def make_transform(self):
        return EndOfLifeTransform(eol_attribute="lives")

    def test_outside_parallel_env_is_refused(self):
        env = TransformedEnv(ParallelEnv(2, lambda: LivesEnv(), mp_start_method="fork"),
                             self.make_transform())
        try:
            with pytest.raises(TypeError, match="sub-env"):
                env.reset()
        finally:
            env.close()
