"""Discrete actions sampled as floats (torch's OneHotCategorical / Categorical samples) are
accepted and run as the spec's dtype, as in TorchRL; non-whole floats are refused."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.collectors import SyncDataCollector
from streamrl.envs import StepCounter, TransformedEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.modules import OneHotCategorical, ProbabilisticActor


def _actor(env):
    net = TensorDictModule(nn.LazyLinear(env.action_spec.shape[-1]), in_keys=["observation"],
                           out_keys=["logits"])
    actor = ProbabilisticActor(net, in_keys=["logits"], distribution_class=OneHotCategorical,
                               spec=env.action_spec, return_log_prob=True)
    actor(env.reset())
    return actor


@pytest.mark.parametrize("transformed", [False, True])
def test_one_hot_categorical_actor_without_safe(transformed):
    env = GymEnv("CartPole-v1")
    if transformed:
        env = TransformedEnv(env, StepCounter())
    actor = _actor(env)
    assert actor(env.reset())["action"].dtype == torch.float32  # what torch samples
    td = env.reset()
    stepped = env.step(actor(td))
    assert stepped["action"].dtype == env.action_spec.dtype  # the action the env ran
    rollout = env.rollout(20, actor)
    assert rollout["action"].dtype == env.action_spec.dtype
    assert bool((rollout["action"].sum(-1) == 1).all())
    collector = SyncDataCollector(env, actor, frames_per_batch=32, total_frames=64)
    assert [b.numel() for b in collector] == [32, 32]
    collector.shutdown()
    env.close()


def test_float_index_actions_and_bad_floats():
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    td = env.reset()
    td["action"] = torch.tensor(1.0)
    assert env.step(td)["action"].dtype == torch.int64
    td = env.reset()
    td["action"] = torch.tensor(0.5)
    with pytest.raises(TypeError, match="not whole numbers"):
        env.step(td)
    td["action"] = torch.tensor(True)
    with pytest.raises(TypeError, match=r"expected dtype torch\.int64, found torch\.bool"):
        env.step(td)
    env.close()
