"""Model building blocks: MLP, ConvNet, dueling heads, recurrent modules."""

from streamrl.modules.models.convnet import ConvNet
from streamrl.modules.models.dueling import DuelingCnnDQNet, DuelingHead, DuelingMlpDQNet
from streamrl.modules.models.mixers import QMixer, VDNMixer
from streamrl.modules.models.mlp import MLP
from streamrl.modules.models.noisy import NoisyLinear, reset_noise
from streamrl.modules.models.recurrent import GRUModule, LSTMModule
from streamrl.modules.models.utils import SquashDims, Squeeze

__all__ = [
    "MLP",
    "ConvNet",
    "DuelingCnnDQNet",
    "DuelingHead",
    "DuelingMlpDQNet",
    "GRUModule",
    "LSTMModule",
    "NoisyLinear",
    "QMixer",
    "SquashDims",
    "Squeeze",
    "VDNMixer",
    "reset_noise",
]
