"""Environments written in pure torch (no simulator library): :class:`PendulumEnv`,
:class:`BitFlippingEnv`, :class:`PointNavigationEnv`, :class:`FourRoomsEnv`."""

from streamrl.envs.custom.bit_flipping import BitFlippingEnv
from streamrl.envs.custom.four_rooms import FourRoomsEnv
from streamrl.envs.custom.pendulum import PendulumEnv
from streamrl.envs.custom.point_navigation import PointNavigationEnv

__all__ = ["BitFlippingEnv", "FourRoomsEnv", "PendulumEnv", "PointNavigationEnv"]
