"""env.rollout's TorchRL keyword arguments (actions, trust_policy, auto_cast_to_device,
return_contiguous, out, storing_device, break_when_all_done, set_state)."""

import pytest
import torch
from tensordict import LazyStackedTensorDict, TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.envs import GymEnv, SerialEnv, StepCounter, TransformedEnv
from streamrl.envs.rollout_options import (
    CastToPolicyDevice,
    ReplayActions,
    make_compatible_policy,
    policy_device,
)


@pytest.fixture(params=["plain", "transformed"])
def env(request):
    e = GymEnv("Pendulum-v1")
    if request.param == "transformed":
        e = TransformedEnv(e, StepCounter())
    yield e
    e.close()


def test_actions_replay_open_loop(env):
    actions = [torch.full((1,), v) for v in (-1.0, 0.0, 1.0)]
    td = env.rollout(10, actions=actions)
    assert td.batch_size == (3,)  # capped to the number of actions
    assert td["action"].squeeze(-1).tolist() == [-1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="a policy or actions, not both"):
        env.rollout(3, policy=lambda t: t, actions=actions)
    with pytest.raises(ValueError, match="actions is empty"):
        env.rollout(3, actions=[])


def test_policy_reading_observation_keys_is_wrapped(env):
    seen = []

    def policy(observation):
        seen.append(observation.shape)
        return observation[..., :1].clamp(-2, 2)

    td = env.rollout(4, policy)
    assert seen == [torch.Size([3])] * 4
    torch.testing.assert_close(td["action"], td["observation"][..., :1].clamp(-2, 2))


def test_trust_policy_and_tensordict_policies_are_called_as_they_are(env):
    calls = []

    def td_policy(td):
        calls.append(type(td).__name__)
        return td.set("action", torch.zeros(1))

    env.rollout(2, td_policy)
    env.rollout(2, lambda t: t.set("action", torch.zeros(1)))  # an arg that is no obs key
    assert calls and set(calls) <= {"TensorDict"}

    def observation(observation):  # named like an obs key: would be wrapped
        raise AssertionError("wrapped: called with tensors")

    def trusted(td):
        return td.set("action", torch.zeros(1))

    assert make_compatible_policy(trusted, env) is trusted
    assert make_compatible_policy(observation, env, trust_policy=True) is observation
    module = TensorDictModule(nn.Linear(3, 1), ["observation"], ["action"])
    assert make_compatible_policy(module, env) is module


def test_wrapped_policy_writes_every_action_key_of_a_batched_env():
    env = SerialEnv(2, lambda: GymEnv("Pendulum-v1"))
    try:
        policy = make_compatible_policy(lambda observation: observation[..., :1], env)
        assert policy.in_keys == ["observation"] and policy.out_keys == ["action"]
        assert env.rollout(3, policy).batch_size == (2, 3)
    finally:
        env.close()


def test_return_contiguous_out_and_storing_device(env):
    lazy = env.rollout(3, return_contiguous=False)
    assert isinstance(lazy, LazyStackedTensorDict) and lazy.batch_size == (3,)
    full = env.rollout(3, break_when_any_done=False)
    out = full.clone().zero_()
    returned = env.rollout(3, out=out, break_when_any_done=False)
    assert returned is out and (out["next", "reward"] != 0).any()
    with pytest.raises(ValueError, match="out has batch size"):
        env.rollout(3, out=TensorDict(batch_size=[5]))
    assert env.rollout(2, storing_device="cpu").device == torch.device("cpu")


def test_auto_cast_to_device_runs_the_policy_where_its_parameters_are(env, monkeypatch):
    module = TensorDictModule(nn.Linear(3, 1), ["observation"], ["action"])
    assert policy_device(module) == torch.device("cpu") and policy_device(lambda t: t) is None
    # same device: nothing wrapped, the rollout runs as usual
    assert env.rollout(2, module, auto_cast_to_device=True).batch_size == (2,)
    moved = []

    class Recorder:
        def __call__(self, td):
            return td

    cast = CastToPolicyDevice(Recorder(), torch.device("cpu"))
    monkeypatch.setattr(TensorDict, "to", lambda self, d: moved.append(str(d)) or self)
    cast(TensorDict({"a": torch.zeros(1)}, device="cpu"))
    assert moved == ["cpu"]


def test_unsupported_options_are_refused(env):
    with pytest.raises(ValueError, match="break_when_all_done=True"):
        env.rollout(3, break_when_all_done=True)
    env.rollout(2, break_when_all_done=False)  # TorchRL's default spelled out
    with pytest.raises(ValueError, match="set_state=True"):
        env.rollout(3, set_state=True)


def test_replay_actions_runs_out_loudly():
    replay = ReplayActions([torch.zeros(1)], "action")
    replay(TensorDict())
    with pytest.raises(IndexError, match="all 1 actions were replayed"):
        replay(TensorDict())
