"""streamrl.objectives: losses, value estimators and target-network updaters.

>>> from streamrl.objectives import DDPGLoss, SoftUpdate, ValueEstimators
"""

from streamrl.objectives._utils import (
    distance_loss,
    hold_out_net,
    hold_out_params,
    next_state_value,
    total_loss,
)
from streamrl.objectives.a2c import A2CLoss
from streamrl.objectives.bc import BCLoss
from streamrl.objectives.common import LossModule
from streamrl.objectives.cql import CQLLoss
from streamrl.objectives.crossq import CrossQLoss
from streamrl.objectives.ddpg import DDPGLoss
from streamrl.objectives.decision_transformer import DTLoss, OnlineDTLoss
from streamrl.objectives.discrete_cql import DiscreteCQLLoss
from streamrl.objectives.discrete_iql import DiscreteIQLLoss
from streamrl.objectives.discrete_sac import DiscreteSACLoss
from streamrl.objectives.distributional_dqn import DistributionalDQNLoss
from streamrl.objectives.dqn import DQNLoss
from streamrl.objectives.hiro import hiro_relabel
from streamrl.objectives.iql import IQLLoss
from streamrl.objectives.maml import maml_adapt, maml_adapt_tasks, maml_task_losses
from streamrl.objectives.multiagent import QMixerLoss
from streamrl.objectives.optim import KLAdaptiveLR, group_optimizers
from streamrl.objectives.option_critic import OptionCriticLoss
from streamrl.objectives.ppo import ClipPPOLoss, KLPENPPOLoss, PPOLoss
from streamrl.objectives.redq import REDQLoss
from streamrl.objectives.reinforce import ReinforceLoss
from streamrl.objectives.sac import SACLoss
from streamrl.objectives.target_updaters import HardUpdate, SoftUpdate, TargetNetUpdater
from streamrl.objectives.td3 import TD3Loss
from streamrl.objectives.td3_bc import TD3BCLoss
from streamrl.objectives.tqc import TQCLoss
from streamrl.objectives.value import (
    GAE,
    TD0Estimator,
    TD1Estimator,
    TDLambdaEstimator,
    ValueEstimatorBase,
    ValueEstimators,
    default_value_kwargs,
)

__all__ = [
    "GAE",
    "A2CLoss",
    "BCLoss",
    "CQLLoss",
    "ClipPPOLoss",
    "CrossQLoss",
    "DDPGLoss",
    "DQNLoss",
    "DTLoss",
    "DiscreteCQLLoss",
    "DiscreteIQLLoss",
    "DiscreteSACLoss",
    "DistributionalDQNLoss",
    "HardUpdate",
    "IQLLoss",
    "KLAdaptiveLR",
    "KLPENPPOLoss",
    "LossModule",
    "OnlineDTLoss",
    "OptionCriticLoss",
    "PPOLoss",
    "QMixerLoss",
    "REDQLoss",
    "ReinforceLoss",
    "SACLoss",
    "SoftUpdate",
    "TD0Estimator",
    "TD1Estimator",
    "TD3BCLoss",
    "TD3Loss",
    "TDLambdaEstimator",
    "TQCLoss",
    "TargetNetUpdater",
    "ValueEstimatorBase",
    "ValueEstimators",
    "default_value_kwargs",
    "distance_loss",
    "group_optimizers",
    "hiro_relabel",
    "hold_out_net",
    "hold_out_params",
    "maml_adapt",
    "maml_adapt_tasks",
    "maml_task_losses",
    "next_state_value",
    "total_loss",
]
