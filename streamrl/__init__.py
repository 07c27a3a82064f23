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
"""

from streamrl._warnings import StreamRLWarning

# Importing streamrl changes no global state of another library: tensordict's probabilistic
# modules keep writing a sampled action's log-probability at "<action>_log_prob"
# ("action_log_prob", as TorchRL 0.14 does); streamrl's losses read that key, or
# "sample_log_prob" (the seed's key) when a batch has it.

__version__ = "0.1.0.dev0"

__all__ = ["StreamRLWarning", "__version__"]
