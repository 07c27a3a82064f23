"""TorchRL's ``torchrl.modules.tensordict_module.probabilistic`` path: the names of :mod:`streamrl.modules.tensordict_module` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.modules.tensordict_module.probabilistic import SafeProbabilisticModule
"""

from streamrl.modules.tensordict_module import (
    SafeProbabilisticModule,
    SafeProbabilisticTensorDictSequential,
)

__all__ = [
    "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential",
]
