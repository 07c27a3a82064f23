"""Process placement: the operator runs in a worker process; TensorDicts cross through shared
memory slots, and only small handles go through the pipe."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import torch
from tensordict import TensorDict

from .._mp import Worker, shared_zeros_like
from .._warnings import StreamRLWarning
from ..errors import RemoteError
from .eventloop import run_in_own_thread, running_loop
from .operator import Many, Operator, async_hooks
from .placement import END, NOARG, Host, PipelinedHost, Placement, call_hook

__all__ = ["Process"]


# A TensorDict sent through a shared buffer is encoded as (_SLOT, key, buf): ``key`` names the
# buffer, ``buf`` is set only when the buffer is new (first message, or the structure changed).
# A plain tuple pickles faster than a small class.
_SLOT = "__streamrl_shared_slot__"


def _leaves(td: TensorDict) -> tuple[tuple, list[torch.Tensor]] | None:
    """The structure signature and the leaves of a TensorDict of CPU tensors, else None."""
    sig: list[Any] = [td.batch_size]
    leaves: list[torch.Tensor] = []
    for k, v in td.items(True):
        if type(v) is TensorDict:
            # a nested TensorDict's batch size is part of the structure (an agent group's)
            if v.batch_dims != td.batch_dims:
                sig.append((k, v.batch_size))
            continue
        if type(v) is not torch.Tensor or v.device.type != "cpu":
            return None
        sig.append((k, v.shape, v.dtype))
        leaves.append(v)
    return tuple(sig), leaves


class SlotCodec:
    """Encodes the items of a hook's inputs/outputs for the pipe (TensorDicts into reusable
    shared buffers) and decodes the other side's. One codec per direction per process end."""

    def __init__(self) -> None:
        self._out: dict[Any, tuple[tuple, Any, list[Any]]] = {}
        self._in: dict[Any, TensorDict] = {}

    def _encode_item(self, key: Any, item: Any) -> Any:
        if type(item) is not TensorDict:
            return item
        found = _leaves(item)
        if found is None:
            return item  # non-tensor leaves or device tensors: pickle as usual
        sig, src = found
        entry = self._out.get(key)
        if entry is not None and entry[0] == sig:
            for s, d in zip(src, entry[2]):
                d.copy_(s)
            return (_SLOT, key, None)
        buf = shared_zeros_like(item)
        dst: list[Any] = list(buf.values(True, True))
        for s, t in zip(src, dst):
            t.copy_(s)
        self._out[key] = (sig, buf, dst)
        return (_SLOT, key, buf)

    def encode(self, values: dict[str, Any] | None, slot: int = 0) -> Any:
        """Encode a hook's dict; ``slot`` selects one of several buffer sets (one per message
        in flight, so a buffer is rewritten only after the other side has read it)."""
        if not isinstance(values, dict):
            return values
        out = {}
        for port, v in values.items():
            if isinstance(v, Many):
                out[port] = Many(
                    self._encode_item((port, slot, i), x) for i, x in enumerate(v.items)
                )
            else:
                out[port] = self._encode_item((port, slot), v)
        return out

    def _decode_item(self, item: Any) -> Any:
        if type(item) is not tuple or len(item) != 3 or item[0] != _SLOT:
            return item
        _, key, buf = item
        if buf is not None:
            self._in[key] = buf
        # A copy: the buffer is overwritten by a later message.
        return self._in[key].clone()

    def decode(self, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        out = {}
        for port, v in values.items():
            if isinstance(v, Many):
                out[port] = Many(self._decode_item(x) for x in v.items)
            else:
                out[port] = self._decode_item(v)
        return out


class _Served:
    """The object a worker process serves: the operator plus the child's slot codecs."""

    def __init__(self, op: Operator):
        self.op = op
        self._rx = SlotCodec()
        self._tx = SlotCodec()

    def hook(self, name: str, arg: Any = NOARG, slot: int = 0) -> Any:
        if name == "step":
            arg = self._rx.decode(arg)
        result = call_hook(self.op, name, arg)
        if result is END:
            return END
        if name in ("open", "step", "finish"):
            return self._tx.encode(result, slot)
        return result

    def close(self) -> None:
        self.op.close()


def _unwrap(exc: BaseException) -> BaseException:
    if isinstance(exc, RemoteError) and exc.__cause__ is not None:
        original = exc.__cause__
        # what add_note() does, also on Python 3.10 (which has no add_note)
        original.__notes__ = [*getattr(original, "__notes__", []), str(exc)]  # type: ignore[attr-defined]
        return original
    return exc


class _ProcessHost(PipelinedHost):
    placement = "process"

    def __init__(self, op: Operator, name: str, start_method: str | None,
                 num_threads: int | None, sync_state: bool, max_in_flight: int):
        super().__init__(op, name)
        self._sync_state = sync_state
        self.max_in_flight = max_in_flight
        self._seq = 0
        if async_hooks(op):
            raise TypeError(
                f"operator {name!r} has async hooks {async_hooks(op)}; only placement='inline' "
                "can await them"
            )
        self._worker = Worker(
            lambda: _Served(op), name=name, start_method=start_method, num_threads=num_threads
        )
        self._tx = SlotCodec()
        self._rx = SlotCodec()
        self._started = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._futs: deque[asyncio.Future] = deque()  # one per request sent, oldest first
        self._report: Callable[[str, BaseException], None] | None = None
        self._next_hook = "open"  # what the worker waits to run: named if it dies meanwhile

    async def start(self) -> None:
        loop = running_loop(f"operator {self.name!r} (placement='process')")
        self._started = True
        try:
            await run_in_own_thread(self._worker.start, f"streamrl-start-{self.name}")
        except RemoteError as exc:
            err = _unwrap(exc)
            raise err from err.__cause__  # its own cause kept (`from None` would drop it)
        # A permanent reader: the reply is read as soon as it arrives, with no per-call
        # registration (Connection.poll() builds a selector per call: too slow).
        self._loop = loop
        self._fd = self._worker.connection.fileno()
        loop.add_reader(self._fd, self._on_readable)

    def watch(self, report: Callable[[str, BaseException], None]) -> None:
        self._report = report

    def _on_readable(self) -> None:
        if not self._futs:
            # nothing pending, so no reply: the end of the pipe, the worker died between calls
            self._reading_stops()
            if not self._closed and self._report is not None:
                self._report(self._next_hook, self._worker.death())
            return
        fut = self._futs.popleft()
        try:
            result, error = self._worker.recv(), None
        except BaseException as exc:
            result, error = None, exc
        if fut.done():  # the caller was cancelled; the reply is dropped
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)

    def _reading_stops(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
        self._fd = -1

    def submit(self, hook: str, arg: Any = NOARG) -> Any:
        """Send a hook call without waiting; returns a handle for :meth:`collect`. Up to
        ``max_in_flight`` calls may be outstanding (replies come back in order)."""
        if len(self._futs) >= self.max_in_flight:
            raise RuntimeError(f"operator {self.name!r}: more than {self.max_in_flight} calls "
                               "in flight")
        if self._loop is None or self._fd < 0:
            raise RuntimeError(f"worker process of operator {self.name!r} is gone")
        slot = self._seq % self.max_in_flight
        self._seq += 1
        self._next_hook = "close" if hook == "finish" else "step"
        if hook == "step":
            arg = self._tx.encode(arg, slot)
        w = self._worker
        fut = self._loop.create_future()
        self._futs.append(fut)
        try:
            w.send("hook", hook, slot=slot) if arg is NOARG else w.send("hook", hook, arg, slot)
        except BaseException:
            self._futs.remove(fut)
            raise
        return fut, time.perf_counter()

    async def collect(self, handle: Any) -> tuple[Any, float]:
        """Wait for the reply to a :meth:`submit`; returns ``(result or END, seconds)``."""
        fut, t0 = handle
        try:
            result = await fut
        except RemoteError as exc:
            err = _unwrap(exc)
            raise err from err.__cause__  # its own cause kept (`from None` would drop it)
        return self._rx.decode(result), time.perf_counter() - t0

    async def aclose(self, *, fast: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sync_state and not fast and self._fd >= 0:
            # bring the state back so graph.state_dict() sees what the run did
            with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
                try:
                    state, _ = await self.call("state_dict")
                    self.op.load_state_dict(state)
                except Exception as exc:
                    warnings.warn(
                        f"operator {self.name!r}: could not copy its state back from the worker "
                        f"process ({type(exc).__name__}: {exc})",
                        StreamRLWarning,
                        stacklevel=2,
                    )
        busy = bool(self._futs)  # a reply is still due: the worker is inside a hook
        self._reading_stops()
        pid = self._worker.pid
        if fast and busy and pid is not None and self._worker.is_alive():
            # cancelled or failed while the worker computes: do not wait for the hook to end
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            if self._started:
                timeout = 0.25 if fast else 2.0
                await run_in_own_thread(
                    lambda: self._worker.close(timeout=timeout), f"streamrl-close-{self.name}"
                )
        except RemoteError as exc:  # the operator's close() raised in the worker
            err = _unwrap(exc)
            raise err from err.__cause__  # its own cause kept (`from None` would drop it)
        finally:
            # the shared buffers of both directions: a finished run (kept as graph._last_run
            # for its stats) must not keep them mapped
            self._tx, self._rx = SlotCodec(), SlotCodec()


class Process(Placement):
    """Run the operator in a worker process (for Python code that holds the GIL, e.g. envs).

    The operator object is sent to the process (inherited with ``fork``, cloudpickled with
    ``spawn``) before :meth:`~streamrl.graph.Operator.open` runs there, so it should create heavy
    or unpicklable resources in ``open``. TensorDict messages cross through shared-memory
    buffers allocated from the first message (and again if the structure changes); other
    messages are pickled. A worker still inside a hook when the graph is cancelled or fails is
    killed (its ``close()`` does not run). When the run ends normally the worker's ``state_dict()`` is loaded
    into the parent's operator object (``sync_state=False`` skips this, e.g. for large states),
    so :meth:`Graph.state_dict` reflects the run. In deterministic mode the operator runs
    inline instead.

    ``max_in_flight > 1`` pipelines: the next input is sent while the worker still computes the
    previous one, hiding the pipe round trip. The operator still sees its inputs one at a time
    and in order, but it may receive an input before its previous output has been delivered
    downstream, and after it ends the stream (``StopIteration``) or raises, the inputs already
    sent are stepped and their outputs dropped. The default (``None``) pipelines two messages
    for operators that declare ``pipeline_safe = True`` (Map, Batcher, Sink, Collect) and none
    for the others.

    Examples:
        >>> from streamrl.graph import Process
        >>> Process(start_method="spawn")
        Process(start_method='spawn')
    """

    name = "process"

    def __init__(self, start_method: str | None = None, num_threads: int | None = 1,
                 sync_state: bool = True, max_in_flight: int | None = None):
        if max_in_flight is not None and (not isinstance(max_in_flight, int) or max_in_flight < 1):
            raise ValueError(f"max_in_flight must be an int >= 1 or None, found {max_in_flight!r}")
        self.start_method = start_method
        self.num_threads = num_threads
        self.sync_state = sync_state
        self.max_in_flight = max_in_flight

    def host(self, op: Operator, name: str) -> Host:
        window = self.max_in_flight
        if window is None:
            window = 2 if getattr(op, "pipeline_safe", False) else 1
        return _ProcessHost(op, name, self.start_method, self.num_threads, self.sync_state,
                            window)

    def __repr__(self) -> str:
        return "Process()" if self.start_method is None else (
            f"Process(start_method={self.start_method!r})"
        )
