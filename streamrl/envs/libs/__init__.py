"""Wrappers around third-party environment libraries (gymnasium: :mod:`streamrl.envs.libs.gym`)."""

from streamrl.envs.libs.gym import GymEnv, GymWrapper

__all__ = ["GymEnv", "GymWrapper"]
