"""The seed tutorial's "Envs", "Changing environments config" and the env part of "Using
Environments and Modules", with ``torchrl`` replaced by ``streamrl``: the printed keys,
shapes, dtypes, batch sizes and reprs."""

from __future__ import annotations

import gymnasium as gym
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.envs.libs.gym import GymEnv, GymWrapper
from streamrl.envs.utils import step_mdp
from streamrl.modules import SafeModule


def _layout(td):
    return {key: (tuple(td.get(key).shape), td.get(key).dtype) for key in td.keys(True, True)}


def _step_layout(lead=()):
    f, b = torch.float32, torch.bool
    flag = ((*lead, 1), b)
    return {
        "action": ((*lead, 1), f),
        "done": flag,
        ("next", "done"): flag,
        ("next", "observation"): ((*lead, 3), f),
        ("next", "reward"): ((*lead, 1), f),
        ("next", "terminated"): flag,
        ("next", "truncated"): flag,
        "observation": ((*lead, 3), f),
        "terminated": flag,
        "truncated": flag,
    }


def test_seed_envs_section():
    gym_env = gym.make("Pendulum-v1")
    env = GymWrapper(gym_env)
    env = GymEnv("Pendulum-v1")
    assert repr(env) == "GymEnv(env=Pendulum-v1, batch_size=torch.Size([]), device=None)"
    tensordict = env.reset()
    out = env.rand_step(tensordict)
    assert out.batch_size == torch.Size([]) and out.device is None
    assert out["next"].batch_size == torch.Size([])
    assert _layout(out) == _step_layout()
    assert set(out.keys()) == {"action", "done", "next", "observation", "terminated", "truncated"}


def test_seed_changing_environments_config():
    env = GymEnv("Pendulum-v1", frame_skip=3, from_pixels=True, pixels_only=False)
    td = env.reset()
    assert td.batch_size == torch.Size([]) and td.device is None
    assert _layout(td) == {
        "done": ((1,), torch.bool),
        "observation": ((3,), torch.float32),
        "pixels": ((500, 500, 3), torch.uint8),
        "terminated": ((1,), torch.bool),
        "truncated": ((1,), torch.bool),
    }
    env.close()
    del env


def _manual_loop(env, actor, collect):
    torch.manual_seed(0)
    env.set_seed(0)
    max_steps = 100
    tensordict = env.reset()
    for i in range(max_steps):
        actor(tensordict)
        collect(i, env.step(tensordict))
        if tensordict["done"].any():
            break
        tensordict = step_mdp(tensordict)  # roughly equivalent to obs = next_obs
    return i


def test_seed_using_environments_and_modules():
    env = GymEnv("Pendulum-v1")
    action_spec = env.action_spec
    actor_module = nn.Linear(3, 1)
    actor = SafeModule(actor_module, spec=action_spec, in_keys=["observation"], out_keys=["action"])
    max_steps = 100
    tensordicts = TensorDict({}, [max_steps])

    def store(i, td):
        tensordicts[i] = td

    i = _manual_loop(env, actor, store)
    tensordicts_prealloc = tensordicts.clone()
    assert i == 99  # "total steps: 99"
    assert tensordicts.batch_size == torch.Size([100])
    assert _layout(tensordicts) == _step_layout((100,))

    stacked = []
    i = _manual_loop(env, actor, lambda i, td: stacked.append(td))
    tensordicts_stack = torch.stack(stacked, 0)
    assert i == 99
    assert _layout(tensordicts_stack) == _step_layout((100,))
    assert (tensordicts_stack == tensordicts_prealloc).all()

    torch.manual_seed(0)
    env.set_seed(0)
    tensordict_rollout = env.rollout(policy=actor, max_steps=max_steps)
    assert tensordict_rollout.batch_size == torch.Size([100])
    assert _layout(tensordict_rollout) == _step_layout((100,))
    assert (tensordict_rollout == tensordicts_prealloc).all()
    # the root at t+1 is "next" at t
    assert torch.equal(
        tensordict_rollout["observation"][1:], tensordict_rollout["next", "observation"][:-1]
    )
    env.close()
