"""Environments written in pure torch (no simulator library): :class:`PendulumEnv`,
:class:`BitFlippingEnv`."""

from streamrl.envs.custom.bit_flipping import BitFlippingEnv
from streamrl.envs.custom.pendulum import PendulumEnv

__all__ = ["BitFlippingEnv", "PendulumEnv"]
