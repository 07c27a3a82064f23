"""Fusion: chains of inline operators joined by plain FIFO edges run as one task."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from .validation import topological_order

if TYPE_CHECKING:
    from .graph import Graph


def fused_chains(graph: Graph, taps: tuple[tuple[str, str], ...] = (), enabled: bool = True
                 ) -> list[list[str]]:
    """Operator names grouped into chains run by one task each, in topological order.

    An edge is fused when both ends are placed on a fusable placement (inline), it is a plain
    FIFO edge (no feedback, no limiter), the producer has one output port with only this
    consumer (and no tap), and the consumer has one input port fed only by this edge.
    """
    nxt: dict[str, str] = {}
    prev: dict[str, str] = {}
    if enabled:
        out_of, into = graph.edges_from(), graph.edges_into()
        tapped = set(taps)
        for e in graph.edges:
            s, d = graph.nodes[e.src], graph.nodes[e.dst]
            if (
                e.kind == "fifo" and e.limiter is None and not e.feedback
                and s.placement.fusable and d.placement.fusable
                and len(s.op.outputs) == 1 and len(out_of[e.src, e.src_port]) == 1
                and (e.src, e.src_port) not in tapped
                and len(d.op.inputs) == 1 and len(into[e.dst, e.dst_port]) == 1
            ):
                nxt[e.src], prev[e.dst] = e.dst, e.src
    order = topological_order(graph)
    order += [n for n in graph.nodes if n not in set(order)]
    chains = []
    for name in order:
        if name in prev:
            continue
        chain = [name]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        chains.append(chain)
    return chains


def fused_edge_names(graph: Graph, chains: list[list[str]]) -> set[str]:
    """Names of the edges inside the chains."""
    pairs = {(a, b) for c in chains for a, b in itertools.pairwise(c)}
    return {e.name for e in graph.edges if (e.src, e.dst) in pairs}
