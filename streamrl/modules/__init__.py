"""streamrl.modules: models, actors and value operators, distributions, exploration, ensembles.

TensorDictModule, TensorDictSequential and the probabilistic modules come from
``tensordict.nn``; this package adds RL models and defaults on top of them.

Probabilistic actors write a sampled action's log-probability at ``"action_log_prob"``
(tensordict's and TorchRL 0.14's key; the seed's ``"sample_log_prob"`` is read too by the
losses). The exploration
type (``ExplorationType``, ``set_exploration_type``) is re-exported from its home,
:mod:`streamrl.envs.utils`.
"""

from streamrl.envs.utils import (
    ExplorationType,
    RandomPolicy,
    exploration_type,
    set_exploration_type,
)
from streamrl.modules.actor_critic import (
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
)
from streamrl.modules.actors import Actor, ProbabilisticActor, ValueOperator
from streamrl.modules.deprecated import (
    AdditiveGaussianWrapper,
    EGreedyWrapper,
    NormalParamWrapper,
    OrnsteinUhlenbeckProcessWrapper,
)
from streamrl.modules.distributions import (
    AddStateIndependentNormalScale,
    Categorical,
    Delta,
    IndependentNormal,
    MaskedCategorical,
    MaskedOneHotCategorical,
    NormalParamExtractor,
    OneHotCategorical,
    OneHotOrdinal,
    Ordinal,
    ReparamGradientStrategy,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
)
from streamrl.modules.dt_inference_wrapper import DecisionTransformerInferenceWrapper
from streamrl.modules.ensemble import EnsembleModule, stack_params
from streamrl.modules.exploration import (
    AdditiveGaussianModule,
    EGreedyModule,
    OrnsteinUhlenbeckProcessModule,
)
from streamrl.modules.hierarchy import HeldDecision
from streamrl.modules.models import (
    GRU,
    LSTM,
    MLP,
    BatchRenorm1d,
    ConsistentDropout,
    ConsistentDropoutModule,
    Conv3dNet,
    ConvNet,
    DdpgCnnActor,
    DdpgCnnQNet,
    DdpgMlpActor,
    DdpgMlpQNet,
    DecisionTransformer,
    DTActor,
    DuelingCnnDQNet,
    DuelingHead,
    DuelingMlpDQNet,
    GRUCell,
    GRUModule,
    LSTMCell,
    LSTMModule,
    MultiAgentConvNet,
    MultiAgentMLP,
    MultiHead,
    NoisyLazyLinear,
    NoisyLinear,
    OnlineDTActor,
    QMixer,
    Squeeze2dLayer,
    SqueezeLayer,
    TaskEmbedding,
    TaskwiseModule,
    VDNMixer,
    reset_noise,
)
from streamrl.modules.models.recurrent_mode import recurrent_mode, set_recurrent_mode
from streamrl.modules.primers import get_primers_from_module
from streamrl.modules.qvalue import (
    DistributionalDQNnet,
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
from streamrl.modules.value_norm import (
    PercentileValueNorm,
    PopArtValueNorm,
    RunningValueNorm,
    ValueNorm,
)
from streamrl.modules.value_transforms import (
    ComposeValueTransform,
    IdentityValueTransform,
    SignedHyperbolicValueTransform,
    SymLogValueTransform,
    ValueTransform,
)
from streamrl.modules.vmap_module import VmapModule
from streamrl.modules.world_model import WorldModelWrapper

__all__ = [
    "GRU",
    "LSTM",
    "MLP",
    "Actor",
    "ActorCriticOperator",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "AddStateIndependentNormalScale",
    "AdditiveGaussianModule",
    "AdditiveGaussianWrapper",
    "BatchRenorm1d",
    "Categorical",
    "ComposeValueTransform",
    "ConsistentDropout",
    "ConsistentDropoutModule",
    "Conv3dNet",
    "ConvNet",
    "DTActor",
    "DdpgCnnActor",
    "DdpgCnnQNet",
    "DdpgMlpActor",
    "DdpgMlpQNet",
    "DecisionTransformer",
    "DecisionTransformerInferenceWrapper",
    "Delta",
    "DistributionalDQNnet",
    "DistributionalQValueActor",
    "DistributionalQValueHook",
    "DistributionalQValueModule",
    "DuelingCnnDQNet",
    "DuelingHead",
    "DuelingMlpDQNet",
    "EGreedyModule",
    "EGreedyWrapper",
    "EnsembleModule",
    "ExplorationType",
    "GRUCell",
    "GRUModule",
    "HeldDecision",
    "IdentityValueTransform",
    "IndependentNormal",
    "LSTMCell",
    "LSTMModule",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "MultiAgentConvNet",
    "MultiAgentMLP",
    "MultiHead",
    "NoisyLazyLinear",
    "NoisyLinear",
    "NormalParamExtractor",
    "NormalParamWrapper",
    "OneHotCategorical",
    "OneHotOrdinal",
    "OnlineDTActor",
    "Ordinal",
    "OrnsteinUhlenbeckProcessModule",
    "OrnsteinUhlenbeckProcessWrapper",
    "PercentileValueNorm",
    "PopArtValueNorm",
    "ProbabilisticActor",
    "QMixer",
    "QValueActor",
    "QValueHook",
    "QValueModule",
    "RandomPolicy",
    "ReparamGradientStrategy",
    "RunningValueNorm",
    "SafeModule",
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
    "SafeSequential",
    "SignedHyperbolicValueTransform",
    "Squeeze2dLayer",
    "SqueezeLayer",
    "SymLogValueTransform",
    "TanhDelta",
    "TanhModule",
    "TanhNormal",
    "TaskEmbedding",
    "TaskwiseModule",
    "TruncatedNormal",
    "VDNMixer",
    "ValueNorm",
    "ValueOperator",
    "ValueTransform",
    "VmapModule",
    "WorldModelWrapper",
    "exploration_type",
    "get_primers_from_module",
    "recurrent_mode",
    "reset_noise",
    "set_exploration_type",
    "set_recurrent_mode",
    "stack_params",
]
