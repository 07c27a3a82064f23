"""Deterministic mode: the whole graph stepped in the calling thread, one hook call at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import DeadlockError, GraphValidationError, OperatorError
from .operator import async_hooks
from .placement import END, NOARG, Host, Inline
from .runtime import END_OF_INPUT, OpRun, OpState, build_run, check_primes
from .validation import topological_order

if TYPE_CHECKING:
    from .graph import Graph

__all__ = ["StepEvent", "Stepper"]


class StepEvent(NamedTuple):
    """One hook call made by a :class:`Stepper`: which operator, which hook, what it got and
    what it returned."""

    operator: str
    hook: str
    inputs: dict[str, Any] | None
    outputs: Any  # what the hook returned: None, a dict {port: item}, or END


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
        hosts: dict[str, Host] = {}
        for name, node in graph.nodes.items():
            if async_hooks(node.op):
                raise TypeError(
                    f"operator {name!r} has async hooks {async_hooks(node.op)}; deterministic "
                    "mode runs synchronous hooks only"
                )
            hosts[name] = Inline().host(node.op, name)
        self.graph = graph
        self.ops, self.channels = build_run(graph, hosts)
        self.order: list[OpRun] = [self.ops[n] for n in topological_order(graph)]
        self.fused_edges: set[str] = set()
        self._to_open = list(self.order)
        self._next = 0
        self._closed = False
        self.steps = 0

    # ------------------------------------------------------------------ stepping
    def step(self) -> StepEvent | None:
        """Make one hook call and return what happened; ``None`` once every operator is done."""
        if self._closed:
            return None
        self.steps += 1
        if self._to_open:
            return self._open(self._to_open.pop(0))
        n = len(self.order)
        for k in range(n):
            o = self.order[(self._next + k) % n]
            if o.state is OpState.DONE:
                continue
            if o.outputs_gone():  # nobody reads what it would emit
                self._next = (self._next + k + 1) % n
                self._end(o)
                return StepEvent(o.name, "close", None, None)
            if o.outputs_full():
                continue
            chosen = [] if o.is_source else o.poll_inputs()
            if chosen is None:
                continue
            self._next = (self._next + k + 1) % n
            if chosen is END_OF_INPUT:
                return self._finish(o, "finish", None)
            inputs = o.take(chosen) if chosen else o.source_inputs()
            out = self._call(o, "step", inputs)
            if out is END:  # ended by StopIteration: flush, then close
                return self._finish(o, "step", inputs)
            self._emit(o, out)
            return StepEvent(o.name, "step", inputs, out)
        if all(o.state is OpState.DONE for o in self.order):
            self.close()
            return None
        self._deadlock()
        return None

    def _open(self, o: OpRun) -> StepEvent:
        """Phases open and, after the last operator, prime."""
        o.begin(time.perf_counter())
        out = self._call(o, "open")
        o.opened(out)
        if not self._to_open:
            check_primes(self.graph, self.ops, self.fused_edges)
        if out is END:
            self._end(o)
            return StepEvent(o.name, "open", None, END)
        self._emit(o, out)
        return StepEvent(o.name, "open", None, out)

    def _finish(self, o: OpRun, hook: str, inputs: dict[str, Any] | None) -> StepEvent:
        """Phase finish, then end: the event of the call that ended the stream."""
        out = self._call(o, "finish")
        o.finished = True
        if out is not END:
            self._emit(o, out)
        self._end(o)
        return StepEvent(o.name, hook, inputs, END if hook == "step" else out)

    def _call(self, o: OpRun, hook: str, arg: Any = NOARG) -> Any:
        """Phase step (or open, finish): one hook call, timed and counted."""
        t0 = time.perf_counter()
        try:
            r = o.host.call_sync(hook, arg)
        except Exception as exc:
            self.close()
            raise OperatorError(o.name, hook, exc) from exc
        o.busy_s += time.perf_counter() - t0
        o.calls += 1
        return r

    def _emit(self, o: OpRun, out: Any) -> None:
        """Phase emit, without waiting: may exceed a capacity by one hook's worth of items."""
        try:
            pairs = o.split_outputs(out)
        except Exception as exc:
            self.close()
            raise OperatorError(o.name, "step", exc) from exc
        for port, item in pairs:
            for ch in o.outputs[port]:
                ch.put_nowait(item)

    def _end(self, o: OpRun) -> None:
        """Phase end and close."""
        o.end(time.perf_counter())
        o.op.close()

    def _deadlock(self) -> None:
        blocked = []
        for o in self.order:
            if o.state is OpState.DONE:
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

    def __iter__(self) -> Iterator[StepEvent]:
        while (ev := self.step()) is not None:
            yield ev

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close every operator that is still open. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for o in self.order:
            if o.state is not OpState.DONE and o.state is not OpState.NEW:
                o.state = OpState.DONE
                o.t_end = time.perf_counter()
                o.op.close()

    def __enter__(self) -> Stepper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
