"""AutoResetTransform: an env that resets itself inside the done step, seen as one that
resets when asked: fill values, kept observations, partial resets of a batch, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv

from streamrl.data.specs import Categorical, Unbounded
from streamrl.envs.transforms import AutoResetTransform, TransformedEnv


class AutoCountingEnv(CountingEnv):
    """CountingEnv that starts the next episode in the step that ends one (its observations
    are then the reset ones) and whose reset with ``"_reset"`` does nothing. Also observes
    the counter as int64 ``c`` and its parity as bool ``odd``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        b = self.batch_size
        self.full_observation_spec["c"] = Unbounded((*b, 1), dtype=torch.int64)
        self.full_observation_spec["odd"] = Categorical(2, (*b, 1), dtype=torch.bool)

    def _obs(self):
        out = super()._obs()
        out.set("c", self.count.clone())
        out.set("odd", self.count % 2 == 1)
        return out

    def _reset(self, tensordict=None, **kwargs):
        if tensordict is not None and "_reset" in tensordict.keys():
            return tensordict.copy()
        return super()._reset(tensordict, **kwargs)

    def _step(self, tensordict):
        out = super()._step(tensordict)
        done = out["done"]
        if bool(done.any()):
            self.count[done.reshape(self.count.shape)] = 0
            out.update(self._obs())
        return out


def test_done_steps_are_filled_and_the_reset_returns_the_kept_observation():
    env = TransformedEnv(AutoCountingEnv(max_count=2), AutoResetTransform())
    r = env.rollout(5, break_when_any_done=False)
    nxt = r["next", "observation"][:, 0].tolist()
    assert nxt[0::2] == [1.0, 1.0, 1.0] and all(math.isnan(x) for x in nxt[1::2])
    assert r["next", "c"].flatten().tolist() == [1, -1, 1, -1, 1]
    assert r["next", "odd"].flatten().tolist() == [True, False, True, False, True]
    assert r["next", "reward"].flatten().tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
    assert r["observation"][:, 0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert not r["done"].any()  # the reset rows have their done flags cleared
    assert env.base_env.reset_calls == 1  # only the first reset reached the env
    env.close()


def test_replace_false_and_no_fill_keep_the_env_values():
    env = TransformedEnv(AutoCountingEnv(max_count=2), AutoResetTransform(replace=False))
    r = env.rollout(2, break_when_any_done=False)
    assert r["next", "c"].flatten().tolist() == [1, 0]  # the next episode's first observation
    env = TransformedEnv(
        AutoCountingEnv(max_count=2), AutoResetTransform(fill_float=None, fill_int=7)
    )
    r = env.rollout(2, break_when_any_done=False)
    assert r["next", "observation"][1].tolist() == [0.0, 0.0, 0.0]
    assert r["next", "c"].flatten().tolist() == [1, 7]


def test_partial_resets_of_a_batch():
    base = AutoCountingEnv(batch_size=(2,), max_count=3)
    env = TransformedEnv(base, AutoResetTransform())
    td = env.reset()
    base.count[1] = 1  # sub-env 1 ends one step before sub-env 0
    td, root = env.step_and_maybe_reset(env.rand_action(td))
    td, root = env.step_and_maybe_reset(env.rand_action(root))
    assert td["next", "c"].flatten().tolist() == [2, -1]
    assert root["c"].flatten().tolist() == [2, 0] and not root["done"].any()
    td, root = env.step_and_maybe_reset(env.rand_action(root))
    assert td["next", "c"].flatten().tolist() == [-1, 1]
    assert root["c"].flatten().tolist() == [0, 1]
    assert base.reset_calls == 1


def test_bad_input():
    with pytest.raises(ValueError, match="fill_float"):
        AutoResetTransform(fill_float="abc")
    with pytest.raises(TypeError, match="fill_int"):
        AutoResetTransform(fill_int=1.5)
    with pytest.raises(TypeError, match="fill_bool"):
        AutoResetTransform(fill_bool=2)
    with pytest.raises(TypeError):
        AutoResetTransform(True)  # keyword-only, as in TorchRL


class TestAutoResetContract(TransformContractTests):
    base_env = AutoCountingEnv

    def make_transform(self):
        return AutoResetTransform()
