"""Value estimators: TD(0), TD(1), TD(lambda), GAE, multi-agent GAE, V-trace, as functions and as tensordict modules."""

from streamrl.objectives.value.common import (
    ValueEstimatorBase,
    ValueEstimators,
    default_value_kwargs,
)
from streamrl.objectives.value.deprecated import TD0Estimate, TD1Estimate, TDLambdaEstimate
from streamrl.objectives.value.estimators import (
    GAE,
    MultiAgentGAE,
    TD0Estimator,
    TD1Estimator,
    TDLambdaEstimator,
    make_estimator,
)
from streamrl.objectives.value.functional import (
    generalized_advantage_estimate,
    reverse_linear_scan,
    td0_advantage_estimate,
    td0_return_estimate,
    td1_return_estimate,
    td_lambda_return_estimate,
    vtrace_advantage_estimate,
)
from streamrl.objectives.value.vtrace import VTrace

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
    "ValueEstimators",
    "default_value_kwargs",
    "generalized_advantage_estimate",
    "make_estimator",
    "reverse_linear_scan",
    "td0_advantage_estimate",
    "td0_return_estimate",
    "td1_return_estimate",
    "td_lambda_return_estimate",
    "vtrace_advantage_estimate",
]
