"""TorchRL's ``torchrl.modules.distributions.discrete`` path: the discrete distributions of
:mod:`streamrl.modules.distributions`.

>>> from streamrl.modules.distributions.discrete import OneHotCategorical
"""

from streamrl.modules.distributions.categorical import (
    MaskedCategorical,
    MaskedOneHotCategorical,
    OneHotCategorical,
)

__all__ = ["MaskedCategorical", "MaskedOneHotCategorical", "OneHotCategorical"]
