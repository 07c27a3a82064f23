"""Discrete gym actions one-hot (the default) or as indices: every stage from the env to the
loss works with both, and gives the same numbers for the same actions."""

import pytest
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.collectors import SyncDataCollector
from streamrl.data import Categorical, OneHot
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.utils import RandomPolicy
from streamrl.modules import (
    MLP,
    EGreedyModule,
    OneHotCategorical,
    ProbabilisticActor,
    QValueActor,
    ValueOperator,
)
from streamrl.modules import Categorical as CategoricalDist
from streamrl.objectives import A2CLoss, DiscreteSACLoss, DQNLoss, total_loss

ENCODINGS = [pytest.param(False, id="one_hot"), pytest.param(True, id="categorical")]


def _env(categorical):
    return GymEnv("CartPole-v1", categorical_action_encoding=categorical)


def _index(action, categorical):
    return action.reshape(action.shape[0], -1)[:, 0] if categorical else action.argmax(-1)


def test_default_is_one_hot():
    env = GymEnv("CartPole-v1")
    assert isinstance(env.action_spec, OneHot) and not env.categorical_action_encoding
    env.close()


@pytest.mark.parametrize("categorical", ENCODINGS)
def test_random_policy_rollout(categorical):
    env = _env(categorical)
    env.set_seed(0)
    td = env.rollout(20, RandomPolicy(env.action_spec), break_when_any_done=False)
    assert env.action_spec.is_in(td["action"][0])
    assert td["action"].shape == ((20,) if categorical else (20, 2))
    assert set(_index(td["action"], categorical).tolist()) == {0, 1}
    env.close()


@pytest.mark.parametrize("categorical", ENCODINGS)
def test_qvalue_actor_egreedy_collector_and_dqn(categorical):
    torch.manual_seed(0)
    probe = _env(categorical)
    spec = probe.action_spec
    probe.close()
    actor = QValueActor(MLP(in_features=4, out_features=2, num_cells=[16]), spec=spec)
    assert actor.action_space == ("categorical" if categorical else "one_hot")
    explore = EGreedyModule(spec, eps_init=1.0, eps_end=1.0, annealing_num_steps=1)
    policy = TensorDictSequential(actor, explore)
    collector = SyncDataCollector(lambda: SerialEnv(2, lambda: _env(categorical)), policy,
                                  frames_per_batch=32, total_frames=32)
    with collector:
        batch = next(iter(collector))
    actions = batch["action"].reshape(-1, *spec.shape)
    assert all(spec.is_in(a) for a in actions)
    assert set(_index(actions, categorical).tolist()) == {0, 1}  # eps=1: random actions
    loss = DQNLoss(actor)
    assert loss.action_space == actor.action_space
    flat = batch.reshape(-1)
    out = loss(flat)
    total_loss(out).backward()
    # the same transitions with the other encoding give the same loss
    other = flat.clone()
    if categorical:
        other["action"] = nn.functional.one_hot(flat["action"], 2)
    else:
        other["action"] = flat["action"].argmax(-1)
    twin = DQNLoss(_copy_actor(actor, OneHot(2) if categorical else Categorical(2)))
    torch.testing.assert_close(twin(other)["loss"], out["loss"])


def _copy_actor(actor, spec):
    twin = QValueActor(MLP(in_features=4, out_features=2, num_cells=[16]), spec=spec)
    twin.load_state_dict(actor.state_dict())
    return twin


@pytest.mark.parametrize("categorical", ENCODINGS)
def test_policy_gradient_and_discrete_sac_on_env_data(categorical):
    torch.manual_seed(0)
    env = _env(categorical)
    spec = env.action_spec
    logits = TensorDictModule(nn.Linear(4, 2), in_keys=["observation"], out_keys=["logits"])
    actor = ProbabilisticActor(
        logits, in_keys=["logits"], spec=spec, safe=True, return_log_prob=True,
        distribution_class=CategoricalDist if categorical else OneHotCategorical,
    )
    env.set_seed(0)
    td = env.rollout(16, actor, break_when_any_done=False)
    critic = ValueOperator(nn.Linear(4, 1), in_keys=["observation"])
    a2c = A2CLoss(actor, critic)
    out = a2c(td.clone())  # advantage from GAE over the time dim
    total_loss(out).backward()
    assert torch.isfinite(out["loss_objective"])
    qnet = TensorDictModule(nn.Linear(4, 2), in_keys=["observation"], out_keys=["action_value"])
    sac = DiscreteSACLoss(actor, qnet, action_space=spec)
    assert sac.num_actions == 2
    total_loss(sac(td.clone())).backward()
    env.close()
