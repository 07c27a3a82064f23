"""Action distributions with well-defined mode, mean and deterministic values.

Every distribution here defines ``mode``, ``mean`` and ``deterministic_sample``, which
tensordict's probabilistic modules read under ``ExplorationType.MODE``, ``MEAN`` and
``DETERMINISTIC``; ``RANDOM`` draws with ``rsample`` when available, else ``sample``.
"""

from streamrl.modules.deprecated import NormalParamWrapper
from streamrl.modules.distributions.categorical import (
    Categorical,
    MaskedCategorical,
    MaskedOneHotCategorical,
    OneHotCategorical,
    ReparamGradientStrategy,
)
from streamrl.modules.distributions.delta import Delta, TanhDelta
from streamrl.modules.distributions.normal import IndependentNormal
from streamrl.modules.distributions.ordinal import OneHotOrdinal, Ordinal
from streamrl.modules.distributions.param_extractor import (
    AddStateIndependentNormalScale,
    NormalParamExtractor,
    biased_softplus,
    scale_mapping,
)
from streamrl.modules.distributions.tanh_normal import TanhNormal
from streamrl.modules.distributions.truncated_normal import TruncatedNormal
from streamrl.modules.distributions.utils import has_analytic_entropy, has_analytic_kl

__all__ = [
    "AddStateIndependentNormalScale",
    "Categorical",
    "Delta",
    "IndependentNormal",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "NormalParamExtractor",
    "NormalParamWrapper",
    "OneHotCategorical",
    "OneHotOrdinal",
    "Ordinal",
    "ReparamGradientStrategy",
    "TanhDelta",
    "TanhNormal",
    "TruncatedNormal",
    "biased_softplus",
    "has_analytic_entropy",
    "has_analytic_kl",
    "scale_mapping",
]
