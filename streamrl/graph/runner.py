"""The concurrent runner: one anyio task per fused chain of operators, plus a watchdog."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.lowlevel import checkpoint

from .channels import FifoChannel, rows_of
from .errors import DeadlockError, GraphError, OperatorError
from .fusion import fused_chains
from .operator import Many, async_hooks
from .placement import END, NOARG, call_hook
from .runtime import OpRun, build_run
from .validation import check_cycle_capacity, simple_cycles

if TYPE_CHECKING:
    from .graph import Graph

_EOS = object()
_CHECKPOINT_EVERY = 16  # a source that never waits still yields to the loop this often


class _HookFailure(Exception):
    def __init__(self, op: str, hook: str, exc: BaseException):
        self.op, self.hook, self.exc = op, hook, exc


class Runner:
    """Runs a graph once. Built by :meth:`Graph.run`; exposes the per-run records for stats."""

    def __init__(self, graph: Graph, *, fuse: bool = True,
                 watchdog_timeout: float | None = 30.0,
                 taps: dict[tuple[str, str], FifoChannel] | None = None,
                 monitor: Callable[[Any], Any] | None = None, monitor_interval: float = 1.0):
        if watchdog_timeout is not None and watchdog_timeout <= 0:
            raise ValueError(f"watchdog_timeout must be > 0 or None, found {watchdog_timeout!r}")
        if monitor is not None and not callable(monitor):
            raise TypeError(f"monitor must be callable, found {type(monitor).__name__}")
        if not monitor_interval > 0:
            raise ValueError(f"monitor_interval must be > 0, found {monitor_interval!r}")
        self.monitor = monitor
        self.monitor_interval = monitor_interval
        self.taps = taps or {}
        graph.validate(tuple(self.taps), fuse)
        self.graph = graph
        self.watchdog_timeout = watchdog_timeout
        hosts = {name: n.placement.host(n.op, name) for name, n in graph.nodes.items()}
        self.ops, self.channels = build_run(graph, hosts, self.taps)
        self.chains = [[self.ops[n] for n in c]
                       for c in fused_chains(graph, tuple(self.taps), fuse)]
        self.fused_edges: set[str] = set()
        for chain in self.chains:  # a fused edge has no channel: items pass by a direct call
            for a, b in itertools.pairwise(chain):
                for chans in a.outputs.values():
                    for ch in chans:
                        self.fused_edges.add(ch.name)
                        self.channels.pop(ch.name, None)
                a.outputs = {p: [] for p in a.outputs}
                b.inputs = {}
        self.error: BaseException | None = None
        self.running = False
        self._used = False
        self._tg: Any = None

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        if self._used:
            raise RuntimeError("a Runner runs once; call graph.run() again for a new run")
        if self.graph._running:
            raise RuntimeError(f"graph {self.graph.name!r} is already running")
        self._used = True
        self.graph._running = True
        self._to_open = len(self.chains)
        self._remaining = len(self.chains)
        self._all_open = anyio.Event()
        self._done = anyio.Event()
        self.running = True
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for chain in self.chains:
                    tg.start_soon(self._drive, chain, name=f"streamrl:{chain[0].name}")
                if self.watchdog_timeout is not None:
                    tg.start_soon(self._watchdog, name="streamrl:watchdog")
                if self.monitor is not None:
                    tg.start_soon(self._monitor, name="streamrl:monitor")
        finally:
            self.running = False
            self.graph._running = False
            for tap in self.taps.values():
                tap.close_send()
        if self.error is not None:
            raise self.error

    def fail(self, error: BaseException) -> None:
        """Record the first error and cancel the run."""
        if self.error is None:
            self.error = error
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def cancel(self) -> None:
        """Stop the run without an error."""
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # ------------------------------------------------------------------ hooks
    async def _call(self, o: OpRun, hook: str, arg: Any = NOARG) -> Any:
        if o.direct:  # a synchronous inline hook: no coroutine needed
            t0 = time.perf_counter()
            try:
                result = call_hook(o.op, hook, arg)
            except Exception as exc:
                raise _HookFailure(o.name, hook, exc) from None
            o.busy_s += time.perf_counter() - t0
            o.calls += 1
            return result
        try:
            result, dt = await o.host.call(hook, arg)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            raise _HookFailure(o.name, hook, exc) from None
        o.busy_s += dt
        o.calls += 1
        return result

    async def _push(self, chain: list[OpRun], i: int, out: Any) -> int | None:
        """Deliver the result of ``chain[i]``; returns the index of an operator that ended the
        stream (StopIteration) while handling it, else None."""
        o = chain[i]
        pairs = o.split_outputs(out)
        if not pairs:
            return None
        if i == len(chain) - 1:
            await self._emit(chain[0], o, pairs)
            return None
        nxt = chain[i + 1]
        port = nxt.op.inputs[0]
        for _, item in pairs:
            inputs = {port: item}
            nxt.count_in(inputs)
            r = await self._call(nxt, "step", inputs)
            if r is END:
                return i + 1
            ended = await self._push(chain, i + 1, r)
            if ended is not None:
                return ended
        return None

    async def _emit(self, d: OpRun, o: OpRun, pairs: list[tuple[str, Any]]) -> None:
        for port, item in pairs:
            for ch in o.outputs[port]:
                if ch.recv_closed:
                    continue
                kind = ch.kind
                if kind == "latest" or (kind == "fifo" and not ch.full()):
                    ch.put_nowait(item)  # never waits
                    continue
                d.state, d.waiting_on, d.since = "wait_out", [ch], time.perf_counter()
                d.waited = True
                await ch.put(item)
                o.blocked_out_s += time.perf_counter() - d.since
                d.state = "busy"

    async def _gather(self, o: OpRun) -> Any:
        """The next input dict, or _EOS when the inputs have ended."""
        ch = o.single
        if ch is not None and ch._q:  # one plain FIFO input with an item waiting: the hot path
            item = ch.take()
            o.batches_in += 1
            o.items_in += rows_of(item)
            return {o.single_port: item}
        while True:
            chosen = []
            eos = False
            if o.mode == "all":
                for port, chans in o.inputs.items():
                    ch = o.ready_channel(chans)
                    if ch is None:
                        eos = all(c.ended() for c in chans)
                        chosen = None
                        break
                    chosen.append((port, ch))
            else:
                for port, chans in o.inputs.items():
                    ch = o.ready_channel(chans)
                    if ch is not None:
                        chosen.append((port, ch))
                if not chosen:
                    chosen = None
                    eos = o.inputs_ended()
            if chosen:
                inputs = {}
                for port, ch in chosen:
                    inputs[port] = ch.take() if ch.kind != "limited" else await ch.take_async()
                for port, chans in o.latest.items():
                    ch = o.ready_channel(chans)
                    if ch is not None:
                        inputs[port] = ch.take()
                o.count_in(inputs)
                return inputs
            if eos:
                return _EOS
            waiting = [c for chans in o.inputs.values() for c in chans if not c.ready()]
            o.state, o.waiting_on, o.since = "wait_in", waiting, time.perf_counter()
            o.waited = True
            await o.waker.wait()
            dt = time.perf_counter() - o.since
            o.blocked_in_s += dt
            for c in waiting:
                c.get_wait_s += dt
            o.state = "busy"

    async def _drive(self, chain: list[OpRun]) -> None:
        head, tail = chain[0], chain[-1]
        head.waited = False
        for o in chain:
            o.direct = o.placement == "inline" and not async_hooks(o.op)
        if len(head.inputs) == 1 and not head.latest:
            ((port, chans),) = head.inputs.items()
            if len(chans) == 1 and chans[0].kind == "fifo":
                head.single, head.single_port = chans[0], port
        current = head
        now = time.perf_counter()
        for o in chain:
            o.t_start, o.state = now, "busy"
        try:
            opened = []
            for o in chain:
                current = o
                try:
                    await o.host.start()
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:
                    raise _HookFailure(o.name, "start", exc) from None
            for o in chain:
                current = o
                out = await self._call(o, "open")
                if isinstance(out, dict):
                    o.primed = {p: len(v.items) if isinstance(v, Many) else 1
                                for p, v in out.items()}
                opened.append(out)
            await self._arrive_open()
            ended = None
            for i, out in enumerate(opened):
                current = chain[i]
                if out is END:
                    ended = i
                    break
                ended = await self._push(chain, i, out)
                if ended is not None:
                    break
            current = head
            source = not head.inputs and not head.latest
            window = getattr(head.host, "max_in_flight", 1)
            if ended is None and window > 1 and len(chain) == 1 and not any(
                    c.kind == "limited" for chans in head.inputs.values() for c in chans):
                ended = await self._pipelined(head, window)
            n = 0
            while ended is None and not tail.outputs_gone():
                if source:
                    r = await self._call(head, "step", {})
                else:
                    inputs = await self._gather(head)
                    if inputs is _EOS:
                        ended = 0
                        break
                    r = await self._call(head, "step", inputs)
                if r is END:
                    ended = 0
                    break
                ended = await self._push(chain, 0, r)
                if not head.waited:
                    n += 1
                    if n >= _CHECKPOINT_EVERY:
                        n = 0
                        await checkpoint()
                head.waited = False
            i = ended
            while i is not None and i < len(chain):  # flush: finish() from the one that ended
                current = chain[i]
                out = await self._call(chain[i], "finish")
                chain[i].finished = True
                e = None if out is END else await self._push(chain, i, out)
                i = i + 1 if e is None else e
        except _HookFailure as f:
            self.fail(OperatorError(f.op, f.hook, f.exc))
        except GraphError as exc:  # validation at run time: the message names the culprit
            self.fail(exc)
        except Exception as exc:
            self.fail(OperatorError(current.name, "step", exc))
        finally:
            end = time.perf_counter()
            for o in chain:
                o.t_end, o.state = end, "done"
                o.close_channels()
            # cancelled or failed: do not wait long for busy hosts
            fast = self.error is not None or anyio.current_effective_deadline() == float("-inf")
            with anyio.CancelScope(shield=True):
                for o in chain:
                    try:
                        await o.host.aclose(fast=fast)
                    except Exception as exc:
                        self.fail(OperatorError(o.name, "close", exc))
            self._remaining -= 1
            if self._remaining == 0:
                self._done.set()

    async def _pipelined(self, o: OpRun, window: int) -> int | None:
        """Step ``o`` with up to ``window`` calls in flight (hosts with submit/collect).
        Returns 0 when the stream ended, None when the consumers have gone."""
        host = o.host
        pending: deque[Any] = deque()
        source = not o.inputs and not o.latest
        eos = stopped = False
        while True:
            while not (eos or stopped) and len(pending) < window:
                if source:
                    inputs = {}
                else:
                    if pending and not o.inputs_ready() and not o.inputs_ended():
                        break  # collect a result rather than wait for an input
                    inputs = await self._gather(o)
                    if inputs is _EOS:
                        eos = True
                        break
                try:
                    pending.append(host.submit("step", inputs))
                except Exception as exc:
                    raise _HookFailure(o.name, "step", exc) from None
            if not pending:
                return 0
            try:
                r, dt = await host.collect(pending.popleft())
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                raise _HookFailure(o.name, "step", exc) from None
            o.busy_s += dt
            o.calls += 1
            if r is END:
                stopped = True  # results of calls already in flight are dropped
            elif not stopped:
                await self._push([o], 0, r)
            if o.outputs_gone():
                return None

    async def _arrive_open(self) -> None:
        self._to_open -= 1
        if self._to_open == 0:
            primed = {e.name: self.ops[e.src].primed.get(e.src_port, 0) for e in self.graph.edges}
            for c in simple_cycles(list(self.graph.nodes), self.graph.edges):
                check_cycle_capacity(c, primed, "emitted by open()", self.fused_edges)
            self._all_open.set()
        else:
            await self._all_open.wait()

    # ------------------------------------------------------------------ monitor
    async def _monitor(self) -> None:
        from .stats import GraphStats

        while not self._done.is_set():
            with anyio.move_on_after(self.monitor_interval):
                await self._done.wait()
            try:
                self.monitor(GraphStats.collect(self))
            except Exception as exc:
                self.fail(OperatorError("(monitor)", "monitor", exc))
                return

    # ------------------------------------------------------------------ watchdog
    async def _watchdog(self) -> None:
        timeout = self.watchdog_timeout
        period = min(0.25, timeout / 4)
        while True:
            with anyio.move_on_after(period):
                await self._done.wait()
            if self._done.is_set():
                return
            now = time.perf_counter()
            drivers = [c[0] for c in self.chains if c[0].state != "done"]
            if not drivers or any(
                d.state not in ("wait_in", "wait_out") or now - d.since < timeout for d in drivers
            ):
                continue
            if any(ch.tap for d in drivers for ch in d.waiting_on):
                continue  # waiting on the caller of iterate(), not on the graph
            blocked = []
            for d in drivers:
                direction = "put" if d.state == "wait_out" else "get"
                for ch in d.waiting_on:
                    blocked.append((d.name, direction, ch.name, ch.occupancy, ch.capacity))
            lines = "; ".join(
                f"{op} waits to {dirn} {'on' if dirn == 'put' else 'from'} {edge} "
                f"({occ}/{cap if cap is not None else 'latest'})"
                for op, dirn, edge, occ, cap in blocked
            )
            self.fail(DeadlockError(
                f"deadlock: every operator has been blocked on its edges for more than "
                f"{timeout:g} s: {lines}", blocked))
            return
