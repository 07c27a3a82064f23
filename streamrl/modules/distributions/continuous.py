"""TorchRL's ``torchrl.modules.distributions.continuous`` path: the continuous distributions
of :mod:`streamrl.modules.distributions`.

>>> from streamrl.modules.distributions.continuous import TanhNormal
"""

from streamrl.modules.distributions.delta import Delta, TanhDelta
from streamrl.modules.distributions.normal import IndependentNormal
from streamrl.modules.distributions.tanh_normal import TanhNormal
from streamrl.modules.distributions.truncated_normal import TruncatedNormal

__all__ = ["Delta", "IndependentNormal", "TanhDelta", "TanhNormal", "TruncatedNormal"]
