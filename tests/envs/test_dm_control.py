"""DMControlEnv / DMControlWrapper: specs, flags, seeding, frame_skip, pixels, errors, contract."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from streamrl.data import Bounded, Unbounded
from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.libs._mujoco_gl import ensure_gl_backend
from streamrl.envs.libs.dm_control import DMControlEnv, DMControlWrapper
from streamrl.testing import EnvContractTests

ensure_gl_backend()  # before this module imports dm_control (DMControlEnv does the same)
suite = pytest.importorskip("dm_control.suite")
control = pytest.importorskip("dm_control.rl.control")
cartpole = pytest.importorskip("dm_control.suite.cartpole")


def short_cartpole():
    # 0.1 s of simulated time at 0.01 s per step: episodes of 10 steps, so that the contract's
    # stepping check crosses several time-limit ends
    return DMControlEnv("cartpole", "swingup", task_kwargs={"time_limit": 0.1})


class TestCheetahRunContract(EnvContractTests):
    def make_env(self):
        return DMControlEnv("cheetah", "run")


class TestCartpoleSwingupContract(EnvContractTests):
    def make_env(self):
        return short_cartpole()


class TestWrapperContract(EnvContractTests):
    def make_env(self):
        return DMControlWrapper(suite.load("walker", "walk"), frame_skip=2)


class TestPixelsContract(EnvContractTests):
    steps = 2
    stepping_steps = 3  # a GL context costs ~0.7 s, a frame ~20-50 ms on this CPU

    def make_env(self):
        return DMControlEnv("cartpole", "balance", from_pixels=True, pixels_only=True,
                            render_kwargs={"height": 24, "width": 32})


class TestSerialContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, lambda: DMControlEnv("cheetah", "run"))


class TestParallelContract(EnvContractTests):
    def make_env(self):
        return ParallelEnv(2, short_cartpole, mp_start_method="fork")


# -------------------------------------------------------------------------- specs and keys
def test_specs_follow_dm_env_specs():
    with DMControlEnv("walker", "walk") as env:
        dm = env._env
        obs = env.observation_spec
        assert list(obs.keys()) == list(dm.observation_spec().keys())
        for key, spec in dm.observation_spec().items():
            assert isinstance(obs[key], Unbounded) and obs[key].dtype == torch.float64
            assert obs[key].shape == (spec.shape or (1,))  # the scalar "height" gets (1,)
        act = env.action_spec
        assert isinstance(act, Bounded) and act.dtype == torch.float64 and act.shape == (6,)
        assert torch.equal(act.low, torch.tensor(dm.action_spec().minimum))
        assert torch.equal(act.high, torch.tensor(dm.action_spec().maximum))
        assert env.reward_spec.shape == (1,) and env.reward_spec.dtype == torch.float64
        td = env.rand_step(env.reset())
        assert td["height"].shape == (1,) and td["next", "height"].shape == (1,)
        assert td["next", "reward"].dtype == torch.float64


def test_observations_are_dm_controls():
    with DMControlEnv("cartpole", "balance") as env:
        env.set_seed(3)
        td = env.reset()
        twin = suite.load("cartpole", "balance", task_kwargs={"random": 3})
        first = twin.reset()
        for key in ("position", "velocity"):
            np.testing.assert_array_equal(td[key].numpy(), first.observation[key])
        action = np.array([0.3])
        td["action"] = torch.as_tensor(action)
        nxt = env.step(td)["next"]
        ts = twin.step(action)
        np.testing.assert_array_equal(nxt["position"].numpy(), ts.observation["position"])
        assert nxt["reward"].item() == ts.reward


def test_time_limit_is_truncation():
    with short_cartpole() as env:
        r = env.rollout(25, break_when_any_done=False)
    done = r["next", "done"].squeeze(-1)
    assert done.nonzero().flatten().tolist() == [9, 19]
    assert torch.equal(r["next", "truncated"].squeeze(-1), done)
    assert not r["next", "terminated"].any()


class _FallingPole(cartpole.Balance):
    """cartpole balance that terminates (discount 0) at its ``steps``-th step."""

    def __init__(self, steps, seed):
        super().__init__(swing_up=False, sparse=False, random=seed)
        self.steps, self.count = steps, 0

    def initialize_episode(self, physics):
        self.count = 0
        super().initialize_episode(physics)

    def get_termination(self, physics):
        self.count += 1
        return 0.0 if self.count >= self.steps else None


def _terminating_env(steps=3, seed=0):
    physics = cartpole.Physics.from_xml_string(*cartpole.get_model_and_assets())
    return control.Environment(physics, _FallingPole(steps, seed), time_limit=10)


def test_discount_zero_is_termination():
    with DMControlWrapper(_terminating_env()) as env:
        r = env.rollout(10)
    assert r.batch_size == (3,)  # the third step terminates: the rollout stops there
    assert r["next", "terminated"][-1].item() and not r["next", "truncated"][-1].item()
    assert not r["next", "done"][:-1].any()


def test_frame_skip_sums_rewards_and_stops_at_the_last_step():
    with DMControlWrapper(_terminating_env(4), frame_skip=3) as env:
        td = env.rand_step(env.reset())
        assert not td["next", "done"].item()
        twin = _terminating_env(4)
        twin.reset()
        rewards = [twin.step(td["action"].numpy()).reward for _ in range(3)]
        assert td["next", "reward"].item() == pytest.approx(sum(rewards))
        td = env.rand_step(env.next_root(td))  # frames 4 (terminates) and no more
        assert td["next", "terminated"].item()
    with pytest.raises(ValueError, match="frame_skip"):
        DMControlEnv("cartpole", "balance", frame_skip=0)


# --------------------------------------------------------------------------------- seeding
def test_seeding_draws_the_initial_states():
    with DMControlEnv("cheetah", "run") as env:
        env.set_seed(1)
        a, a2 = env.reset()["position"], env.reset()["position"]
        env.set_seed(1)
        b = env.reset()["position"]
        env.set_seed(2)
        c = env.reset()["position"]
    assert torch.equal(a, b)
    assert not torch.equal(a, a2) and not torch.equal(a, c)


# ---------------------------------------------------------------------------------- pixels
def test_pixels_are_the_physics_render():
    with DMControlEnv("cheetah", "run", from_pixels=True,
                      render_kwargs={"height": 30, "width": 40}, camera_id=1) as env:
        assert set(env.observation_spec.keys()) == {"position", "velocity", "pixels"}
        spec = env.observation_spec["pixels"]
        assert spec.shape == (30, 40, 3) and spec.dtype == torch.uint8
        td = env.rand_step(env.reset())
        frame = env.physics.render(height=30, width=40, camera_id=1)
        np.testing.assert_array_equal(td["next", "pixels"].numpy(), frame)
        assert td["next", "pixels"].float().std() > 0  # an image, not a blank frame


def test_pixels_without_a_gl_backend_raise_a_clear_error():
    # GLFW (a windowing backend) cannot render without a display: the error names MUJOCO_GL
    code = (
        "from streamrl.envs.libs.dm_control import DMControlEnv\n"
        "try:\n"
        "    DMControlEnv('cartpole', 'balance', from_pixels=True)\n"
        "except RuntimeError as e:\n"
        "    print('RAISED', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MUJOCO_GL"] = "glfw"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert "RAISED DMControlEnv(from_pixels=True) could not render" in out.stdout, out.stderr
    assert "MUJOCO_GL=egl" in out.stdout and "found MUJOCO_GL='glfw'" in out.stdout


# ------------------------------------------------------------------------ names and errors
def test_available_envs_and_repr():
    envs = dict(DMControlEnv.available_envs)
    assert "run" in envs["cheetah"] and "swingup" in envs["cartpole"]
    assert DMControlWrapper.available_envs == DMControlEnv.available_envs
    with DMControlEnv("cheetah", "run") as env:
        assert repr(env) == (
            "DMControlEnv(env=cheetah, task=run, batch_size=torch.Size([]), device=None)"
        )
        assert env.physics is env._env.physics  # dm_control's attributes are forwarded
    with DMControlWrapper(suite.load("cartpole", "balance")) as env:
        assert repr(env).startswith("DMControlWrapper(env=Balance,")


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("nope", "run"), {}, ValueError, "no domain 'nope'"),
        (("cheetah", "walk"), {}, ValueError, "no task of 'cheetah' 'walk'.*'run'"),
        ((3, "run"), {}, TypeError, "env_name must be a str"),
        (("cheetah", "run"), {"batch_size": (2,)}, ValueError, "batch_size must be empty"),
        (("cheetah", "run"), {"render_kwargs": 3}, TypeError, "render_kwargs must be a dict"),
        (("cheetah", "run"), {"pixels": True}, TypeError, r"unexpected keyword arguments \['pixels'\]"),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        DMControlEnv(*args, **kwargs)


def test_wrapper_refuses_other_envs():
    with pytest.raises(TypeError, match="expects a dm_control env"):
        DMControlWrapper(object())


def test_device_and_empty_batch_size():
    with DMControlEnv("cartpole", "balance", device="cpu", batch_size=()) as env:
        td = env.rollout(3)
    assert td.device == torch.device("cpu") and td.batch_size == (3,)
