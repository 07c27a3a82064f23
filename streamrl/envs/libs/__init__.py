"""Wrappers around third-party environment libraries: gymnasium
(:mod:`streamrl.envs.libs.gym`) and DeepMind Control (:mod:`streamrl.envs.libs.dm_control`,
which imports dm_control only when an env is built).

Importing this package sets ``MUJOCO_GL`` to a headless backend (``egl``, else ``osmesa``)
when it is unset, there is no display and MuJoCo is not imported yet: MuJoCo reads it once,
at its import, and without it cannot render on a headless machine (see ``_mujoco_gl``)."""

from streamrl.envs.libs._mujoco_gl import ensure_gl_backend
from streamrl.envs.libs.dm_control import DMControlEnv, DMControlWrapper
from streamrl.envs.libs.gym import GymEnv, GymWrapper, gym_backend, set_gym_backend

ensure_gl_backend()  # (none of the modules above imports mujoco)

__all__ = [
    "DMControlEnv",
    "DMControlWrapper",
    "GymEnv",
    "GymWrapper",
    "gym_backend",
    "set_gym_backend",
]
