"""Structural checks of a graph before it runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from .errors import GraphValidationError

if TYPE_CHECKING:
    from .graph import Edge, Graph

_MAX_CYCLES = 10_000


def simple_cycles(names: list[str], edges: list[Edge]) -> list[list[Edge]]:
    """Every simple cycle as a list of edges (graphs are small; capped at 10k cycles)."""
    index = {n: i for i, n in enumerate(names)}
    out: dict[str, list[Edge]] = defaultdict(list)
    for e in edges:
        out[e.src].append(e)
    cycles: list[list[Edge]] = []

    def dfs(start: str, v: str, path: list[Edge], seen: set[str]) -> None:
        for e in out[v]:
            if len(cycles) >= _MAX_CYCLES:
                return
            if e.dst == start:
                cycles.append([*path, e])
            elif index[e.dst] > index[start] and e.dst not in seen:
                seen.add(e.dst)
                dfs(start, e.dst, [*path, e], seen)
                seen.discard(e.dst)

    for s in names:
        dfs(s, s, [], {s})
    return cycles


def _cycle_text(cycle: list[Edge]) -> str:
    return " -> ".join([cycle[0].src, *(e.dst for e in cycle)])


def topological_order(graph: Graph) -> list[str]:
    """Operators in dependency order, ignoring feedback edges (ties keep insertion order)."""
    names = list(graph.nodes)
    indeg = dict.fromkeys(names, 0)
    succ: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        if not e.feedback:
            indeg[e.dst] += 1
            succ[e.src].append(e.dst)
    ready = [n for n in names if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
    return order


def check_cycle_capacity(cycle: list[Edge], primed: dict[str, int], what: str,
                         fused: AbstractSet[str] = frozenset()) -> None:
    """Raise if the items primed on a FIFO cycle exceed the sum of its capacities (a fused edge
    holds nothing: its items pass by a direct call)."""
    if any(e.kind != "fifo" for e in cycle):
        return  # a latest-value edge never blocks its writer
    total = sum(primed.get(e.name, 0) for e in cycle)
    caps = [0 if e.name in fused or e.capacity is None else e.capacity for e in cycle]
    room = sum(caps)
    if total > room:
        edges = ", ".join(
            f"{e.name} (capacity {c}{', fused' if e.name in fused else ''})"
            for e, c in zip(cycle, caps)
        )
        raise GraphValidationError(
            f"cycle {_cycle_text(cycle)} cannot make progress: {total} items {what} on it but "
            f"its edges hold only {room} ({edges}); raise a capacity on the cycle"
        )


def validate(graph: Graph, taps: tuple[tuple[str, str], ...] = (), fuse: bool = True) -> None:
    """Raise :class:`GraphValidationError` for an unconnected port, mixed edge kinds on one
    input port, a cycle without a feedback edge, a feedback edge closing no cycle, or a feedback
    cycle whose capacities cannot hold the items its operators prime."""
    if not graph.nodes:
        raise GraphValidationError("the graph has no operators")
    into, out_of = graph.edges_into(), graph.edges_from()
    tapped = set(taps)
    for name, node in graph.nodes.items():
        for p in node.op.inputs:
            if not into.get((name, p)):
                raise GraphValidationError(
                    f"input port {name}.{p} is not connected; every input needs a producer"
                )
            kinds = {e.kind for e in into[name, p]}
            if len(kinds) > 1:
                raise GraphValidationError(
                    f"input port {name}.{p} mixes edge kinds {sorted(kinds)}; use one kind per port"
                )
        for p in node.op.outputs:
            if not out_of.get((name, p)) and (name, p) not in tapped:
                raise GraphValidationError(
                    f"output port {name}.{p} is not connected; connect it (e.g. to a Sink) "
                    "or iterate it with graph.iterate()"
                )
    order = topological_order(graph)
    if len(order) < len(graph.nodes):
        rest = [n for n in graph.nodes if n not in set(order)]
        plain = [e for e in graph.edges if not e.feedback and e.src in rest and e.dst in rest]
        cyc = simple_cycles(rest, plain)
        text = _cycle_text(cyc[0]) if cyc else " / ".join(rest)
        last = cyc[0][-1] if cyc else None
        hint = (f"; declare the edge that closes it with "
                f"graph.connect({last.src}, {last.dst}, feedback=True)") if last else ""
        raise GraphValidationError(f"cycle {text} has no feedback edge{hint}")
    cycles = simple_cycles(list(graph.nodes), graph.edges)
    on_cycle = {id(e) for c in cycles for e in c}
    for e in graph.edges:
        if e.feedback and id(e) not in on_cycle:
            raise GraphValidationError(
                f"edge {e.name} is declared feedback=True but closes no cycle"
            )
    primes = {e.name: graph.nodes[e.src].op.primes for e in graph.edges}
    from .fusion import fused_chains, fused_edge_names

    fused = fused_edge_names(graph, fused_chains(graph, taps, fuse))
    for c in cycles:
        check_cycle_capacity(c, primes, "primed (operators' `primes`)", fused)
