"""TorchRL's ``torchrl.modules.tensordict_module.sequence`` path: the names of :mod:`streamrl.modules.tensordict_module` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.modules.tensordict_module.sequence import SafeSequential
"""

from streamrl.modules.tensordict_module import (
    SafeSequential,
)

__all__ = [
    "SafeSequential",
]
