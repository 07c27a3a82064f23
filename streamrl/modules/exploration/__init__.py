"""Exploration noise modules, active only under ``ExplorationType.RANDOM`` (or none set)."""

from streamrl.modules.deprecated import (
    AdditiveGaussianWrapper,
    EGreedyWrapper,
    OrnsteinUhlenbeckProcessWrapper,
)
from streamrl.modules.exploration.egreedy import EGreedyModule
from streamrl.modules.exploration.gaussian import AdditiveGaussianModule
from streamrl.modules.exploration.ornstein_uhlenbeck import OrnsteinUhlenbeckProcessModule

__all__ = [
    "AdditiveGaussianModule",
    "AdditiveGaussianWrapper",
    "EGreedyModule",
    "EGreedyWrapper",
    "OrnsteinUhlenbeckProcessModule",
    "OrnsteinUhlenbeckProcessWrapper",
]
