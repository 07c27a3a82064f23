"""streamrl.graph: the dataflow runtime (operators, bounded edges, placements, runners).

It knows nothing about RL. Build a :class:`Graph` of :class:`Operator` objects, connect their
ports with bounded FIFO, latest-value or rate-limited edges, and run it with
``await graph.run()``, ``graph.run_sync()``, ``for item in graph.iterate(node)``, or
deterministically with ``graph.run_deterministic()``.

>>> from streamrl.graph import Graph, Source, Batcher, Collect
>>> g = Graph()
>>> src, batch, out = g.add(Source(range(5))), g.add(Batcher(2)), g.add(Collect())
>>> g.connect(src, batch).connect(batch, out).run_sync()
>>> out.op.items
[[0, 1], [2, 3], [4]]
"""

from .channels import FifoChannel, LatestChannel, RateLimitedChannel, RateLimiter, rows_of
from .deterministic import StepEvent, Stepper
from .errors import DeadlockError, GraphError, GraphValidationError, OperatorError
from .graph import Edge, Graph, Node, Port
from .interop import GraphNode, NodeSource
from .kinds import Batcher, Collect, Map, Sink, Source
from .operator import Many, Operator
from .placement import Inline, Placement, Thread
from .process import Process
from .stats import EdgeStats, GraphStats, OperatorStats

__all__ = [
    "Batcher",
    "Collect",
    "DeadlockError",
    "Edge",
    "EdgeStats",
    "FifoChannel",
    "Graph",
    "GraphError",
    "GraphNode",
    "GraphStats",
    "GraphValidationError",
    "Inline",
    "LatestChannel",
    "Many",
    "Map",
    "Node",
    "NodeSource",
    "Operator",
    "OperatorError",
    "OperatorStats",
    "Placement",
    "Port",
    "Process",
    "RateLimitedChannel",
    "RateLimiter",
    "Sink",
    "Source",
    "StepEvent",
    "Stepper",
    "Thread",
    "rows_of",
]
