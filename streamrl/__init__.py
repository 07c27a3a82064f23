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

import os as _os

from tensordict.nn import set_composite_lp_aggregate as _set_lp_aggregate

from streamrl._warnings import StreamRLWarning

# Probabilistic modules (tensordict's own included, as the seed tutorial uses them) write the
# log-probability of a single sampled key at "sample_log_prob", the key streamrl's losses read.
# Done once, when streamrl is first imported, so the key never depends on import order; the
# COMPOSITE_LP_AGGREGATE environment variable still takes precedence.
if _os.getenv("COMPOSITE_LP_AGGREGATE") is None:
    _set_lp_aggregate(True).set()

__version__ = "0.1.0.dev0"

__all__ = ["StreamRLWarning", "__version__"]
