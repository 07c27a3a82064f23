"""Wrappers around third-party environment libraries (gymnasium: :mod:`streamrl.envs.libs.gym`)."""

from streamrl.envs.libs.gym import GymEnv, GymWrapper, gym_backend, set_gym_backend

__all__ = ["GymEnv", "GymWrapper", "gym_backend", "set_gym_backend"]
