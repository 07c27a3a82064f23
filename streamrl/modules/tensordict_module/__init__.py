"""TorchRL's ``torchrl.modules.tensordict_module`` path: the TensorDict modules of
:mod:`streamrl.modules` (actors, value operators, Q-value actors, exploration modules,
recurrent modules and their mode, safe modules and sequences), importable from where TorchRL users import them.

>>> from streamrl.modules.tensordict_module import Actor, QValueActor, SafeModule
"""

from streamrl.envs.utils import RandomPolicy
from streamrl.modules.actor_critic import (
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
)
from streamrl.modules.actors import Actor, ProbabilisticActor, ValueOperator
from streamrl.modules.deprecated import (
    AdditiveGaussianWrapper,
    EGreedyWrapper,
    OrnsteinUhlenbeckProcessWrapper,
)
from streamrl.modules.dt_inference_wrapper import DecisionTransformerInferenceWrapper
from streamrl.modules.exploration import (
    AdditiveGaussianModule,
    EGreedyModule,
    OrnsteinUhlenbeckProcessModule,
)
from streamrl.modules.models import GRU, LSTM, GRUCell, GRUModule, LSTMCell, LSTMModule
from streamrl.modules.models.recurrent_mode import recurrent_mode, set_recurrent_mode
from streamrl.modules.qvalue import (
    DistributionalQValueActor,
    DistributionalQValueModule,
    QValueActor,
    QValueModule,
)
from streamrl.modules.qvalue_hooks import DistributionalQValueHook, QValueHook
from streamrl.modules.safe import SafeModule
from streamrl.modules.safe_probabilistic import (
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
)
from streamrl.modules.safe_sequence import SafeSequential
from streamrl.modules.tanh_module import TanhModule
from streamrl.modules.vmap_module import VmapModule
from streamrl.modules.world_model import WorldModelWrapper

__all__ = [
    "GRU",
    "LSTM",
    "Actor",
    "ActorCriticOperator",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "AdditiveGaussianModule",
    "AdditiveGaussianWrapper",
    "DecisionTransformerInferenceWrapper",
    "DistributionalQValueActor",
    "DistributionalQValueHook",
    "DistributionalQValueModule",
    "EGreedyModule",
    "EGreedyWrapper",
    "GRUCell",
    "GRUModule",
    "LSTMCell",
    "LSTMModule",
    "OrnsteinUhlenbeckProcessModule",
    "OrnsteinUhlenbeckProcessWrapper",
    "ProbabilisticActor",
    "QValueActor",
    "QValueHook",
    "QValueModule",
    "RandomPolicy",
    "SafeModule",
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
    "SafeSequential",
    "TanhModule",
    "ValueOperator",
    "VmapModule",
    "WorldModelWrapper",
    "recurrent_mode",
    "set_recurrent_mode",
]
