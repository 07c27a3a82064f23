"""GymWrapper.set_info_dict_reader / auto_register_info_dict and the info-dict readers."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from streamrl.data.specs import Composite, Unbounded
from streamrl.envs import (
    BaseInfoDictReader,
    GymWrapper,
    SerialEnv,
    check_env_specs,
    default_info_dict_reader,
)


class InfoEnv(gym.Env):
    """Reset info has ``x`` and ``_mask``; step info adds ``speed`` (array), ``success`` and a
    string."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {"x": 0.0, "_mask": True}

    def step(self, action):
        self.t += 1
        info = {"x": float(self.t), "speed": np.full(3, self.t, np.float32),
                "success": self.t >= 2, "note": "text", "_mask": True}
        return np.zeros(2, np.float32), 1.0, self.t >= 3, False, info


def test_default_reader_over_all_numeric_keys():
    env = GymWrapper(InfoEnv()).set_info_dict_reader()
    try:
        assert set(env.observation_spec.keys()) == {"observation", "x", "speed", "success"}
        td = env.rollout(3)
        assert td["next", "x"].tolist() == [1.0, 2.0, 3.0]
        assert td["next", "success"].tolist() == [False, True, True]
        assert td["next", "speed"].shape == (3, 3) and td["next", "speed"].dtype == torch.float32
        # reset info lacks "speed": zeros of its spec
        assert td["speed"][0].tolist() == [0.0, 0.0, 0.0]
        check_env_specs(env)
    finally:
        env.close()


def test_named_keys_with_specs_and_private_keys():
    reader = default_info_dict_reader(["x", "_mask"], spec=[Unbounded((), dtype=torch.float32),
                                                             Unbounded((), dtype=torch.bool)])
    env = GymWrapper(InfoEnv()).set_info_dict_reader(reader)
    try:
        td = env.rollout(2)
        assert td["next", "x"].dtype == torch.float32 and td["next", "_mask"].all()
        check_env_specs(env)
    finally:
        env.close()
    env = GymWrapper(InfoEnv()).auto_register_info_dict(ignore_private=False)
    try:
        assert "_mask" in env.observation_spec.keys()
    finally:
        env.close()


def test_custom_reader_is_called_at_reset_and_step():
    class Counter(BaseInfoDictReader):
        def __init__(self):
            self.calls = 0

        def __call__(self, info, td):
            self.calls += 1
            td.set("x_twice", torch.tensor(2.0 * info["x"]))
            return td

        @property
        def info_spec(self):
            return Composite(x_twice=Unbounded(()), shape=())

    reader = Counter()
    env = GymWrapper(InfoEnv()).set_info_dict_reader(reader)
    try:
        td = env.rollout(3)
        assert td["next", "x_twice"].tolist() == [2.0, 4.0, 6.0]
        assert reader.calls == 4  # one reset + three steps
        check_env_specs(env)
    finally:
        env.close()


def test_info_readers_in_a_batched_env():
    def make():
        return GymWrapper(InfoEnv()).set_info_dict_reader(default_info_dict_reader(["x"]))

    env = SerialEnv(2, make)
    try:
        td = env.rollout(2)
        assert td["next", "x"].shape == (2, 2)
    finally:
        env.close()


def test_reader_on_its_own():
    reader = default_info_dict_reader()
    td = reader({"a": 1, "b": np.ones(2), "_p": 3, "s": "x"}, TensorDict())
    assert sorted(td.keys()) == ["a", "b"]
    assert sorted(reader.info_spec.keys()) == ["a", "b"]
    # a key the reader knows but the info lacks reads as zeros
    td = default_info_dict_reader(["a"], spec={"a": Unbounded((2,))})({}, TensorDict())
    assert td["a"].tolist() == [0.0, 0.0]


def test_bad_input():
    with pytest.raises(ValueError, match="expected 2 specs"):
        default_info_dict_reader(["a", "b"], spec=[Unbounded(())])
    with pytest.raises(TypeError, match="info keys must be str"):
        default_info_dict_reader([1])
    with pytest.raises(TypeError, match="expected a number"):
        default_info_dict_reader(["s"])({"s": "text"}, TensorDict())
    env = GymWrapper(InfoEnv())
    try:
        with pytest.raises(TypeError, match="needs an `info_spec`"):
            env.set_info_dict_reader(lambda info, td: td)
        with pytest.raises(TypeError, match="info_dict_reader must be"):
            env.set_info_dict_reader(3)
        with pytest.raises(TypeError, match="info key 'note'"):
            env.set_info_dict_reader(default_info_dict_reader(["note"]))
        with pytest.raises(KeyError, match="neither in the env's reset info"):
            env.set_info_dict_reader(default_info_dict_reader(["absent"]))
    finally:
        env.close()
    with pytest.raises(KeyError, match="neither in the env's reset info"):
        GymWrapper(InfoEnv(), info_keys=["absent"])


def test_a_refused_reader_leaves_the_env_as_it_was():
    env = GymWrapper(InfoEnv()).set_info_dict_reader(default_info_dict_reader(["x"]))
    try:
        before = env.observation_spec.clone()
        with pytest.raises(TypeError, match="info key 'note'"):
            env.set_info_dict_reader(default_info_dict_reader(["speed", "note"]))
        assert env.observation_spec == before and env.info_keys == ("x",)
        assert env.rollout(2)["next", "x"].tolist() == [1.0, 2.0]
    finally:
        env.close()
