"""TorchRL's ``torchrl.objectives.value.advantages`` path: the names of :mod:`streamrl.objectives.value` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.objectives.value.advantages import GAE
"""

from streamrl.objectives.value import (
    GAE,
    MultiAgentGAE,
    TD0Estimate,
    TD0Estimator,
    TD1Estimate,
    TD1Estimator,
    TDLambdaEstimate,
    TDLambdaEstimator,
    ValueEstimatorBase,
    VTrace,
)

__all__ = [
    "GAE",
    "MultiAgentGAE",
    "TD0Estimate",
    "TD0Estimator",
    "TD1Estimate",
    "TD1Estimator",
    "TDLambdaEstimate",
    "TDLambdaEstimator",
    "VTrace",
    "ValueEstimatorBase",
]
