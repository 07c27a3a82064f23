"""Timer: step, policy and reset durations, where they are zero, custom keys, bad input,
contract."""

from __future__ import annotations

import time

import pytest
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.transforms import Timer, TransformedEnv


def test_durations(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,), max_count=50), Timer())
    td = env.reset()
    assert td["time_reset"].shape == (2,) and bool((td["time_reset"] > 0).all())
    assert td["time_step"].sum() == 0 and td["time_policy"].sum() == 0
    time.sleep(0.05)  # the "policy"
    out = env.rand_step(td)["next"]
    assert bool((out["time_policy"] >= 0.05).all())
    assert bool((out["time_step"] > 0).all()) and bool((out["time_step"] < 0.05).all())
    assert out["time_reset"].sum() == 0


def test_custom_keys_and_bad_input(counting_env):
    env = TransformedEnv(counting_env(), Timer(time_key="t"))
    assert {"t_step", "t_policy", "t_reset"} <= set(env.observation_spec.keys())
    env = TransformedEnv(counting_env(), Timer(out_keys=["a", "b", "c"]))
    assert env.rollout(2)["next", "a"].shape == (2,)
    with pytest.raises(ValueError, match="3 keys"):
        Timer(out_keys=["a"])
    with pytest.raises(TypeError, match="time_key"):
        Timer(time_key=1)
    with pytest.raises(ValueError, match="TransformedEnv"):
        Timer()(TensorDict({}))


class TestTimerContract(TransformContractTests):
    def make_transform(self):
        return Timer()
