"""Run metrics: per operator and per edge, and a text report naming the bottleneck."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["EdgeStats", "GraphStats", "OperatorStats"]


@dataclass
class OperatorStats:
    """Counters of one operator. ``items`` count rows (a TensorDict's batch numel), ``batches``
    count messages; times are seconds; ``state`` is ``"new"``, ``"busy"``, ``"wait_in"``,
    ``"wait_out"`` or ``"done"``."""

    name: str
    placement: str
    calls: int
    batches_in: int
    items_in: int
    batches_out: int
    items_out: int
    busy_s: float
    blocked_in_s: float
    blocked_out_s: float
    wall_s: float
    state: str

    @property
    def items_per_s(self) -> float:
        """Rows consumed (or, for a source, emitted) per second of the operator's wall time."""
        n = self.items_in or self.items_out
        return n / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def busy_fraction(self) -> float:
        """Share of the operator's wall time spent inside its hooks."""
        return self.busy_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class EdgeStats:
    """Counters of one edge: items through, occupancy now and at most, time spent waiting."""

    name: str
    kind: str
    capacity: int | None
    feedback: bool
    puts: int
    gets: int
    occupancy: int
    max_occupancy: int
    put_wait_s: float
    get_wait_s: float


@dataclass
class GraphStats:
    """Everything :meth:`Graph.stats` reports: ``operators`` and ``edges`` by name."""

    operators: dict[str, OperatorStats]
    edges: dict[str, EdgeStats]
    fused_edges: list[str]

    @classmethod
    def collect(cls, run: Any) -> GraphStats:
        """Read the counters of a runner or stepper (also while it runs)."""
        ops = {
            name: OperatorStats(
                name, o.placement, o.calls, o.batches_in, o.items_in, o.batches_out,
                o.items_out, o.busy_s, o.blocked_in_s, o.blocked_out_s, o.wall_s, o.state.value,
            )
            for name, o in run.ops.items()
        }
        edges = {
            name: EdgeStats(
                name, ch.kind, ch.capacity, ch.feedback, ch.puts, ch.gets, ch.occupancy,
                ch.max_occupancy, ch.put_wait_s, ch.get_wait_s,
            )
            for name, ch in run.channels.items()
        }
        deployment = getattr(run, "deployment", None)
        if deployment is not None:  # operators that ran on Ray actors, once they have ended
            for seg, remote in deployment.stats.items():
                for name in deployment.members[seg]:
                    ops[name] = replace(remote.operators[name], placement="ray")
                edges.update((k, v) for k, v in remote.edges.items() if k not in edges)
        return cls(ops, edges, sorted(run.fused_edges))

    @property
    def bottleneck(self) -> str | None:
        """The operator with the highest busy fraction (None before anything ran)."""
        best = max(self.operators.values(), key=lambda s: s.busy_fraction, default=None)
        return None if best is None or best.busy_s == 0 else best.name

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (for logging or JSON)."""
        return {
            "operators": {
                k: {**asdict(v), "items_per_s": v.items_per_s, "busy_fraction": v.busy_fraction}
                for k, v in self.operators.items()
            },
            "edges": {k: asdict(v) for k, v in self.edges.items()},
            "fused_edges": list(self.fused_edges),
            "bottleneck": self.bottleneck,
        }

    def report(self) -> str:
        """A text table of the operators and edges and the bottleneck."""
        lines = [
            f"{'operator':<20} {'placement':<9} {'batches in/out':>15} {'items in/out':>19} "
            f"{'items/s':>10} {'busy s':>8} {'busy %':>6} {'wait in s':>9} {'wait out s':>10}"
        ]
        for s in self.operators.values():
            lines.append(
                f"{s.name:<20} {s.placement:<9} {f'{s.batches_in}/{s.batches_out}':>15} "
                f"{f'{s.items_in}/{s.items_out}':>19} {s.items_per_s:>10.0f} {s.busy_s:>8.3f} "
                f"{100 * s.busy_fraction:>5.1f}% {s.blocked_in_s:>9.3f} {s.blocked_out_s:>10.3f}"
            )
        lines.append("")
        lines.append(
            f"{'edge':<40} {'kind':<8} {'occupancy':>9} {'max':>4} {'items':>8} "
            f"{'put wait s':>10} {'get wait s':>10}"
        )
        for e in self.edges.values():
            cap = "-" if e.capacity is None else e.capacity
            lines.append(
                f"{e.name:<40} {e.kind + ('*' if e.feedback else ''):<8} "
                f"{f'{e.occupancy}/{cap}':>9} {e.max_occupancy:>4} {e.puts:>8} "
                f"{e.put_wait_s:>10.3f} {e.get_wait_s:>10.3f}"
            )
        if self.fused_edges:
            lines.append(f"fused (no queue): {', '.join(self.fused_edges)}")
        b = self.bottleneck
        if b is not None:
            lines.append(
                f"bottleneck: {b} (busy {100 * self.operators[b].busy_fraction:.0f}% of its time)"
            )
        return "\n".join(lines)
