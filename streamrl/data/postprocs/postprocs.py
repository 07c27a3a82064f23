"""TorchRL's ``torchrl.data.postprocs.postprocs`` path: the names of :mod:`streamrl.data.postprocs` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.data.postprocs.postprocs import DensifyReward
"""

from streamrl.data.postprocs import (
    DensifyReward,
    MultiStep,
)

__all__ = [
    "DensifyReward",
    "MultiStep",
]
