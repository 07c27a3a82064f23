"""DiscreteActionProjection: the action path (in range kept, out of range random), forward
padding, specs, CartPole end to end, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data.specs import OneHot
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.transforms import DiscreteActionProjection, TransformedEnv
from streamrl.envs.utils import check_env_specs


def test_projection_keeps_in_range_and_randomizes_out_of_range():
    t = DiscreteActionProjection(3, 5)
    actions = torch.nn.functional.one_hot(torch.tensor([0, 2, 4, 3] * 50), 5)
    out = t.inv(TensorDict({"action": actions}, [200]))["action"]
    idx = out.argmax(-1)
    assert out.shape == (200, 3) and out.sum(-1).eq(1).all()
    assert idx[0::4].eq(0).all() and idx[1::4].eq(2).all()
    replaced = torch.cat([idx[2::4], idx[3::4]])
    assert set(replaced.tolist()) == {0, 1, 2}  # uniformly random below 3
    assert t(TensorDict({"action": out}, [200]))["action"].shape == (200, 5)
    off = DiscreteActionProjection(3, 5, include_forward=False)
    assert off(TensorDict({"action": out}, [200]))["action"].shape == (200, 3)


def test_projection_on_cartpole():
    env = TransformedEnv(GymEnv("CartPole-v1"), DiscreteActionProjection(2, 4))
    try:
        spec = env.action_spec
        assert isinstance(spec, OneHot) and spec.shape == (4,)
        roll = env.rollout(5)
        assert roll["action"].shape[-1] == 4
        check_env_specs(env)
    finally:
        env.close()
    batched = TransformedEnv(
        SerialEnv(2, lambda: GymEnv("CartPole-v1")), DiscreteActionProjection(2, 3)
    )
    try:
        assert batched.action_spec.shape == (2, 3)
        check_env_specs(batched)
    finally:
        batched.close()


def test_projection_bad_input(counting_env):
    with pytest.raises(ValueError, match=">= num_actions_effective"):
        DiscreteActionProjection(4, 2)
    with pytest.raises(ValueError, match="positive int"):
        DiscreteActionProjection(0, 2)
    with pytest.raises(ValueError, match="one key"):
        DiscreteActionProjection(1, 2, action_key=["a", "b"])
    with pytest.raises(ValueError, match="with 3 choices"):
        DiscreteActionProjection(2, 3).inv(TensorDict({"action": torch.zeros(2)}))
    env = TransformedEnv(counting_env(), DiscreteActionProjection(1, 2))
    with pytest.raises(TypeError, match="OneHot"):
        _ = env.action_spec
    env = TransformedEnv(GymEnv("CartPole-v1"), DiscreteActionProjection(3, 4))
    with pytest.raises(ValueError, match="the env has 2 actions"):
        _ = env.action_spec
    env.close()
