"""ConditionalSkip: skipped steps keep the state (zero reward), transforms of the same env
are skipped too, partial skips of stateless and stateful envs, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv, StatelessEnv

from streamrl.envs.transforms import Compose, ConditionalSkip, StepCounter, TransformedEnv


def _positive_action(td):
    return td["action"][..., 0] > 0.5


def test_every_other_step_is_skipped():
    middle = TransformedEnv(
        CountingEnv(max_count=9),
        Compose(StepCounter(step_count_key="middle_count"),
                ConditionalSkip(cond=lambda td: td["step_count"] % 2 == 1)),
    )
    env = TransformedEnv(middle, StepCounter())
    r = env.rollout(6)
    assert r["observation"][:, 0].tolist() == [0, 1, 1, 2, 2, 3]
    assert r["next", "reward"].flatten().tolist() == [1, 0, 2, 0, 3, 0]
    assert r["middle_count"].flatten().tolist() == [0, 1, 1, 2, 2, 3]  # skipped with the env
    assert r["step_count"].flatten().tolist() == [0, 1, 2, 3, 4, 5]


class RecordsStep(CountingEnv):
    def _step(self, tensordict):
        self.step_mask = tensordict.get("_step", None)
        return super()._step(tensordict)


def test_stateful_env_gets_the_step_mask_and_skipped_rows_keep_their_state():
    base = RecordsStep(batch_size=(2,), max_count=9)
    env = TransformedEnv(base, ConditionalSkip(cond=lambda td: torch.tensor([True, False])))
    td = env.reset()
    td["action"] = torch.zeros(2, 1)
    out = env.step(td)["next"]
    assert base.step_mask.flatten().tolist() == [False, True]
    assert out["observation"][:, 0].tolist() == [0.0, 1.0]
    assert out["reward"].flatten().tolist() == [0.0, 1.0]


def test_all_rows_skipped_does_not_call_the_env():
    env = TransformedEnv(CountingEnv(max_count=9), ConditionalSkip(cond=lambda td: True))
    r = env.rollout(3)
    assert env.base_env.last_action is None
    assert r["next", "observation"][:, 0].tolist() == [0.0, 0.0, 0.0]


def test_stateless_env_steps_only_the_rows_that_move():
    env = TransformedEnv(StatelessEnv(), ConditionalSkip(cond=_positive_action))
    env.batch_locked = False
    td = env.reset(TensorDict(batch_size=[3]))
    td["action"] = torch.tensor([[0.9], [0.1], [0.7]])
    out = env.step(td)["next"]
    assert env.base_env.seen == (1,)
    assert out["observation"].flatten().tolist() == pytest.approx([0.0, 0.1, 0.0])
    assert out["reward"].flatten().tolist() == [0.0, 1.0, 0.0]


def test_bad_input(counting_env):
    with pytest.raises(TypeError, match="callable"):
        ConditionalSkip(cond=3)
    env = TransformedEnv(counting_env(batch_size=(2,)), ConditionalSkip(lambda td: torch.ones(2)))
    with pytest.raises(TypeError, match="bool tensor"):
        env.rand_step()
    env = TransformedEnv(counting_env(batch_size=(2,)),
                         ConditionalSkip(lambda td: torch.ones(3, dtype=torch.bool)))
    with pytest.raises(ValueError, match="one per row"):
        env.rand_step()
    env = TransformedEnv(counting_env(), ConditionalSkip(lambda td: True))
    with pytest.raises(KeyError, match="skipped step keeps the state"):
        env.step(env.rand_action(TensorDict()))


class TestConditionalSkipContract(TransformContractTests):
    def make_transform(self):
        return ConditionalSkip(cond=_positive_action)
