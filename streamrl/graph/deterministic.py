"""Deterministic mode: the whole graph stepped in the calling thread, one hook call at a time."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import DeadlockError, GraphValidationError, OperatorError
from .operator import Many, async_hooks
from .placement import END, NOARG, Inline
from .runtime import OpRun, build_run
from .validation import check_cycle_capacity, simple_cycles, topological_order

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["StepEvent", "Stepper"]


class StepEvent(NamedTuple):
    """One hook call made by a :class:`Stepper`: which operator, which hook, what it got and
    what it returned."""

    operator: str
    hook: str
    inputs: dict[str, Any] | None
    outputs: dict[str, Any] | None


class Stepper:
    """Executes a graph one hook call at a time, in a fixed order, in the calling thread.

    Operators are opened in topological order (feedback edges ignored), then the stepper
    repeatedly picks, round-robin in that order, the next operator that can act: it has a full
    set of inputs (or is a source) and room on its output edges, or its inputs have ended (then
    ``finish`` runs). Thread and process placements are ignored: every operator runs inline, so
    the same graph gives the same sequence of events every time.

    Examples:
        >>> from streamrl.graph import Graph, Source, Map, Collect
        >>> g = Graph()
        >>> s, m, c = g.add(Source([1, 2])), g.add(Map(str)), g.add(Collect())
        >>> _ = g.connect(s, m).connect(m, c)
        >>> with g.stepper() as st:
        ...     for ev in st:
        ...         print(ev.operator, ev.hook, ev.outputs)
        source open None
        map open None
        collect open None
        source step {'out': 1}
        map step {'out': '1'}
        collect step None
        source step {'out': 2}
        map step {'out': '2'}
        collect step None
        source step END
        map finish None
        collect finish None
    """

    def __init__(self, graph: Graph):
        graph.validate()
        for e in graph.edges:
            if e.limiter is not None:
                raise GraphValidationError(
                    f"edge {e.name} is rate-limited; rate limiters need the concurrent runner "
                    "(graph.run()), not deterministic mode"
                )
        hosts = {}
        for name, node in graph.nodes.items():
            if async_hooks(node.op):
                raise TypeError(
                    f"operator {name!r} has async hooks {async_hooks(node.op)}; deterministic "
                    "mode runs synchronous hooks only"
                )
            hosts[name] = Inline().host(node.op, name)
        self.graph = graph
        self.ops, self.channels = build_run(graph, hosts, {})
        self.order: list[OpRun] = [self.ops[n] for n in topological_order(graph)]
        self.fused_edges: set[str] = set()
        self._to_open = list(self.order)
        self._next = 0
        self._closed = False
        self.steps = 0

    # ------------------------------------------------------------------ stepping
    def _call(self, o: OpRun, hook: str, arg: Any = NOARG) -> Any:
        t0 = time.perf_counter()
        try:
            r = o.host.call_sync(hook, arg)
        except Exception as exc:
            self.close()
            raise OperatorError(o.name, hook, exc) from exc
        o.busy_s += time.perf_counter() - t0
        o.calls += 1
        return r

    def _deliver(self, o: OpRun, out: Any) -> None:
        try:
            pairs = o.split_outputs(out)
        except Exception as exc:
            self.close()
            raise OperatorError(o.name, "step", exc) from exc
        for port, item in pairs:
            for ch in o.outputs[port]:
                ch.put_nowait(item)  # may exceed capacity by one hook's worth of items

    def _end(self, o: OpRun) -> None:
        o.state = "done"
        o.t_end = time.perf_counter()
        o.close_channels()
        o.host.op.close()

    def _can_step(self, o: OpRun) -> str | None:
        if o.state == "done":
            return None
        if o.outputs_gone():
            return "gone"
        if any(ch.full() for chans in o.outputs.values() for ch in chans):
            return None
        if not o.inputs and not o.latest:
            return "step"
        if o.inputs_ended():
            return "finish"
        if o.mode == "all":
            ok = all(o.ready_channel(chans) is not None for chans in o.inputs.values())
        else:
            ok = any(ch.ready() for chans in o.inputs.values() for ch in chans)
        return "step" if ok else None

    def step(self) -> StepEvent | None:
        """Make one hook call and return what happened; ``None`` once every operator is done."""
        if self._closed:
            return None
        self.steps += 1
        if self._to_open:
            o = self._to_open.pop(0)
            o.t_start, o.state = time.perf_counter(), "busy"
            out = self._call(o, "open")
            if isinstance(out, dict):
                o.primed = {p: len(v.items) if isinstance(v, Many) else 1 for p, v in out.items()}
            if not self._to_open:
                primed = {e.name: self.ops[e.src].primed.get(e.src_port, 0)
                          for e in self.graph.edges}
                for c in simple_cycles(list(self.graph.nodes), self.graph.edges):
                    check_cycle_capacity(c, primed, "emitted by open()")
            if out is END:
                self._end(o)
                return StepEvent(o.name, "open", None, END)
            self._deliver(o, out)
            return StepEvent(o.name, "open", None, out)
        n = len(self.order)
        for k in range(n):
            o = self.order[(self._next + k) % n]
            action = self._can_step(o)
            if action is None:
                continue
            self._next = (self._next + k + 1) % n
            if action == "gone":
                self._end(o)
                return StepEvent(o.name, "close", None, None)
            if action == "finish":
                out = self._call(o, "finish")
                o.finished = True
                if out is not END:
                    self._deliver(o, out)
                self._end(o)
                return StepEvent(o.name, "finish", None, out)
            inputs = self._take(o)
            out = self._call(o, "step", inputs)
            if out is END:
                out = self._call(o, "finish")  # ended by StopIteration: flush, then close
                o.finished = True
                if out is not END:
                    self._deliver(o, out)
                self._end(o)
                return StepEvent(o.name, "step", inputs, END)
            self._deliver(o, out)
            return StepEvent(o.name, "step", inputs, out)
        if all(o.state == "done" for o in self.order):
            self.close()
            return None
        self._deadlock()
        return None

    def _take(self, o: OpRun) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        for port, chans in o.inputs.items():
            ch = o.ready_channel(chans)
            if ch is not None:
                inputs[port] = ch.take()
        for port, chans in o.latest.items():
            ch = o.ready_channel(chans)
            if ch is not None:
                inputs[port] = ch.take()
        o.count_in(inputs)
        return inputs

    def _deadlock(self) -> None:
        blocked = []
        for o in self.order:
            if o.state == "done":
                continue
            for chans in o.outputs.values():
                for ch in chans:
                    if ch.full():
                        blocked.append((o.name, "put", ch.name, ch.occupancy, ch.capacity))
            for chans in o.inputs.values():
                for ch in chans:
                    if not ch.ready():
                        blocked.append((o.name, "get", ch.name, ch.occupancy, ch.capacity))
        self.close()
        text = "; ".join(f"{a} waits to {d} {e} ({occ}/{cap})" for a, d, e, occ, cap in blocked)
        raise DeadlockError(f"deadlock in deterministic mode: no operator can act: {text}",
                            blocked)

    def run(self, max_steps: int | None = None) -> int:
        """Step until every operator is done (or ``max_steps`` calls); returns the calls made."""
        n = 0
        try:
            while max_steps is None or n < max_steps:
                if self.step() is None:
                    break
                n += 1
        finally:
            if max_steps is None or n < max_steps:
                self.close()
        return n

    def __iter__(self):
        while (ev := self.step()) is not None:
            yield ev

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close every operator that is still open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for o in self.order:
            if o.state != "done" and o.state != "new":
                o.state = "done"
                o.t_end = time.perf_counter()
                o.op.close()

    def __enter__(self) -> Stepper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
