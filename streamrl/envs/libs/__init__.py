"""Wrappers around third-party environment libraries: gymnasium
(:mod:`streamrl.envs.libs.gym`), DeepMind Control (:mod:`streamrl.envs.libs.dm_control`,
which imports dm_control only when an env is built), EnvPool
(:mod:`streamrl.envs.libs.envpool`, likewise), PettingZoo
(:mod:`streamrl.envs.libs.pettingzoo`, likewise) and VMAS (:mod:`streamrl.envs.libs.vmas`,
likewise)."""

from streamrl.envs.libs.dm_control import DMControlEnv, DMControlWrapper
from streamrl.envs.libs.envpool import MultiThreadedEnv, MultiThreadedEnvWrapper
from streamrl.envs.libs.gym import GymEnv, GymWrapper, gym_backend, set_gym_backend
from streamrl.envs.libs.pettingzoo import PettingZooEnv, PettingZooWrapper
from streamrl.envs.libs.vmas import VmasEnv, VmasWrapper

__all__ = [
    "DMControlEnv",
    "DMControlWrapper",
    "GymEnv",
    "GymWrapper",
    "MultiThreadedEnv",
    "MultiThreadedEnvWrapper",
    "PettingZooEnv",
    "PettingZooWrapper",
    "VmasEnv",
    "VmasWrapper",
    "gym_backend",
    "set_gym_backend",
]
