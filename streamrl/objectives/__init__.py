"""streamrl.objectives: losses, value estimators and target-network updaters.

>>> from streamrl.objectives import DDPGLoss, SoftUpdate, ValueEstimators
"""

from streamrl.objectives.a2c import A2CLoss
from streamrl.objectives.common import LossModule
from streamrl.objectives.ddpg import DDPGLoss
from streamrl.objectives.discrete_sac import DiscreteSACLoss
from streamrl.objectives.dqn import DQNLoss
from streamrl.objectives.ppo import ClipPPOLoss, KLPENPPOLoss
from streamrl.objectives.reinforce import ReinforceLoss
from streamrl.objectives.sac import SACLoss
from streamrl.objectives.target_updaters import HardUpdate, SoftUpdate, TargetNetUpdater
from streamrl.objectives.td3 import TD3Loss
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
    "A2CLoss",
    "ClipPPOLoss",
    "DDPGLoss",
    "DQNLoss",
    "DiscreteSACLoss",
    "HardUpdate",
    "KLPENPPOLoss",
    "LossModule",
    "ReinforceLoss",
    "SACLoss",
    "SoftUpdate",
    "TD0Estimator",
    "TD1Estimator",
    "TD3Loss",
    "TDLambdaEstimator",
    "TargetNetUpdater",
    "ValueEstimatorBase",
    "ValueEstimators",
    "distance_loss",
    "total_loss",
]
