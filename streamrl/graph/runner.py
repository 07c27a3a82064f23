"""The concurrent runner: one anyio task per fused chain of operators, plus a watchdog.

Each chain's task goes through the phases of :mod:`.runtime` in order: start the hosts, open,
prime (wait until every chain is open, then check the cycles), step until the inputs end or the
consumers leave, finish, and close. Runs on anyio's asyncio backend only (see
:mod:`.eventloop`).
"""

from __future__ import annotations

import functools
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.lowlevel import checkpoint

from .channels import FifoChannel, _Channel, rows_of
from .errors import DeadlockError, GraphError, OperatorError
from .eventloop import running_loop
from .fusion import fused_chains, fused_edge_names
from .placement import END, NOARG, PipelinedHost, call_hook
from .runtime import END_OF_INPUT, OpRun, OpState, build_run, check_primes

if TYPE_CHECKING:
    from .graph import Graph

_CHECKPOINT_EVERY = 16  # a source that never waits still yields to the loop this often
# module constants: reading an Enum member off its class costs ~0.1 us, in the hot loop
_BUSY, _WAIT_IN, _WAIT_OUT, _DONE = OpState.BUSY, OpState.WAIT_IN, OpState.WAIT_OUT, OpState.DONE
#: the "edge" a Ray deployment's coordinator waits on (its actors), left out of deadlock reports
_COORDINATOR_WAIT = "(the Ray actors)"
# graphs with a run in progress (their operators belong to it)
_running: weakref.WeakSet[Graph] = weakref.WeakSet()


def _split_for_ray(graph: Graph, taps: dict[tuple[str, str], FifoChannel]) -> Any:
    """:func:`._ray_segments.split` when some operator is placed with ``Ray(direct=True)``."""
    from .ray import Ray

    if not any(isinstance(n.placement, Ray) and n.placement.direct
               for n in graph.nodes.values()):
        return None
    from ._ray_segments import split

    return split(graph, taps)


class _HookFailure(Exception):
    def __init__(self, op: str, hook: str, exc: BaseException):
        self.op, self.hook, self.exc = op, hook, exc


class _Chain:
    """The operators one task drives: the head gathers inputs, each next one is stepped by a
    direct call with the previous one's items, the tail emits on channels."""

    __slots__ = ("current", "head", "ops", "tail")

    def __init__(self, ops: list[OpRun]):
        self.ops = ops
        self.head, self.tail = ops[0], ops[-1]
        self.current = ops[0]  # the operator an unexpected error is attributed to


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
        self.user_graph = graph
        #: the actors of operators placed with Ray(direct=True), when the graph has any
        self.deployment: Any = None
        split = _split_for_ray(graph, self.taps)
        if split is not None:  # those operators run on their actors; the rest runs here
            graph, self.taps, self.deployment = split
        self.graph = graph
        self.watchdog_timeout = watchdog_timeout
        hosts = {name: n.placement.host(n.op, name) for name, n in graph.nodes.items()}
        names = fused_chains(graph, tuple(self.taps), fuse)
        self.fused_edges = fused_edge_names(graph, names)
        self.ops, self.channels = build_run(graph, hosts, self.fused_edges, self.taps)
        self.chains = [_Chain([self.ops[n] for n in c]) for c in names]
        self.error: BaseException | None = None
        self.running = False
        self._used = False
        self._tg: Any = None
        self._to_open = len(self.chains)
        self._remaining = len(self.chains)

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Run every chain until all have ended; raise the first error. The taps are closed
        however it ends, a refusal to start included, so that their readers stop waiting."""
        try:
            await self._run()
        finally:
            for tap in self.taps.values():
                tap.close_send()

    async def _run(self) -> None:
        running_loop("graph.run()")  # fail here, before anything starts, under trio
        if self._used:
            raise RuntimeError("a Runner runs once; call graph.run() again for a new run")
        if self.user_graph in _running:
            raise RuntimeError(f"graph {self.graph.name!r} is already running")
        self._used = True
        _running.add(self.user_graph)
        self._all_open = anyio.Event()
        self._done = anyio.Event()
        self.running = True
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for chain in self.chains:
                    tg.start_soon(self._drive, chain, name=f"streamrl:{chain.head.name}")
                if self.watchdog_timeout is not None:
                    tg.start_soon(self._watchdog, self.watchdog_timeout, name="streamrl:watchdog")
                if self.monitor is not None:
                    tg.start_soon(self._monitor, self.monitor, name="streamrl:monitor")
        finally:
            if self.deployment is not None:  # every chain has closed: the actors can go
                with anyio.CancelScope(shield=True):  # stats of actors stopped early
                    await self.deployment.collect_stats()
                self.deployment.kill()
            self.running = False
            _running.discard(self.user_graph)
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

    # ------------------------------------------------------------------ one chain's life
    async def _drive(self, chain: _Chain) -> None:
        """The task of one chain: its operators' phases, in order."""
        chain.head.waited = False
        now = time.perf_counter()
        for o in chain.ops:
            o.begin(now)
        try:
            await self._start(chain)
            opened = await self._open(chain)
            await self._prime()
            ended = await self._emit_opened(chain, opened)
            if ended is None:
                ended = await self._steps(chain)
            await self._finish(chain, ended)
        except _HookFailure as f:
            if isinstance(f.exc, OperatorError) and getattr(self.ops[f.op].op, "forwards_errors",
                                                            False):
                self.fail(f.exc)  # another operator's error, already named
            else:
                self.fail(OperatorError(f.op, f.hook, f.exc))
        except GraphError as exc:  # validation at run time: the message names the culprit
            self.fail(exc)
        except Exception as exc:
            self.fail(OperatorError(chain.current.name, "step", exc))
        finally:
            await self._close(chain)

    async def _start(self, chain: _Chain) -> None:
        """Phase start: each host makes its operator ready (a thread, a process, an actor)."""
        for o in chain.ops:
            chain.current = o
            try:
                await o.host.start()
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                raise _HookFailure(o.name, "start", exc) from None
            o.host.watch(functools.partial(self._report, o.name))

    def _report(self, name: str, hook: str, exc: BaseException) -> None:
        """A host's failure outside any hook call (see :meth:`Host.watch`)."""
        self.fail(OperatorError(name, hook, exc))

    async def _open(self, chain: _Chain) -> list[Any]:
        """Phase open: each operator's ``open()``; returns their results, to emit once primed."""
        opened = []
        for o in chain.ops:
            chain.current = o
            out = await self._call(o, "open")
            o.opened(out)
            opened.append(out)
        return opened

    async def _prime(self) -> None:
        """Phase prime: wait until every chain is open; the last one checks that each feedback
        cycle holds what ``open()`` emitted into it."""
        self._to_open -= 1
        if self._to_open == 0:
            check_primes(self.graph, self.ops, self.fused_edges)
            self._all_open.set()
        else:
            await self._all_open.wait()

    async def _emit_opened(self, chain: _Chain, opened: list[Any]) -> int | None:
        """Deliver what ``open()`` returned, down the chain; the index of an operator that
        ended the stream meanwhile, else None."""
        for i, out in enumerate(opened):
            chain.current = chain.ops[i]
            if out is END:
                return i
            ended = await self._push(chain.ops, i, out)
            if ended is not None:
                return ended
        chain.current = chain.head
        return None

    async def _steps(self, chain: _Chain) -> int | None:
        """Phases gather, step, emit, repeated: 0 once the head ends the stream (its inputs
        ended, or it raised StopIteration), the index of a fused operator that ended it, or
        None once every consumer of the tail has gone."""
        ops, head, tail = chain.ops, chain.head, chain.tail
        host = head.host
        if (isinstance(host, PipelinedHost) and host.max_in_flight > 1 and len(ops) == 1
                and not head.rate_limited):
            return await self._pipelined(head, host, host.max_in_flight)
        source = head.is_source
        ended = None
        n = 0
        while ended is None and not tail.outputs_gone():
            if source:
                r = await self._call(head, "step", head.source_inputs())
            else:
                inputs = await self._gather(head)
                if inputs is END_OF_INPUT:
                    return 0
                r = await self._call(head, "step", inputs)
            if r is END:
                return 0
            ended = await self._push(ops, 0, r)
            if not head.waited:
                n += 1
                if n >= _CHECKPOINT_EVERY:
                    n = 0
                    await checkpoint()
            head.waited = False
        return ended

    async def _pipelined(self, o: OpRun, host: PipelinedHost, window: int) -> int | None:
        """:meth:`_steps` for a host taking up to ``window`` calls in flight. Returns 0 when
        the stream ended, None when the consumers have gone."""
        pending: deque[Any] = deque()
        source = o.is_source
        eos = stopped = False
        while True:
            while not (eos or stopped) and len(pending) < window:
                inputs: Any = o.source_inputs() if source else {}
                if not source:
                    if pending and not o.inputs_ready() and not o.inputs_ended():
                        break  # collect a result rather than wait for an input
                    inputs = await self._gather(o)
                    if inputs is END_OF_INPUT:
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

    async def _finish(self, chain: _Chain, ended: int | None) -> None:
        """Phase finish: ``finish()`` from the operator that ended the stream to the tail, each
        one's last items delivered down the chain (which may end it further down)."""
        i = ended
        ops = chain.ops
        while i is not None and i < len(ops):
            chain.current = ops[i]
            out = await self._call(ops[i], "finish")
            ops[i].finished = True
            e = None if out is END else await self._push(ops, i, out)
            i = i + 1 if e is None else e

    async def _close(self, chain: _Chain) -> None:
        """Phase end and close: channels closed, then the hosts (shielded, also when
        cancelled)."""
        end = time.perf_counter()
        for o in chain.ops:
            o.end(end)
        # cancelled or failed: do not wait long for busy hosts
        fast = self.error is not None or anyio.current_effective_deadline() == float("-inf")
        with anyio.CancelScope(shield=True):
            for o in chain.ops:
                try:
                    await o.host.aclose(fast=fast)
                except Exception as exc:
                    self.fail(OperatorError(o.name, "close", exc))
        self._remaining -= 1
        if self._remaining == 0:
            self._done.set()

    # ------------------------------------------------------------------ the phases' steps
    async def _call(self, o: OpRun, hook: str, arg: Any = NOARG) -> Any:
        """Phase step (or open, finish): one hook call, timed and counted."""
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

    async def _push(self, ops: list[OpRun], i: int, out: Any) -> int | None:
        """Deliver the result of ``ops[i]``: step the next operator of the chain with each item,
        or emit from the tail. Returns the index of an operator that ended the stream
        (StopIteration) while handling it, else None."""
        o = ops[i]
        pairs = o.split_outputs(out)
        if not pairs:
            return None
        if i == len(ops) - 1:
            await self._emit(ops[0], o, pairs)
            return None
        nxt = ops[i + 1]
        port = nxt.op.inputs[0]
        for _, item in pairs:
            nxt.batches_in += 1  # a fused operator has one input port and no latest ones
            nxt.items_in += rows_of(item)
            r = await self._call(nxt, "step", {port: item})
            if r is END:
                return i + 1
            ended = await self._push(ops, i + 1, r)
            if ended is not None:
                return ended
        return None

    async def _emit(self, d: OpRun, o: OpRun, pairs: list[tuple[str, Any]]) -> None:
        """Phase emit: put ``o``'s items on its channels; ``d``, the chain's head, waits while
        one is full."""
        for port, item in pairs:
            for ch in o.outputs[port]:
                if ch.recv_closed:
                    continue
                kind = ch.kind
                if kind == "latest" or (kind == "fifo" and not ch.full()):
                    ch.put_nowait(item)  # never waits
                    continue
                d.state, d.waiting_on, d.since = _WAIT_OUT, [ch], time.perf_counter()
                d.waited = True
                await ch.put(item)
                o.blocked_out_s += time.perf_counter() - d.since
                d.state = _BUSY

    async def _gather(self, o: OpRun) -> Any:
        """Phase gather: the next input dict, waiting for items; END_OF_INPUT once the inputs
        have ended."""
        single = o.single
        waiting: list[_Channel]
        while True:
            if single is not None:  # one plain FIFO input: the hot path, poll_inputs inlined
                if single._q:
                    item = single.take()
                    o.batches_in += 1
                    o.items_in += rows_of(item)
                    return {o.single_port: item}
                if single.send_closed:
                    return END_OF_INPUT
                waiting = [single]
            else:
                chosen = o.poll_inputs()
                if chosen is END_OF_INPUT:
                    return chosen
                if chosen is not None:
                    if o.rate_limited:  # each take waits for the rate limiter
                        return o.with_latest({port: await c.take_async() for port, c in chosen})
                    return o.take(chosen)
                waiting = [c for chans in o.inputs.values() for c in chans if not c.ready()]
            o.state, o.waiting_on, o.since = _WAIT_IN, waiting, time.perf_counter()
            o.waited = True
            await o.waker.wait()
            dt = time.perf_counter() - o.since
            o.blocked_in_s += dt
            for c in waiting:
                c.get_wait_s += dt
            o.state = _BUSY

    # ------------------------------------------------------------------ monitor
    async def _monitor(self, monitor: Callable[[Any], Any]) -> None:
        from .stats import GraphStats

        while not self._done.is_set():
            with anyio.move_on_after(self.monitor_interval):
                await self._done.wait()
            try:
                monitor(GraphStats.collect(self))
            except Exception as exc:
                self.fail(OperatorError("(monitor)", "monitor", exc))
                return

    # ------------------------------------------------------------------ watchdog
    def blocked(self) -> tuple[float, list[tuple[str, str, str, int, int | None]]] | None:
        """``(seconds, waits)`` when every running chain has been waiting for that long, on
        its channels or, inside an edge end to another process, on that process (an operator
        with an ``awaiting`` attribute set, see :mod:`._ray_edges`); None while one computes
        or waits for the caller of ``iterate()``. Each wait is ``(operator, direction, edge,
        occupancy, capacity)`` (occupancy -1 and capacity None across processes)."""
        now = time.perf_counter()
        oldest = now
        waits: list[tuple[str, str, str, int, int | None]] = []
        running = [c for c in self.chains if c.head.state is not _DONE]
        if not running:
            return None
        for chain in running:
            head = chain.head
            if head.state in (_WAIT_IN, _WAIT_OUT):
                if any(ch.tap for ch in head.waiting_on):
                    return None  # waiting on the caller of iterate(), not on the graph
                direction = "put" if head.state is _WAIT_OUT else "get"
                waits += [(head.name, direction, ch.name, ch.occupancy, ch.capacity)
                          for ch in head.waiting_on]
                oldest = min(oldest, head.since)
                continue
            remote = [o for o in chain.ops if getattr(o.op, "awaiting", None) is not None]
            if not remote:
                return None  # computing
            op: Any = remote[0].op
            direction, edge = op.awaiting
            waits.append((remote[0].name, direction, edge, -1, None))
            oldest = min(oldest, op.since)
        return now - oldest, waits

    def _wait_marks(self) -> tuple[tuple[int, float], ...]:
        """When each running chain began its present wait: unchanged between two calls only
        if no chain has moved in between."""
        marks = []
        for chain in self.chains:
            head = chain.head
            if head.state in (_WAIT_IN, _WAIT_OUT):
                marks.append((id(chain), head.since))
            else:
                marks += [(id(chain), getattr(o.op, "since", 0.0)) for o in chain.ops
                          if getattr(o.op, "awaiting", None) is not None][:1]
        return tuple(marks)

    async def _watchdog(self, timeout: float) -> None:
        period = min(0.25, timeout / 4)
        confirmed: tuple[tuple[int, float], ...] | None = None
        while True:
            with anyio.move_on_after(period):
                await self._done.wait()
            if self._done.is_set():
                return
            found = self.blocked()
            if found is None or found[0] < timeout:
                confirmed = None
                continue
            waits = found[1]
            if self.deployment is not None:  # the actors must all be waiting too
                marks = self._wait_marks()
                remote = await self.deployment.blocked()
                if remote is None or any(s < timeout for s, _ in remote):
                    confirmed = None
                    continue
                # The actors' answers and the driver's own waits are read at different
                # times, and replies across processes may arrive in any order (a run's
                # result before the last pull's items): the verdict must hold on two passes
                # during which no chain on the driver has moved.
                if self._wait_marks() != marks or (confirmed is not None and confirmed != marks):
                    confirmed = None
                    continue
                if confirmed is None:
                    confirmed = marks
                    continue
                waits = [w for w in waits if w[2] != _COORDINATOR_WAIT]
                waits += [w for _, ws in remote for w in ws]
            lines = "; ".join(
                f"{op} waits to {dirn} {'on' if dirn == 'put' else 'from'} {edge} "
                + ("(in another process)" if occ < 0 else
                   f"({occ}/{cap if cap is not None else 'latest'})")
                for op, dirn, edge, occ, cap in waits
            )
            self.fail(DeadlockError(
                f"deadlock: every operator has been blocked on its edges for more than "
                f"{timeout:g} s: {lines}", waits))
            return
