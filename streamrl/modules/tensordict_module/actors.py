"""TorchRL's ``torchrl.modules.tensordict_module.actors`` path: the names of :mod:`streamrl.modules.tensordict_module` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.modules.tensordict_module.actors import Actor
"""

from streamrl.modules.tensordict_module import (
    Actor,
    ActorCriticOperator,
    ActorCriticWrapper,
    ActorValueOperator,
    DecisionTransformerInferenceWrapper,
    DistributionalQValueActor,
    DistributionalQValueHook,
    DistributionalQValueModule,
    ProbabilisticActor,
    QValueActor,
    QValueHook,
    QValueModule,
    TanhModule,
    ValueOperator,
)

__all__ = [
    "Actor",
    "ActorCriticOperator",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "DecisionTransformerInferenceWrapper",
    "DistributionalQValueActor",
    "DistributionalQValueHook",
    "DistributionalQValueModule",
    "ProbabilisticActor",
    "QValueActor",
    "QValueHook",
    "QValueModule",
    "TanhModule",
    "ValueOperator",
]
