"""TorchRL's ``torchrl.modules.models.exploration`` path: the names of :mod:`streamrl.modules` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.modules.models.exploration import ConsistentDropout
"""

from streamrl.modules import (
    ConsistentDropout,
    ConsistentDropoutModule,
    NoisyLazyLinear,
    NoisyLinear,
    reset_noise,
)

__all__ = [
    "ConsistentDropout",
    "ConsistentDropoutModule",
    "NoisyLazyLinear",
    "NoisyLinear",
    "reset_noise",
]
