"""What TorchRL users import from ``torchrl.objectives.utils``, in one namespace.

>>> from streamrl.objectives.utils import SoftUpdate, ValueEstimators, default_value_kwargs
>>> default_value_kwargs(ValueEstimators.TD0)
{'gamma': 0.99, 'differentiable': True}
"""

from streamrl.envs.utils import step_mdp
from streamrl.objectives._utils import (
    distance_loss,
    hold_out_net,
    hold_out_params,
    next_state_value,
    total_loss,
)
from streamrl.objectives.optim import KLAdaptiveLR, group_optimizers
from streamrl.objectives.target_updaters import HardUpdate, SoftUpdate, TargetNetUpdater
from streamrl.objectives.value.common import ValueEstimators, default_value_kwargs

__all__ = [
    "HardUpdate",
    "KLAdaptiveLR",
    "SoftUpdate",
    "TargetNetUpdater",
    "ValueEstimators",
    "default_value_kwargs",
    "distance_loss",
    "group_optimizers",
    "hold_out_net",
    "hold_out_params",
    "next_state_value",
    "step_mdp",
    "total_loss",
]
