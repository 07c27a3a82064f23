"""torchdata interop: a graph output as a ``torchdata.nodes.BaseNode``, and a ``BaseNode`` as a
graph source."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torchdata.nodes import BaseNode

from .operator import Operator

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["GraphNode", "NodeSource"]


class GraphNode(BaseNode):
    """The items of one graph output port as a ``torchdata.nodes.BaseNode``.

    ``reset()`` (re)starts the graph in a background event loop; the state is the number of
    items yielded, and resetting to a state restarts the graph and skips that many items. Close
    it (or exhaust it) to stop the graph early. Usually built with :meth:`Graph.as_node`.

    Examples:
        >>> from torchdata.nodes import Loader
        >>> from streamrl.graph import Graph, Source, Map
        >>> g = Graph()
        >>> src, sq = g.add(Source(range(4))), g.add(Map(lambda x: x * x))
        >>> _ = g.connect(src, sq)
        >>> list(Loader(g.as_node(sq)))
        [0, 1, 4, 9]
    """

    def __init__(self, graph: Graph, port: str, **run_kwargs: Any):
        super().__init__()
        name, _, p = port.partition(".")
        if name not in graph.nodes or p not in graph.nodes[name].op.outputs:
            raise ValueError(f"expected 'operator.output_port' of this graph, found {port!r}")
        self.graph = graph
        self.port = (name, p)
        self.run_kwargs = run_kwargs
        self._it: Iterator[Any] | None = None
        self._yielded = 0

    def reset(self, initial_state: dict[str, Any] | None = None) -> None:
        super().reset(initial_state)
        self.close()
        self._it = self.graph.iterate(self.graph[self.port[0]][self.port[1]], **self.run_kwargs)
        self._yielded = 0
        if initial_state is not None:
            for _ in range(int(initial_state["num_yielded"])):
                self.next()

    def next(self) -> Any:
        if self._it is None:
            raise StopIteration
        item = next(self._it)
        self._yielded += 1
        return item

    def get_state(self) -> dict[str, Any]:
        return {"num_yielded": self._yielded}

    def close(self) -> None:
        """Stop the running graph, if any. Idempotent."""
        it, self._it = getattr(self, "_it", None), None
        if it is not None:
            it.close()

    def __del__(self) -> None:
        self.close()


class NodeSource(Operator):
    """A graph source that pulls items from a ``torchdata.nodes.BaseNode``.

    Its state is the node's ``state_dict()``; a loaded state is applied at the next ``open``.

    Examples:
        >>> from torchdata.nodes import IterableWrapper
        >>> from streamrl.graph import NodeSource
        >>> src = NodeSource(IterableWrapper(range(3)))
        >>> src.open(); [src.step({})["out"] for _ in range(3)]
        [0, 1, 2]
    """

    inputs = ()

    def __init__(self, node: BaseNode):
        if not isinstance(node, BaseNode):
            raise TypeError(f"expected a torchdata.nodes.BaseNode, found {type(node).__name__}")
        self.node = node
        self._initial: dict[str, Any] | None = None

    def open(self) -> None:
        self.node.reset(self._initial)

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"out": next(self.node)}

    def state_dict(self) -> dict[str, Any]:
        return {"node": self.node.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"node"}:
            raise ValueError(f"NodeSource.load_state_dict expected keys ['node'], found {state!r}")
        self._initial = state["node"]

    def __repr__(self) -> str:
        return f"NodeSource({type(self.node).__name__})"
