"""TransformedEnv over an array env with dtype casts only steps on the base env's fast path
(the buffers' dtypes cast the arrays) and gives the generic path's data."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from streamrl.envs import DoubleToFloat, GymEnv, SerialEnv, TransformedEnv
from streamrl.envs.transforms import DTypeCastTransform, RewardScaling

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None,
                                reason="needs gymnasium[mujoco] (float64 observations)")


def _cheetah(*transforms):
    # short episodes: the rollouts cross several time-limit ends
    return TransformedEnv(GymEnv("HalfCheetah-v5", max_episode_steps=7), *transforms)


def _rollout(env, generic):
    if generic:  # the generic path, as a subclass would get
        env._casts_only = lambda: False
    env.set_seed(3)
    torch.manual_seed(0)
    actions = iter(torch.rand(40, 6) * 2 - 1)
    try:
        return env.rollout(40, lambda td: td.set("action", next(actions)),
                           break_when_any_done=False)
    finally:
        env.close()


@pytest.mark.parametrize("transform", [DoubleToFloat(),
                                       DTypeCastTransform(torch.float64, torch.float32)])
def test_cast_only_env_takes_the_fast_path_with_the_same_data(transform):
    env = _cheetah(transform)
    assert env._casts_only()
    fast = _rollout(env, generic=False)
    slow = _rollout(_cheetah(type(transform)(*([] if isinstance(transform, DoubleToFloat)
                                                else [torch.float64, torch.float32]))), True)
    assert fast["next", "observation"].dtype == torch.float32
    assert fast["next", "done"].sum() >= 4
    assert (fast == slow).all()


def test_other_transforms_keep_the_generic_path():
    env = _cheetah(DoubleToFloat())
    env.append_transform(RewardScaling(0.0, 2.0))
    assert not env._casts_only()  # decided again after the chain changed
    td = _rollout(env, generic=False)
    assert td["next", "reward"].dtype == torch.float32


def _generic_cheetah():
    env = _cheetah(DoubleToFloat())
    env._casts_only = lambda: False
    return env


def test_serial_env_of_cast_envs_matches_the_generic_path():
    def run(make):
        env = SerialEnv(2, make)
        env.set_seed(3)
        torch.manual_seed(0)
        actions = iter(torch.rand(20, 2, 6) * 2 - 1)
        try:
            return env.rollout(20, lambda td: td.set("action", next(actions)),
                               break_when_any_done=False)
        finally:
            env.close()

    fast = run(lambda: _cheetah(DoubleToFloat()))
    assert fast["next", "observation"].dtype == torch.float32 and fast["next", "done"].any()
    assert (fast == run(_generic_cheetah)).all()
