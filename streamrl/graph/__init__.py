"""streamrl.graph: the dataflow runtime (operators, bounded edges, placements, runners).

It knows nothing about RL. A :class:`Graph` holds :class:`Operator` objects (sources, maps,
batchers, sinks, or stages with several named ports) connected by edges:

* **FIFO** edges with a capacity (the backpressure: a full edge makes its producer wait),
* **latest-value** edges (``kind="latest"``: the writer never waits, the reader gets only the
  newest value, e.g. weights),
* **rate-limited** FIFO edges (``limiter=``: a :class:`RateLimiter` gates puts and gets).

One output port may feed several edges (fan-out: every consumer gets every item, the same
object, so consumers must not modify items in place); several edges may feed one input port
(fan-in: merged). Cycles are declared with ``feedback=True`` and checked for progress.

Each operator has a placement: :class:`Inline` (the event loop), :class:`Thread` (a dedicated
worker thread), :class:`Process` (a worker process; TensorDicts cross in shared memory) or
:class:`Ray` (a Ray actor, on this machine or another one of a Ray cluster; needs the ``ray``
extra and anyio's asyncio backend). A string (``"inline"``, ``"thread"``, ``"process"``,
``"ray"``) picks the placement with default options.
Chains of inline operators are fused into one task.

Run a graph with ``await graph.run()``, ``graph.run_sync()``, ``for item in
graph.iterate(node)``, ``async with graph.stream(node) as items``, or deterministically with
``graph.run_deterministic()`` / ``graph.stepper()``. The executor is anyio on its **asyncio
backend**, the only one supported (``anyio.run``'s default, and what ``run_sync``, ``iterate``
and ``as_node`` use): awaiting ``graph.run()`` or ``graph.stream()`` under trio raises a
``RuntimeError`` saying so before any operator starts. A new placement implements a
:class:`Placement` whose ``host()`` returns a :class:`Host` (or a :class:`PipelinedHost`). An operator's exception cancels the run and
is raised as :class:`OperatorError` naming the operator, with the original exception as
``__cause__``; a deadlock is raised as :class:`DeadlockError` naming the blocked edges.
``graph.stats()``, ``graph.report()``, ``str(graph)`` and ``graph.to_mermaid()`` show what it
does.

>>> from streamrl.graph import Graph, Source, Batcher, Collect
>>> g = Graph()
>>> src, batch, out = g.add(Source(range(5))), g.add(Batcher(2)), g.add(Collect())
>>> g.connect(src, batch).connect(batch, out).run_sync()
>>> out.op.items
[[0, 1], [2, 3], [4]]
"""

from .channels import FifoChannel, LatestChannel, RateLimitedChannel, RateLimiter, rows_of
from .deterministic import StepEvent, Stepper
from .errors import DeadlockError, GraphError, GraphValidationError, OperatorError, PeerLostError
from .graph import Edge, Graph, Node, Port
from .interop import GraphNode, NodeSource
from .kinds import Batcher, Collect, Map, Sink, Source
from .operator import Many, Operator
from .placement import Host, Inline, PipelinedHost, Placement, Thread
from .process import Process
from .ray import Ray, RayPlacementGroup  # imports Ray itself only when a Ray-placed operator starts
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
    "Host",
    "Inline",
    "LatestChannel",
    "Many",
    "Map",
    "Node",
    "NodeSource",
    "Operator",
    "OperatorError",
    "OperatorStats",
    "PeerLostError",
    "PipelinedHost",
    "Placement",
    "Port",
    "Process",
    "RateLimitedChannel",
    "RateLimiter",
    "Ray",
    "RayPlacementGroup",
    "Sink",
    "Source",
    "StepEvent",
    "Stepper",
    "Thread",
    "rows_of",
]
