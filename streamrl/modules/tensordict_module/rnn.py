"""TorchRL's ``torchrl.modules.tensordict_module.rnn`` path: the names of :mod:`streamrl.modules.tensordict_module` that TorchRL 0.14 defines there,
importable from where TorchRL users import them.

>>> from streamrl.modules.tensordict_module.rnn import GRU
"""

from streamrl.modules.tensordict_module import (
    GRU,
    LSTM,
    GRUCell,
    GRUModule,
    LSTMCell,
    LSTMModule,
    recurrent_mode,
    set_recurrent_mode,
)

__all__ = [
    "GRU",
    "LSTM",
    "GRUCell",
    "GRUModule",
    "LSTMCell",
    "LSTMModule",
    "recurrent_mode",
    "set_recurrent_mode",
]
