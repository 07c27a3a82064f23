"""Per-run state shared by the concurrent runner and the deterministic stepper: operator
records with their channels and counters."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .channels import FifoChannel, LatestChannel, Waker, rows_of
from .errors import GraphValidationError
from .operator import Many
from .placement import Host

if TYPE_CHECKING:
    from .graph import Graph, Node


class OpRun:
    """One operator during a run: its host, its channels by port, its counters."""

    def __init__(self, node: Node, host: Host):
        self.node = node
        self.name = node.name
        self.op = node.op
        self.host = host
        self.placement = host.placement
        self.mode = node.op.input_mode
        self.waker = Waker()
        self.inputs: dict[str, list[Any]] = {}  # triggering ports (fifo / rate-limited)
        self.latest: dict[str, list[LatestChannel]] = {}  # non-triggering latest-value ports
        self.outputs: dict[str, list[Any]] = {p: [] for p in node.op.outputs}
        self.rr = 0
        # counters
        self.calls = 0
        self.batches_in = 0
        self.items_in = 0
        self.batches_out = 0
        self.items_out = 0
        self.busy_s = 0.0
        self.blocked_in_s = 0.0
        self.blocked_out_s = 0.0
        self.t_start = 0.0
        self.t_end = 0.0
        self.finished = False
        self.primed: dict[str, int] = {}
        self.waited = False
        self.direct = False  # set by the runner: call hooks without a coroutine
        self.single: Any = None  # set by the runner: the one plain FIFO input channel
        self.single_port = ""
        # watchdog
        self.state = "new"
        self.since = 0.0
        self.waiting_on: list[Any] = []

    @property
    def wall_s(self) -> float:
        end = self.t_end or time.perf_counter()
        return max(end - self.t_start, 0.0) if self.t_start else 0.0

    def has_inputs(self) -> bool:
        return bool(self.inputs or self.latest)

    def inputs_ended(self) -> bool:
        """End of stream: in 'all' mode any triggering port ended; in 'any' mode all did."""
        ports = list(self.inputs.values())
        if not ports:
            return False
        ended = [all(ch.ended() for ch in chans) for chans in ports]
        return any(ended) if self.mode == "all" else all(ended)

    def inputs_ready(self) -> bool:
        """A step could start now without waiting for an item."""
        if self.mode == "all":
            return all(any(c.ready() for c in chans) for chans in self.inputs.values())
        return any(c.ready() for chans in self.inputs.values() for c in chans)

    def outputs_gone(self) -> bool:
        """Every consumer of every output port stopped reading (nobody needs our items)."""
        gone = False
        for chans in self.outputs.values():
            for ch in chans:
                if not ch.recv_closed:
                    return False
                gone = True
        return gone

    def ready_channel(self, chans: list[Any]) -> Any:
        n = len(chans)
        if n == 1:
            return chans[0] if chans[0].ready() else None
        for i in range(n):  # round robin over a fan-in
            ch = chans[(self.rr + i) % n]
            if ch.ready():
                self.rr = (self.rr + i + 1) % n
                return ch
        return None

    def count_in(self, inputs: dict[str, Any]) -> None:
        self.batches_in += 1
        for v in inputs.values():
            self.items_in += rows_of(v)

    def split_outputs(self, out: Any) -> list[tuple[str, Any]]:
        """``[(port, item), ...]`` of a hook result, checking the ports."""
        if out is None:
            return []
        if not isinstance(out, dict):
            raise TypeError(
                f"operator {self.name!r} must return None or a dict {{port: item}}, "
                f"found {type(out).__name__}"
            )
        pairs = []
        for port, v in out.items():
            if port not in self.outputs:
                raise GraphValidationError(
                    f"operator {self.name!r} emitted on unknown output port {port!r}; "
                    f"its outputs are {tuple(self.outputs)}"
                )
            for item in (v.items if isinstance(v, Many) else (v,)):
                self.batches_out += 1
                self.items_out += rows_of(item)
                pairs.append((port, item))
        return pairs

    def close_channels(self) -> None:
        for chans in self.outputs.values():
            for ch in chans:
                if not ch.tap:  # a tap closes when the whole run is over, errors included
                    ch.close_send()
        for chans in (*self.inputs.values(), *self.latest.values()):
            for ch in chans:
                ch.close_receive()


def build_run(graph: Graph, hosts: dict[str, Host], taps: dict[tuple[str, str], FifoChannel]
              ) -> tuple[dict[str, OpRun], dict[str, Any]]:
    """Operator records and one fresh channel per edge, wired up."""
    ops = {name: OpRun(node, hosts[name]) for name, node in graph.nodes.items()}
    channels: dict[str, Any] = {}
    for e in graph.edges:
        ch = e.make_channel()
        ch.feedback = e.feedback
        ch.tap = False
        channels[e.name] = ch
        src, dst = ops[e.src], ops[e.dst]
        ch.writer, ch.reader = src.waker, dst.waker
        src.outputs[e.src_port].append(ch)
        table = dst.latest if e.kind == "latest" else dst.inputs
        table.setdefault(e.dst_port, []).append(ch)
    for (name, port), ch in taps.items():
        ch.feedback = False
        ch.tap = True
        ch.writer = ops[name].waker
        ops[name].outputs[port].append(ch)
        channels[ch.name] = ch
    for o in ops.values():
        if not o.inputs and o.latest:  # only latest-value inputs: they trigger steps
            o.inputs, o.latest = o.latest, {}
    return ops, channels
