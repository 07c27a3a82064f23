"""TorchRL's ``torchrl.modules.tensordict_module.common`` path: the names of :mod:`streamrl.modules.tensordict_module` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.modules.tensordict_module.common import SafeModule
"""

from streamrl.modules._td_compat import ensure_tensordict_compatible, is_tensordict_compatible
from streamrl.modules.tensordict_module import (
    SafeModule,
    VmapModule,
)

__all__ = [
    "SafeModule",
    "VmapModule",
    "ensure_tensordict_compatible",
    "is_tensordict_compatible",
]
