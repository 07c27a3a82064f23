"""streamrl: reinforcement learning for PyTorch, built as a graph of async operators.

Subpackages (import what you need; dependencies point down only):

- :mod:`streamrl.data`: specs, replay buffers, rate limiters
- :mod:`streamrl.envs`: environments, transforms, batched environments
- :mod:`streamrl.modules`: models, actors, distributions, exploration
- :mod:`streamrl.objectives`: losses, value estimators, target updaters
- :mod:`streamrl.graph`: the dataflow runtime (knows nothing about RL)
- :mod:`streamrl.ops`: RL operators for the graph
- :mod:`streamrl.collectors`: data collectors built as graph topologies
"""

from streamrl._warnings import StreamRLWarning

__version__ = "0.1.0.dev0"

__all__ = ["StreamRLWarning", "__version__"]
