"""TorchRL's ``torchrl.modules.tensordict_module.exploration`` path: the names of :mod:`streamrl.modules.tensordict_module` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.modules.tensordict_module.exploration import AdditiveGaussianModule
"""

from streamrl.modules.tensordict_module import (
    AdditiveGaussianModule,
    EGreedyModule,
    EGreedyWrapper,
    OrnsteinUhlenbeckProcessModule,
    OrnsteinUhlenbeckProcessWrapper,
)

__all__ = [
    "AdditiveGaussianModule",
    "EGreedyModule",
    "EGreedyWrapper",
    "OrnsteinUhlenbeckProcessModule",
    "OrnsteinUhlenbeckProcessWrapper",
]
