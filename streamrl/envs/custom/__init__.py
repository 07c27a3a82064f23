"""Environments written in pure torch (no simulator library): :class:`PendulumEnv`."""

from streamrl.envs.custom.pendulum import PendulumEnv

__all__ = ["PendulumEnv"]
