"""The scheduling core both engines share: each operator's record during a run, and the phases
of its life, written once.

An operator's life in a run is: open (its ``open()`` may emit items that prime a feedback cycle),
prime (once every operator is open, check that each cycle can hold what ``open()`` emitted),
then repeatedly gather inputs, step, emit, and at end of input finish, and finally end (close its
channels). The concurrent :class:`~streamrl.graph.runner.Runner` awaits between these phases
(hooks on hosts, full edges, empty edges); the deterministic
:class:`~streamrl.graph.Stepper` never waits and picks the next operator that can act. Both
call the phases below; only how they wait differs.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from .channels import FifoChannel, _Channel, rows_of
from .errors import GraphValidationError
from .eventloop import Waker
from .operator import Many
from .validation import check_cycle_capacity, simple_cycles

if TYPE_CHECKING:
    from .graph import Graph, Node
    from .placement import Host

#: ``{port: [channels]}``: the channels feeding one input port, or fed by one output port
Ports = dict[str, list[_Channel]]


class OpState(enum.Enum):
    """Where an operator is in its life; the watchdog and the stats read it."""

    NEW = "new"  # not started
    BUSY = "busy"  # in a hook, or between hooks
    WAIT_IN = "wait_in"  # waiting for an input item
    WAIT_OUT = "wait_out"  # waiting for room on an output edge
    DONE = "done"  # ended: channels closed


class _EndOfInput:
    def __repr__(self) -> str:
        return "END_OF_INPUT"


#: what :meth:`OpRun.poll_inputs` returns once no further step can get a full set of inputs
END_OF_INPUT: Any = _EndOfInput()


class OpRun:
    """One operator during one run: its host, its channels by port, its state and counters.

    Built whole by :func:`build_run`; the wiring (``inputs``, ``latest``, ``outputs``, ``waker``,
    ``single``) never changes afterwards, only the state and the counters do.
    """

    __slots__ = (
        "batches_in", "batches_out", "blocked_in_s", "blocked_out_s", "busy_s", "calls",
        "direct", "finished", "host", "inputs", "items_in", "items_out", "latest", "mode",
        "name", "node", "op", "outputs", "placement", "primed", "rate_limited", "rr", "since",
        "single", "single_port", "state", "t_end", "t_start", "waited", "waiting_on", "waker",
    )

    def __init__(self, node: Node, host: Host, waker: Waker, inputs: Ports, latest: Ports,
                 outputs: Ports):
        self.node = node
        self.name = node.name
        self.op = node.op
        self.host = host
        self.placement = host.placement
        #: sync hooks callable on the event loop without a coroutine (an inline host)
        self.direct = host.direct
        self.mode = node.op.input_mode
        #: set by a put on any channel of ``inputs``/``latest``: the task waiting for inputs
        self.waker = waker
        self.inputs = inputs  # triggering ports (fifo / rate-limited; latest if nothing else)
        self.latest = latest  # non-triggering latest-value ports
        self.outputs = outputs
        # one plain FIFO input (the common case) is read without the general selection
        self.single: FifoChannel | None = None
        self.single_port = ""
        if len(inputs) == 1 and not latest:
            ((port, chans),) = inputs.items()
            if len(chans) == 1 and isinstance(chans[0], FifoChannel) and chans[0].kind == "fifo":
                self.single, self.single_port = chans[0], port
        #: a triggering input is rate-limited: taking from it waits for the limiter
        self.rate_limited = any(c.kind == "limited" for chans in inputs.values() for c in chans)
        self.rr = 0  # round robin over fan-in channels
        self.primed: dict[str, int] = {}  # items open() emitted, by output port
        self.finished = False  # finish() ran
        # what the watchdog reads: the state, since when, on which channels
        self.state = OpState.NEW
        self.since = 0.0
        self.waiting_on: list[_Channel] = []
        self.waited = False  # waited on an edge during this step (the runner's fairness)
        # counters (OperatorStats)
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

    @property
    def wall_s(self) -> float:
        end = self.t_end or time.perf_counter()
        return max(end - self.t_start, 0.0) if self.t_start else 0.0

    @property
    def is_source(self) -> bool:
        """No triggering input: stepped until it ends the stream, with ``{}`` or with the new
        values of its latest-value ports (:meth:`source_inputs`)."""
        return not self.inputs

    def source_inputs(self) -> dict[str, Any]:
        """A source's inputs for one step: the latest-value ports with a new value."""
        return self.with_latest({}) if self.latest else {}

    # ------------------------------------------------------------------ phase: open
    def begin(self, now: float) -> None:
        """The run has started this operator."""
        self.t_start, self.state = now, OpState.BUSY

    def opened(self, out: Any) -> None:
        """Record what ``open()`` returned: items on a port prime the cycles through it."""
        if isinstance(out, dict):
            self.primed = {p: len(v.items) if isinstance(v, Many) else 1 for p, v in out.items()}

    # ------------------------------------------------------------------ phase: gather inputs
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

    def poll_inputs(self) -> list[tuple[str, _Channel]] | Any | None:
        """The channels to take one step's inputs from (one per port: every port in 'all'
        mode, the ready ones in 'any' mode), ``END_OF_INPUT`` once the inputs have ended, or
        ``None`` when a step must wait for an item."""
        if self.mode == "all":  # one pass: any ended port ends it, else any empty one waits
            wait = False
            for chans in self.inputs.values():
                for c in chans:
                    if c.ready():
                        break
                else:  # none ready: ended once every producer closed
                    if all(c.send_closed for c in chans):
                        return END_OF_INPUT
                    wait = True
            if wait:
                return None
            return [(port, self.ready_channel(chans)) for port, chans in self.inputs.items()]
        chosen = []
        for port, chans in self.inputs.items():
            ch = self.ready_channel(chans)
            if ch is not None:
                chosen.append((port, ch))
        if chosen:
            return chosen
        return END_OF_INPUT if self.inputs_ended() else None

    def ready_channel(self, chans: list[_Channel]) -> Any:
        """A channel of ``chans`` with an item waiting (round robin over a fan-in), else None."""
        n = len(chans)
        if n == 1:
            return chans[0] if chans[0].ready() else None
        for i in range(n):
            ch = chans[(self.rr + i) % n]
            if ch.ready():
                self.rr = (self.rr + i + 1) % n
                return ch
        return None

    def take(self, chosen: list[tuple[str, _Channel]]) -> dict[str, Any]:
        """Take the items of a :meth:`poll_inputs` selection: one step's inputs."""
        return self.with_latest({port: ch.take() for port, ch in chosen})

    def with_latest(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Add the new values of the latest-value ports to ``inputs`` and count them all."""
        for port, chans in self.latest.items():
            ch = self.ready_channel(chans)
            if ch is not None:
                inputs[port] = ch.take()
        self.batches_in += 1
        for v in inputs.values():
            self.items_in += rows_of(v)
        return inputs

    # ------------------------------------------------------------------ phase: emit
    def split_outputs(self, out: Any) -> list[tuple[str, Any]]:
        """``[(port, item), ...]`` of a hook result, checking the ports and counting items."""
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

    def outputs_gone(self) -> bool:
        """Every consumer of every output port stopped reading (nobody needs our items)."""
        gone = False
        for chans in self.outputs.values():
            for ch in chans:
                if not ch.recv_closed:
                    return False
                gone = True
        return gone

    def outputs_full(self) -> bool:
        """Some output edge has no room (a put would wait)."""
        return any(ch.full() for chans in self.outputs.values() for ch in chans)

    # ------------------------------------------------------------------ phase: end
    def end(self, now: float) -> None:
        """The operator is done: its consumers see end of stream, its producers that it left.
        A tap stays open: the runner closes it when the whole run is over, errors included."""
        self.t_end, self.state = now, OpState.DONE
        for chans in self.outputs.values():
            for ch in chans:
                if not ch.tap:
                    ch.close_send()
        for chans in (*self.inputs.values(), *self.latest.values()):
            for ch in chans:
                ch.close_receive()


def check_primes(graph: Graph, ops: dict[str, OpRun], fused_edges: AbstractSet[str]) -> None:
    """Once every operator is open: each feedback cycle must hold the items ``open()`` emitted
    into it (a :class:`GraphValidationError` naming the cycle, else a certain deadlock)."""
    primed = {e.name: ops[e.src].primed.get(e.src_port, 0) for e in graph.edges}
    for c in simple_cycles(list(graph.nodes), graph.edges):
        check_cycle_capacity(c, primed, "emitted by open()", fused_edges)


def build_run(graph: Graph, hosts: dict[str, Host], fused_edges: AbstractSet[str] = frozenset(),
              taps: dict[tuple[str, str], FifoChannel] | None = None
              ) -> tuple[dict[str, OpRun], dict[str, _Channel]]:
    """Operator records and one fresh channel per edge (none for a fused edge: its items pass
    by a direct call), wired up; ``taps`` are extra output channels read from outside."""
    wakers = {name: Waker() for name in graph.nodes}
    inputs: dict[str, Ports] = {name: {} for name in graph.nodes}
    latest: dict[str, Ports] = {name: {} for name in graph.nodes}
    outputs: dict[str, Ports] = {name: {p: [] for p in n.op.outputs}
                                 for name, n in graph.nodes.items()}
    channels: dict[str, _Channel] = {}
    for e in graph.edges:
        if e.name in fused_edges:
            continue
        ch = e.make_channel(reader=wakers[e.dst])
        channels[e.name] = ch
        outputs[e.src][e.src_port].append(ch)
        table = latest[e.dst] if e.kind == "latest" else inputs[e.dst]
        table.setdefault(e.dst_port, []).append(ch)
    for (name, port), tap in (taps or {}).items():
        outputs[name][port].append(tap)
        channels[tap.name] = tap
    ops = {}
    for name, node in graph.nodes.items():
        ins, lat = inputs[name], latest[name]
        if not ins and lat and node.op.latest_triggers:  # only latest inputs: they trigger
            ins, lat = lat, {}
        ops[name] = OpRun(node, hosts[name], wakers[name], ins, lat, outputs[name])
    return ops, channels
