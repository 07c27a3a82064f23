"""TorchRL's ``torchrl.modules.models.models`` path: the feed-forward networks, importable
from where TorchRL users import them.

>>> from streamrl.modules.models.models import MLP, ConvNet, DdpgMlpActor
"""

from streamrl.modules.models.convnet import Conv2dNet, Conv3dNet, ConvNet
from streamrl.modules.models.ddpg import (
    DdpgCnnActor,
    DdpgCnnQNet,
    DdpgMlpActor,
    DdpgMlpQNet,
    ddpg_init_last_layer,
)
from streamrl.modules.models.dt_actors import DTActor, OnlineDTActor
from streamrl.modules.models.dueling import DuelingCnnDQNet, DuelingMlpDQNet
from streamrl.modules.models.mlp import MLP
from streamrl.modules.models.noisy import NoisyLinear
from streamrl.modules.models.utils import SquashDims, Squeeze2dLayer, SqueezeLayer

__all__ = [
    "MLP",
    "Conv2dNet",
    "Conv3dNet",
    "ConvNet",
    "DTActor",
    "DdpgCnnActor",
    "DdpgCnnQNet",
    "DdpgMlpActor",
    "DdpgMlpQNet",
    "DuelingCnnDQNet",
    "DuelingMlpDQNet",
    "NoisyLinear",
    "OnlineDTActor",
    "SquashDims",
    "Squeeze2dLayer",
    "SqueezeLayer",
    "ddpg_init_last_layer",
]
