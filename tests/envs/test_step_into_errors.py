"""EnvBase.step_into / step_buffers: bad arguments get clear errors; closed envs refuse."""

import pytest
import torch

from streamrl.data import Categorical
from streamrl.envs import EnvClosedError, SerialEnv, StepBuffers
from streamrl.envs.libs.gym import GymEnv


def test_bad_arguments():
    with GymEnv("CartPole-v1") as env:
        bufs = env.step_buffers(4)
        assert isinstance(bufs, StepBuffers) and bufs.T == 4
        with pytest.raises(TypeError, match="expects StepBuffers, found dict"):
            env.step_into({}, 0)
        for t, steps in ((0, 5), (3, 2), (-1, 1), (0, 0)):
            with pytest.raises(ValueError, match="do not fit buffers of T=4"):
                env.step_into(bufs, t, steps)
        with SerialEnv(2, lambda: GymEnv("CartPole-v1")) as batched:
            with pytest.raises(ValueError, match=r"buffers for batch size \(2,\), the env has \(\)"):
                env.step_into(batched.step_buffers(4), 0)
    with pytest.raises(ValueError, match="T must be a positive int"):
        StepBuffers((), 0, {}, Categorical(2), torch.float32)


def test_closed_env_refuses():
    env = GymEnv("CartPole-v1")
    bufs = env.step_buffers(2)
    env.close()
    with pytest.raises(EnvClosedError):
        env.step_into(bufs, 0)
    with pytest.raises(EnvClosedError):
        env.step_buffers(2)


def test_row_views_write_through():
    with SerialEnv(2, lambda: GymEnv("CartPole-v1")) as env:
        bufs = env.step_buffers(3)
        bufs.row(1).reward[0] = 7.0
        assert bufs.reward[1, 0].item() == 7.0 and bufs.row(1) is bufs.row(1)
        with pytest.raises(ValueError, match="needs buffers with a batch dim"):
            bufs.row(0).row(0)
