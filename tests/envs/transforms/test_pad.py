"""PadObservation: entries padded to one width (spec included), two envs of different
observation sizes batched in one SerialEnv, a wider entry refused by name."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data.specs import Unbounded
from streamrl.envs import GymEnv, PadObservation, SerialEnv, TransformedEnv
from streamrl.envs.utils import check_env_specs
from streamrl.testing import EnvContractTests


def _member(name, width=6):
    return TransformedEnv(GymEnv(name), PadObservation(width))


class TestTwoEnvsOneSpecContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, [lambda: _member("MountainCar-v0"), lambda: _member("Acrobot-v1")])


def test_entries_are_padded_with_the_value_and_the_spec_follows():
    env = TransformedEnv(GymEnv("CartPole-v1"), PadObservation(6, value=-1.0))
    spec = env.observation_spec["observation"]
    assert spec.shape == (6,) and isinstance(spec, Unbounded)
    td = env.reset()
    assert td["observation"].shape == (6,) and (td["observation"][4:] == -1).all()
    check_env_specs(env, seed=0)


def test_two_envs_of_different_sizes_batch_together():
    env = SerialEnv(2, [lambda: _member("MountainCar-v0"), lambda: _member("Acrobot-v1")])
    rollout = env.rollout(5, break_when_any_done=False)
    assert rollout["observation"].shape == (2, 5, 6)
    assert (rollout["observation"][0, :, 2:] == 0).all()  # MountainCar's 2 entries, padded
    assert (rollout["observation"][1, :, 2:] != 0).any(-1).all()  # Acrobot's 6
    env.close()


def test_out_keys_and_an_entry_of_the_width_already():
    td = TensorDict({"observation": torch.ones(3), "goal": torch.ones(2)}, [])
    out = PadObservation(3, in_keys=["observation", "goal"], out_keys=["o", "g"])(td)
    assert torch.equal(out["o"], torch.ones(3)) and out["g"].tolist() == [1.0, 1.0, 0.0]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="width must be an int >= 1, found 0"):
        PadObservation(0)
    with pytest.raises(ValueError, match=r"PadObservation: 'observation' has 4 entries in its "
                                         r"last dim; expected at most width=3"):
        TransformedEnv(GymEnv("CartPole-v1"), PadObservation(3)).reset()
