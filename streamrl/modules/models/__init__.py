"""Model building blocks: MLP, ConvNet, DDPG and dueling networks, recurrent modules."""

from streamrl.modules.models.batchrenorm import BatchRenorm1d
from streamrl.modules.models.consistent_dropout import ConsistentDropout, ConsistentDropoutModule
from streamrl.modules.models.convnet import Conv2dNet, Conv3dNet, ConvNet
from streamrl.modules.models.ddpg import (
    DdpgCnnActor,
    DdpgCnnQNet,
    DdpgMlpActor,
    DdpgMlpQNet,
    ddpg_init_last_layer,
)
from streamrl.modules.models.decision_transformer import DecisionTransformer
from streamrl.modules.models.dt_actors import DTActor, OnlineDTActor
from streamrl.modules.models.dueling import DuelingCnnDQNet, DuelingHead, DuelingMlpDQNet
from streamrl.modules.models.mixers import QMixer, VDNMixer
from streamrl.modules.models.mlp import MLP
from streamrl.modules.models.multiagent import MultiAgentConvNet, MultiAgentMLP
from streamrl.modules.models.noisy import NoisyLazyLinear, NoisyLinear, reset_noise
from streamrl.modules.models.python_rnn import GRU, LSTM, GRUCell, LSTMCell
from streamrl.modules.models.recurrent import GRUModule, LSTMModule
from streamrl.modules.models.task import MultiHead, TaskEmbedding, TaskwiseModule
from streamrl.modules.models.utils import SquashDims, Squeeze, Squeeze2dLayer, SqueezeLayer

__all__ = [
    "GRU",
    "LSTM",
    "MLP",
    "BatchRenorm1d",
    "ConsistentDropout",
    "ConsistentDropoutModule",
    "Conv2dNet",
    "Conv3dNet",
    "ConvNet",
    "DTActor",
    "DdpgCnnActor",
    "DdpgCnnQNet",
    "DdpgMlpActor",
    "DdpgMlpQNet",
    "DecisionTransformer",
    "DuelingCnnDQNet",
    "DuelingHead",
    "DuelingMlpDQNet",
    "GRUCell",
    "GRUModule",
    "LSTMCell",
    "LSTMModule",
    "MultiAgentConvNet",
    "MultiAgentMLP",
    "MultiHead",
    "NoisyLazyLinear",
    "NoisyLinear",
    "OnlineDTActor",
    "QMixer",
    "SquashDims",
    "Squeeze",
    "Squeeze2dLayer",
    "SqueezeLayer",
    "TaskEmbedding",
    "TaskwiseModule",
    "VDNMixer",
    "ddpg_init_last_layer",
    "reset_noise",
]
