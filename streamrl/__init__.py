"""streamrl: reinforcement learning for PyTorch, built as a graph of async operators.

Subpackages (import what you need; dependencies point down only):

- :mod:`streamrl.data`: specs, replay buffers, rate limiters
- :mod:`streamrl.envs`: environments, transforms, batched environments
- :mod:`streamrl.modules`: models, actors, distributions, exploration
- :mod:`streamrl.objectives`: losses, value estimators, target updaters
- :mod:`streamrl.graph`: the dataflow runtime (knows nothing about RL)
- :mod:`streamrl.ops`: RL operators for the graph
- :mod:`streamrl.collectors`: data collectors built as graph topologies
- :mod:`streamrl.train`: checkpoints, metrics, run directories, evaluation
- :mod:`streamrl.testing`: reusable contract suites (any env)
- :mod:`streamrl.errors`: errors raised across layers (worker processes)

TorchRL's top-level helpers are here too, loaded on first use (``from streamrl import timeit``):
:class:`~streamrl._utils.timeit`, :func:`~streamrl._utils.compile_with_warmup`,
:func:`~streamrl._utils.implement_for`, the ``streamrl`` :data:`~streamrl._utils.logger` (also
as ``streamrl_logger``, TorchRL's ``torchrl_logger`` renamed) and ``is_dynamo_compiling``.
"""

from typing import Any

from streamrl._warnings import StreamRLWarning

# Importing streamrl changes no global state of another library: tensordict's probabilistic
# modules keep writing a sampled action's log-probability at "<action>_log_prob"
# ("action_log_prob", as TorchRL 0.14 does); streamrl's losses read that key, or
# "sample_log_prob" (the seed's key) when a batch has it.

__version__ = "0.1.0.dev0"

# name -> name in streamrl._utils; imported when first read, so `import streamrl` stays light
_UTILS = {
    "timeit": "timeit",
    "compile_with_warmup": "compile_with_warmup",
    "implement_for": "implement_for",
    "logger": "logger",
    "streamrl_logger": "logger",
    "is_dynamo_compiling": "is_compiling",
}


def __getattr__(name: str) -> Any:
    if name in _UTILS:
        from streamrl import _utils

        return getattr(_utils, _UTILS[name])
    raise AttributeError(f"module 'streamrl' has no attribute {name!r}")


__all__ = [
    "StreamRLWarning",
    "__version__",
    "compile_with_warmup",
    "implement_for",
    "is_dynamo_compiling",
    "logger",
    "streamrl_logger",
    "timeit",
]
