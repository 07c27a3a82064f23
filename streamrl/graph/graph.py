"""The graph builder: add operators, connect ports, validate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .channels import FifoChannel, LatestChannel, RateLimitedChannel, RateLimiter
from .deterministic import Stepper
from .errors import GraphValidationError
from .eventloop import Waker
from .interop import GraphNode
from .operator import Operator, check_operator
from .placement import Placement, resolve_placement
from .render import to_mermaid as _to_mermaid
from .render import to_text as _to_text
from .runner import Runner
from .stats import GraphStats
from .sync import iterate as _iterate
from .sync import run_sync as _run_sync
from .sync import stream as _stream
from .validation import validate as _validate

__all__ = ["Edge", "Graph", "Node", "Port"]

_KINDS = ("fifo", "latest")


@dataclass(frozen=True)
class Port:
    """A named port of a node, written ``node["name"]``."""

    node: Node
    name: str

    def __repr__(self) -> str:
        return f"{self.node.name}.{self.name}"


@dataclass(eq=False)
class Node:
    """An operator added to a graph, with its name and placement. ``node["port"]`` selects a
    port for :meth:`Graph.connect`."""

    name: str
    op: Operator
    placement: Placement

    def __getitem__(self, port: str) -> Port:
        if port not in self.op.inputs and port not in self.op.outputs:
            raise GraphValidationError(
                f"operator {self.name!r} has no port {port!r}; inputs: {self.op.inputs}, "
                f"outputs: {self.op.outputs}"
            )
        return Port(self, port)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Input port names."""
        return self.op.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        """Output port names."""
        return self.op.outputs

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.op!r}, {self.placement.name})"


@dataclass(eq=False)
class Edge:
    """A connection from an output port to an input port."""

    src: str
    src_port: str
    dst: str
    dst_port: str
    kind: str = "fifo"
    capacity: int | None = 2
    feedback: bool = False
    limiter: RateLimiter | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``"src.port->dst.port"``."""
        return f"{self.src}.{self.src_port}->{self.dst}.{self.dst_port}"

    def make_channel(self, reader: Waker | None = None) -> FifoChannel | LatestChannel:
        """A fresh channel for one run; ``reader`` is the consumer task's waker."""
        if self.kind == "latest":
            return LatestChannel(self.name, reader=reader, feedback=self.feedback)
        if self.capacity is None:
            raise GraphValidationError(f"FIFO edge {self.name} has no capacity")
        if self.limiter is not None:
            return RateLimitedChannel(self.limiter, self.capacity, self.name, reader=reader,
                                      feedback=self.feedback)
        return FifoChannel(self.capacity, self.name, reader=reader, feedback=self.feedback)


def _default_name(op: Operator, taken: dict[str, Node]) -> str:
    base = type(op).__name__.lower()
    if base not in taken:
        return base
    i = 2
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


class Graph:
    """A dataflow graph of operators connected by bounded edges.

    Build it with :meth:`add` and :meth:`connect`; run it with ``await graph.run()`` from async
    code, :meth:`run_sync` from synchronous code, or iterate an output port with
    :meth:`iterate`. :meth:`run_deterministic` and :meth:`stepper` execute it in one thread, in
    a fixed order, for debugging. ``str(graph)`` and :meth:`to_mermaid` draw it;
    :meth:`stats` and :meth:`report` measure the last run.

    Examples:
        >>> from streamrl.graph import Graph, Source, Map, Collect
        >>> g = Graph()
        >>> src = g.add(Source(range(5)), name="src")
        >>> dbl = g.add(Map(lambda x: 2 * x), name="double")
        >>> out = g.add(Collect(), name="out")
        >>> g.connect(src, dbl).connect(dbl, out)
        Graph(3 operators, 2 edges)
        >>> g.run_sync()
        >>> out.op.items
        [0, 2, 4, 6, 8]

        A feedback cycle (an env and a policy) is declared with ``feedback=True``; the operator
        that starts the cycle emits its first item in ``open()`` and declares ``primes = 1``:

        >>> from streamrl.graph import Operator
        >>> class Env(Operator):
        ...     inputs, outputs, primes = ("action",), ("obs",), 1
        ...     def __init__(self): self.t = 0
        ...     def open(self): return {"obs": 0}
        ...     def step(self, inputs):
        ...         self.t += 1
        ...         if self.t > 3: raise StopIteration
        ...         return {"obs": self.t + inputs["action"]}
        >>> g = Graph()
        >>> env, policy = g.add(Env()), g.add(Map(lambda obs: 10 * obs), name="policy")
        >>> g.connect(env, policy).connect(policy, env, feedback=True)
        Graph(2 operators, 2 edges)
        >>> [x for x in g.iterate(policy)]
        [0, 10, 120, 1230]
    """

    def __init__(self, name: str = "graph"):
        self.name = name
        self.nodes: dict[str, Node] = {}
        self.edges: list[Edge] = []
        self._last_run: Any = None

    # ------------------------------------------------------------------ building
    def add(self, op: Operator, name: str | None = None,
            placement: str | Placement = "inline") -> Node:
        """Add an operator; returns its :class:`Node` handle (used in :meth:`connect`)."""
        check_operator(op)
        if name is None:
            name = _default_name(op, self.nodes)
        elif not isinstance(name, str) or not name or any(c in name for c in ".[]\"'>-"):
            raise ValueError(
                f"operator names must be non-empty strings without . [ ] quotes - or >, "
                f"found {name!r}"
            )
        if name in self.nodes:
            raise GraphValidationError(f"duplicate operator name {name!r}")
        if any(n.op is op for n in self.nodes.values()):
            raise GraphValidationError(
                f"{op!r} is already in this graph; add a separate instance for {name!r}"
            )
        node = Node(name, op, resolve_placement(placement))
        self.nodes[name] = node
        return node

    def _port(self, ref: Node | Port | str, side: str) -> tuple[Node, str]:
        if isinstance(ref, str):
            if ref not in self.nodes:
                raise GraphValidationError(f"unknown operator {ref!r}; known: {sorted(self.nodes)}")
            ref = self.nodes[ref]
        if isinstance(ref, Port):
            node, port = ref.node, ref.name
        elif isinstance(ref, Node):
            node, port = ref, None
        else:
            raise TypeError(f"expected a Node or node['port'], found {type(ref).__name__}")
        if self.nodes.get(node.name) is not node:
            raise GraphValidationError(f"operator {node.name!r} belongs to another graph")
        ports = node.op.outputs if side == "output" else node.op.inputs
        if port is None:
            if len(ports) != 1:
                raise GraphValidationError(
                    f"operator {node.name!r} has {len(ports)} {side} ports {ports}; select one "
                    f"with {node.name}['<port>']"
                )
            port = ports[0]
        elif port not in ports:
            raise GraphValidationError(
                f"operator {node.name!r} has no {side} port {port!r}; its {side}s are {ports}"
            )
        return node, port

    def connect(
        self,
        src: Node | Port | str,
        dst: Node | Port | str,
        *,
        capacity: int = 2,
        kind: str = "fifo",
        feedback: bool = False,
        limiter: RateLimiter | None = None,
    ) -> Graph:
        """Connect an output port to an input port; returns the graph (calls chain).

        Args:
            src: a node (with a single output port) or ``node["port"]``.
            dst: a node (with a single input port) or ``node["port"]``.
            capacity: items a FIFO edge holds before the producer waits (the backpressure).
            kind: ``"fifo"`` or ``"latest"`` (the writer never waits and the reader sees only the
                newest value, e.g. for weights; a latest input does not trigger a step unless the
                operator has no other kind of input).
            feedback: declares the edge that closes a cycle.
            limiter: a :class:`RateLimiter` gating puts and gets of a FIFO edge.

        Several connections from one output port fan out (each consumer gets every item: the
        same object, so consumers must not modify it in place); several into one input port fan
        in (items are merged, round robin among the producers that have items).
        """
        s, sp = self._port(src, "output")
        d, dp = self._port(dst, "input")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, found {kind!r}")
        if kind == "fifo" and (not isinstance(capacity, int) or capacity < 1):
            raise ValueError(f"capacity must be an int >= 1, found {capacity!r}")
        if limiter is not None:
            if kind != "fifo":
                raise ValueError("a limiter can only gate a 'fifo' edge")
            if not isinstance(limiter, RateLimiter):
                raise TypeError(
                    "limiter must have async acquire_insert(n) and acquire_sample(n), found "
                    f"{type(limiter).__name__}"
                )
        for e in self.edges:
            if (e.src, e.src_port, e.dst, e.dst_port) == (s.name, sp, d.name, dp):
                raise GraphValidationError(f"edge {e.name} is already connected")
        self.edges.append(
            Edge(s.name, sp, d.name, dp, kind, capacity if kind == "fifo" else None,
                 bool(feedback), limiter)
        )
        return self

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __contains__(self, name: object) -> bool:
        return name in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __repr__(self) -> str:
        return f"Graph({len(self.nodes)} operators, {len(self.edges)} edges)"

    # ------------------------------------------------------------------ validation
    def validate(self, taps: tuple[tuple[str, str], ...] = (), fuse: bool = True) -> None:
        """Check the graph; raise :class:`GraphValidationError` naming the problem.

        ``taps`` are ``(operator, port)`` outputs consumed from outside (see :meth:`iterate`);
        ``fuse`` says whether the run fuses inline chains (a fused edge holds no items, which
        matters for the capacity of a cycle).
        """
        _validate(self, taps, fuse)

    def edges_into(self) -> dict[tuple[str, str], list[Edge]]:
        """Edges by ``(dst, dst_port)``."""
        out: dict[tuple[str, str], list[Edge]] = defaultdict(list)
        for e in self.edges:
            out[e.dst, e.dst_port].append(e)
        return out

    def edges_from(self) -> dict[tuple[str, str], list[Edge]]:
        """Edges by ``(src, src_port)``."""
        out: dict[tuple[str, str], list[Edge]] = defaultdict(list)
        for e in self.edges:
            out[e.src, e.src_port].append(e)
        return out

    # ------------------------------------------------------------------ execution
    async def run(self, *, deterministic: bool = False, fuse: bool = True,
                  watchdog_timeout: float | None = 30.0, max_steps: int | None = None,
                  monitor: Callable[[GraphStats], Any] | None = None,
                  monitor_interval: float = 1.0) -> None:
        """Run until every operator has finished (end of stream), in the current task group.

        Any operator's exception cancels the graph and is raised as an
        :class:`~streamrl.graph.OperatorError` naming the operator (the original exception is
        its ``__cause__``). ``watchdog_timeout`` raises a :class:`~streamrl.graph.DeadlockError`
        when every operator has been blocked on its edges that long (``None`` disables it).
        ``monitor`` is called with :meth:`stats` every ``monitor_interval`` seconds while the
        graph runs and once at the end (e.g. to drive a progress bar or log throughput).
        ``deterministic=True`` runs :meth:`run_deterministic` instead (in this task).

        Runs on anyio's asyncio backend (``anyio.run(fn)``, the default, or ``asyncio.run``),
        the only one supported: under trio it raises a ``RuntimeError`` before anything starts.
        """
        if deterministic:
            self.run_deterministic(max_steps=max_steps)
            return
        runner = Runner(self, fuse=fuse, watchdog_timeout=watchdog_timeout, monitor=monitor,
                        monitor_interval=monitor_interval)
        self._last_run = runner
        await runner.run()

    def run_sync(self, **kwargs: Any) -> None:
        """Run to completion from synchronous code (the event loop runs in a background thread).

        Ctrl-C (KeyboardInterrupt) cancels the graph and is re-raised once it has shut down.
        Takes the keyword arguments of :meth:`run`.
        """
        _run_sync(self, **kwargs)

    def iterate(self, node: Node | Port | str, **kwargs: Any) -> Iterator[Any]:
        """Run the graph in a background thread and yield the items of one output port.

        The port may also be connected inside the graph (fan-out) or left unconnected. Leaving
        the loop early (``break``) cancels the graph. Takes the keyword arguments of :meth:`run`.
        """
        n, port = self._port(node, "output")
        return _iterate(self, n.name, port, **kwargs)

    def stream(self, node: Node | Port | str, *, capacity: int = 2, **kwargs: Any) -> Any:
        """From async code: run the graph in the current event loop and read one output port.

        An async context manager yielding an async iterator; leaving the block cancels the graph,
        and an operator's error is raised from the iterator. Takes the keyword arguments of
        :meth:`run`.

        Examples:
            >>> import anyio
            >>> from streamrl.graph import Graph, Source, Map
            >>> g = Graph()
            >>> src, neg = g.add(Source(range(3))), g.add(Map(lambda x: -x))
            >>> _ = g.connect(src, neg)
            >>> async def main():
            ...     async with g.stream(neg) as items:
            ...         return [x async for x in items]
            >>> anyio.run(main)
            [0, -1, -2]
        """
        n, port = self._port(node, "output")
        return _stream(self, n.name, port, capacity=capacity, **kwargs)

    def as_node(self, node: Node | Port | str, **kwargs: Any) -> Any:
        """One output port as a ``torchdata.nodes.BaseNode`` (see :class:`GraphNode`)."""
        n, port = self._port(node, "output")
        return GraphNode(self, f"{n.name}.{port}", **kwargs)

    def run_deterministic(self, *, max_steps: int | None = None) -> None:
        """Run to completion in the calling thread, one hook at a time, in a fixed order.

        Every operator runs inline (thread and process placements are ignored), so two runs of
        the same graph give the same result; for debugging. See :meth:`stepper`.
        """
        stepper = Stepper(self)
        self._last_run = stepper
        stepper.run(max_steps=max_steps)

    def stepper(self) -> Any:
        """A :class:`~streamrl.graph.Stepper` that executes the graph one hook call at a time."""
        stepper = Stepper(self)
        self._last_run = stepper
        return stepper

    # ------------------------------------------------------------------ observability
    def stats(self) -> GraphStats:
        """Metrics of the current or last run (per operator and per edge)."""
        if self._last_run is None:
            raise RuntimeError("the graph has not run yet: no stats")
        return GraphStats.collect(self._last_run)

    def report(self) -> str:
        """A text table of :meth:`stats`, naming the bottleneck operator."""
        return self.stats().report()

    def __str__(self) -> str:
        return _to_text(self)

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (fused groups as subgraphs, feedback edges dashed)."""
        return _to_mermaid(self)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{operator name: operator.state_dict()}``."""
        return {name: n.op.state_dict() for name, n in self.nodes.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore every operator from :meth:`state_dict`'s output."""
        if not isinstance(state, dict) or set(state) != set(self.nodes):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"expected states for operators {sorted(self.nodes)}, found {found}")
        for name, s in state.items():
            self.nodes[name].op.load_state_dict(s)
