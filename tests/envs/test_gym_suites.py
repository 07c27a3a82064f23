"""GymEnv on the benchmark suites: MuJoCo's -v5 tasks and Atari (ale-py), with the contract."""

import importlib.util
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from streamrl.data import Bounded, OneHot, Unbounded
from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.libs.gym import GymEnv, GymWrapper
from streamrl.testing import EnvContractTests

# (not imported here: GymEnv picks MuJoCo's GL backend before mujoco is first imported)
pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("mujoco", "ale_py")),
    reason="needs gymnasium[mujoco,atari]",
)


def short_cheetah():
    # episodes of 15 steps: the contract's stepping check crosses several time-limit ends
    return GymEnv("HalfCheetah-v5", max_episode_steps=15)


def short_pong():
    return GymEnv("ALE/Pong-v5", max_episode_steps=8)


class TestHalfCheetahContract(EnvContractTests):
    def make_env(self):
        return short_cheetah()


class TestPongContract(EnvContractTests):
    stepping_steps = 20  # two episode ends; each 100 KB frame is copied a few times a step

    def make_env(self):
        return short_pong()


class TestHalfCheetahSerialContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, short_cheetah)


class TestHalfCheetahParallelContract(EnvContractTests):
    def make_env(self):
        return ParallelEnv(2, short_cheetah, mp_start_method="fork")


@pytest.mark.slow  # ~12 s: ale-py reloads the ROM (~0.25 s) at every seeded reset
class TestPongParallelContract(EnvContractTests):
    stepping_steps = 20

    def make_env(self):
        return ParallelEnv(2, short_pong, mp_start_method="fork")


# ------------------------------------------------------------------------------------ MuJoCo
def test_mujoco_specs_and_flags():
    with GymEnv("HalfCheetah-v5", max_episode_steps=5) as env:
        obs, act = env.observation_spec["observation"], env.action_spec
        assert isinstance(obs, Unbounded) and obs.shape == (17,) and obs.dtype == torch.float64
        assert isinstance(act, Bounded) and act.shape == (6,) and act.dtype == torch.float32
        assert torch.equal(act.low, -torch.ones(6)) and torch.equal(act.high, torch.ones(6))
        r = env.rollout(10)
    assert r.batch_size == (5,)  # the time limit is a truncation
    assert r["next", "truncated"][-1].item() and not r["next", "terminated"].any()


def test_mujoco_termination():
    # Hopper-v5 terminates when it falls: a terminated step, not a truncated one
    with GymEnv("Hopper-v5") as env:
        env.set_seed(0)
        torch.manual_seed(0)
        r = env.rollout(1000)
    assert r.batch_size[0] < 1000
    assert r["next", "terminated"][-1].item() and not r["next", "truncated"][-1].item()


def test_mujoco_seeding_matches_gymnasium():
    with GymEnv("HalfCheetah-v5") as env:
        env.set_seed(5)
        td = env.reset()
    raw = gym.make("HalfCheetah-v5")
    obs, _ = raw.reset(seed=5)
    np.testing.assert_array_equal(td["observation"].numpy(), obs)
    raw.close()


def test_mujoco_pixels_are_rendered_frames():
    with GymEnv("HalfCheetah-v5", from_pixels=True, pixels_only=False, width=40,
                height=30) as env:
        assert set(env.observation_spec.keys()) == {"observation", "pixels"}
        assert env.observation_spec["pixels"].shape == (30, 40, 3)
        td = env.rand_step(env.reset())
        np.testing.assert_array_equal(td["next", "pixels"].numpy(), env.render())
        assert td["next", "pixels"].float().std() > 0


# ------------------------------------------------------------------------------------- Atari
def test_atari_observation_is_the_frame():
    with GymEnv("ALE/Pong-v5") as env:
        assert env.from_pixels and list(env.observation_spec.keys()) == ["pixels"]
        spec = env.observation_spec["pixels"]
        assert spec.shape == (210, 160, 3) and spec.dtype == torch.uint8
        assert isinstance(env.action_spec, OneHot) and env.action_spec.shape == (6,)
        td = env.rand_step(env.reset())
        assert td["next", "pixels"].shape == (210, 160, 3)
        # the frame is the observation: no render call, no render_mode needed
        assert env.render_mode is None
    with GymEnv("PongNoFrameskip-v4", from_pixels=True, pixels_only=False,
                categorical_action_encoding=True) as env:
        assert list(env.observation_spec.keys()) == ["pixels"]
        assert env.action_spec.shape == () and env.action_spec.n == 6


def test_atari_seeding_matches_gymnasium():
    # sticky actions draw from the emulator's generator, which reset(seed=) seeds
    actions = [2, 3, 2, 0, 3, 3, 1, 2] * 4
    with GymEnv("ALE/Pong-v5", categorical_action_encoding=True) as env:
        env.set_seed(7)
        env.reset()
        td = env.rollout(len(actions), actions=[torch.tensor(a) for a in actions])
    raw = gym.make("ALE/Pong-v5")
    raw.reset(seed=7)
    for a in actions:
        obs = raw.step(a)[0]
    np.testing.assert_array_equal(td["next", "pixels"][-1].numpy(), obs)
    raw.close()


def test_frame_observations_of_any_env_are_pixels():
    class Frames(gym.Env):
        def __init__(self, shape, high=255):
            self.observation_space = gym.spaces.Box(0, high, shape, np.uint8)
            self.action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            return self.observation_space.sample(), {}

        def step(self, action):
            return self.observation_space.sample(), 0.0, False, False, {}

    assert list(GymWrapper(Frames((8, 8, 3))).observation_spec.keys()) == ["pixels"]
    for shape, high in (((8, 8), 255), ((8, 8, 1), 255), ((8, 8, 3), 9)):
        keys = list(GymWrapper(Frames(shape, high)).observation_spec.keys())
        assert keys == ["observation"], (shape, high)


def test_atari_ids_need_no_registration():
    # a fresh interpreter: GymEnv registers ale-py's ids itself
    code = (
        "import sys\n"
        "from streamrl.envs.libs.gym import GymEnv\n"
        "assert 'ale_py' not in sys.modules\n"
        "ids = GymEnv.available_envs\n"
        "assert 'ALE/Pong-v5' in ids and 'PongNoFrameskip-v4' in ids, len(ids)\n"
        "env = GymEnv('ALE/Pong-v5')\n"
        "print(tuple(env.reset()['pixels'].shape))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    assert out.stdout.strip().endswith("(210, 160, 3)"), out.stderr


@pytest.mark.parametrize("env_name", ["PointMaze_UMaze-v3", "AntMaze_UMaze-v5"])
def test_maze_envs_leave_no_model_file_in_the_temp_dir(env_name):
    # gymnasium-robotics writes each maze env's model to a new temp file and keeps it
    pytest.importorskip("gymnasium_robotics")
    import glob
    import tempfile

    pattern = os.path.join(tempfile.gettempdir(), "*maze*.xml")
    before = set(glob.glob(pattern))
    env = GymEnv(env_name)
    try:
        path = env.env.unwrapped.tmp_xml_file_path
        assert not os.path.exists(path)
        assert set(glob.glob(pattern)) <= before
        td = env.rollout(5)  # the model was read before the file went
        assert td.batch_size == (5,)
        env.reset(seed=1)
    finally:
        env.close()
