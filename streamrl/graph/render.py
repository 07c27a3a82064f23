"""Drawing a graph: text for ``str(graph)`` and a Mermaid flowchart."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fusion import fused_chains

if TYPE_CHECKING:
    from .graph import Edge, Graph


def _edge_label(e: Edge) -> str:
    if e.kind == "latest":
        kind = "latest"
    elif e.limiter is not None:
        kind = f"limited {e.capacity}"
    else:
        kind = f"fifo {e.capacity}"
    return kind + (", feedback" if e.feedback else "")


def to_text(graph: Graph) -> str:
    """One line per operator with its placement and outgoing edges; fused chains listed."""
    try:
        chains = fused_chains(graph)
    except Exception:  # a graph under construction may not be valid yet
        chains = [[n] for n in graph.nodes]
    lines = [f"Graph {graph.name!r}: {len(graph.nodes)} operators, {len(graph.edges)} edges"]
    out_of = graph.edges_from()
    for name, node in graph.nodes.items():
        ins = ",".join(node.op.inputs) or "-"
        lines.append(f"  {name} [{node.placement.name}] {node.op!r} in({ins})")
        for p in node.op.outputs:
            for e in out_of.get((name, p), []):
                lines.append(f"    {p} -> {e.dst}.{e.dst_port}  ({_edge_label(e)})")
            if not out_of.get((name, p)):
                lines.append(f"    {p} -> (unconnected)")
    fused = [c for c in chains if len(c) > 1]
    if fused:
        lines.append("  fused: " + "; ".join(" -> ".join(c) for c in fused))
    return "\n".join(lines)


def _mid(name: str) -> str:
    return "n_" + "".join(c if c.isalnum() else "_" for c in name)


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart LR``: nodes labelled with their placement, feedback edges dashed, latest
    edges thick, fused chains boxed as subgraphs."""
    try:
        chains = fused_chains(graph)
    except Exception:
        chains = [[n] for n in graph.nodes]
    lines = ["flowchart LR"]
    grouped = set()
    for i, chain in enumerate(c for c in chains if len(c) > 1):
        lines.append(f"  subgraph fused_{i} [fused]")
        for n in chain:
            grouped.add(n)
            lines.append(f'    {_mid(n)}["{n}<br/>{graph.nodes[n].placement.name}"]')
        lines.append("  end")
    for name, node in graph.nodes.items():
        if name not in grouped:
            lines.append(f'  {_mid(name)}["{name}<br/>{node.placement.name}"]')
    for e in graph.edges:
        label = f"{e.src_port}→{e.dst_port} ({_edge_label(e)})"
        arrow = "-.->" if e.feedback else ("==>" if e.kind == "latest" else "-->")
        lines.append(f'  {_mid(e.src)} {arrow}|"{label}"| {_mid(e.dst)}')
    return "\n".join(lines)
