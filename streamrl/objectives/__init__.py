"""streamrl.objectives: losses, value estimators and target-network updaters.

>>> from streamrl.objectives import DDPGLoss, SoftUpdate, ValueEstimators
"""

from streamrl.objectives.common import LossModule
from streamrl.objectives.ddpg import DDPGLoss
from streamrl.objectives.target_updaters import HardUpdate, SoftUpdate, TargetNetUpdater
from streamrl.objectives.utils import distance_loss, total_loss
from streamrl.objectives.value import (
    GAE,
    TD0Estimator,
    TD1Estimator,
    TDLambdaEstimator,
    ValueEstimatorBase,
    ValueEstimators,
)

__all__ = [
    "GAE",
    "DDPGLoss",
    "HardUpdate",
    "LossModule",
    "SoftUpdate",
    "TD0Estimator",
    "TD1Estimator",
    "TDLambdaEstimator",
    "TargetNetUpdater",
    "ValueEstimatorBase",
    "ValueEstimators",
    "distance_loss",
    "total_loss",
]
