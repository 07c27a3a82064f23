"""Worker processes that serve one object, shared-memory TensorDict buffers, and a lock
between processes.

The low-level machinery under both :class:`streamrl.envs.ParallelEnv` and the graph's process
placement. A :class:`Worker` builds an object in a child process from a zero-argument factory
and serves method calls on it over a pipe; heavy data should not cross that pipe: allocate a
shared buffer once (:func:`shared_zeros_like`), hand it to the child (in the factory or one
setup call), and afterwards send only small values such as slot ids.

Arguments and results are pickled with torch's multiprocessing reductions, so a tensor that is
already in shared memory crosses as a handle. A tensor that is *not* shared is moved into
shared memory by those reductions, which costs tens of microseconds: keep per-call arguments
free of tensors on hot paths.

>>> with Worker(lambda: [1, 2, 3], name="demo") as w:
...     w.call("__len__")
3
"""

from __future__ import annotations

import contextlib
import copyreg
import fcntl
import io
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import pickle
import select
import signal
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections import ChainMap
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.reduction import ForkingPickler
from typing import Any

import cloudpickle
import torch
import torch.multiprocessing  # registers tensor reductions on ForkingPickler
from tensordict import TensorDictBase

# the errors users catch are public, in streamrl.errors
from streamrl.errors import RemoteError, WorkerDiedError

_START_METHODS = ("fork", "spawn", "forkserver")
_START_LOCK = threading.Lock()  # see Worker.start
_STOP = "__streamrl_stop__"


def default_start_method() -> str:
    """``$STREAMRL_MP_START_METHOD`` if set, else ``fork`` on Linux and ``spawn`` elsewhere."""
    method = os.environ.get("STREAMRL_MP_START_METHOD")
    if method:
        return _check_start_method(method)
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _check_start_method(method: str) -> str:
    if method not in _START_METHODS:
        raise ValueError(f"start_method must be one of {_START_METHODS}, got {method!r}")
    if method not in mp.get_all_start_methods():
        raise ValueError(f"start_method {method!r} is not available on this platform")
    return method


class _SharedAwarePickler(cloudpickle.CloudPickler):
    """cloudpickle (lambdas, closures) that still sends shared tensors as handles."""

    dispatch_table = ChainMap(ForkingPickler._extra_reducers, cloudpickle.CloudPickler.dispatch_table)


class _MessagePickler(ForkingPickler):
    """ForkingPickler with its dispatch table built once: ForkingPickler rebuilds the table on
    every message (a few microseconds each way of every call)."""

    _table = ChainMap(ForkingPickler._extra_reducers, copyreg.dispatch_table)

    def __init__(self, file: io.BytesIO, protocol: int | None = None):
        pickle.Pickler.__init__(self, file, protocol)
        self.dispatch_table = self._table


def _send(conn: mp_connection.Connection, message: Any) -> None:
    buf = io.BytesIO()
    _MessagePickler(buf, pickle.HIGHEST_PROTOCOL).dump(message)
    conn.send_bytes(buf.getbuffer())


def _dumps_factory(factory: Callable[[], Any]) -> bytes:
    buf = io.BytesIO()
    _SharedAwarePickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(factory)
    return buf.getvalue()


def _pack_exception(exc: BaseException) -> tuple[str, str, str, bytes | None]:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        original = pickle.dumps(exc)
        pickle.loads(original)  # some exceptions pickle but cannot be rebuilt
    except Exception:
        original = None
    return type(exc).__qualname__, str(exc), tb, original


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_WATCH_PERIOD = 0.2  # seconds between parent checks where pidfds are missing


def _parent_gone(parent_pid: int, original_ppid: int) -> bool:
    if os.getppid() != original_ppid:  # reparented: our parent (or the forkserver) exited
        return True
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else (pid reused): gone for us
        return True
    return False


def _wait_for_parent_exit(parent_pid: int, original_ppid: int, pidfd: int | None) -> None:
    if pidfd is not None:
        # a pidfd becomes readable when the process exits (no polling, no pid reuse)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll():
            pass
    else:
        while not _parent_gone(parent_pid, original_ppid):
            time.sleep(_WATCH_PERIOD)
    os._exit(1)


def remove_orphan_shm(pid: int) -> list[str]:
    """Remove the ``/dev/shm`` entries torch created in the dead process ``pid`` and did not
    unlink; return their names.

    Under torch's default ``file_descriptor`` sharing strategy a segment is unlinked right after
    it is created, so an entry named ``torch_<pid>_*`` outlives its creator only when the
    process was killed between the two (a worker killed while it moved a tensor into shared
    memory). Call it once ``pid`` has been reaped; with the ``file_system`` strategy, whose
    entries are meant to outlive their creator, it does nothing.
    """
    import torch.multiprocessing as tmp

    if tmp.get_sharing_strategy() != "file_descriptor" or not os.path.isdir("/dev/shm"):
        return []
    prefix = f"torch_{pid}_"
    removed = []
    for name in os.listdir("/dev/shm"):
        if name.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join("/dev/shm", name))
                removed.append(name)
    return removed


def _exit_with_parent(parent_pid: int, pdeathsig: bool) -> None:
    """Make this worker exit when the process that started it dies, however it dies.

    The pipe's EOF does not tell: with fork, processes forked later (other workers) inherit the
    parent's end of it. So a daemon thread waits on a pidfd of the parent (or polls its pid) and
    ends the process. Where the parent started the worker from its main thread, the kernel also
    kills it (``PR_SET_PDEATHSIG``), which works even while this process holds the GIL in C
    code; not otherwise, because the signal fires when the *thread* that forked exits, and
    workers are often started from short-lived threads.
    """
    original_ppid = os.getppid()
    if pdeathsig and sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    pidfd: int | None = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(parent_pid)
        except ProcessLookupError:
            os._exit(1)
        except OSError:  # not allowed here (seccomp, old kernel): poll instead
            pidfd = None
    # the parent may have died before the pidfd (or the death signal) was set up
    if _parent_gone(parent_pid, original_ppid):
        os._exit(1)
    threading.Thread(
        target=_wait_for_parent_exit,
        args=(parent_pid, original_ppid, pidfd),
        name="streamrl-parent-watch",
        daemon=True,
    ).start()


def _child_main(
    conn, factory, payload: bytes | None, num_threads: int | None, parent_pid: int,
    pdeathsig: bool,
) -> None:
    # The parent owns shutdown: a Ctrl-C reaches the whole process group, and the child must not
    # die half-way through a step because of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM must end the worker (multiprocessing's exit hook and Worker.close() terminate
    # with it). A forked child inherits the parent's C-level handlers: SDL's (pygame, used by
    # gym's rendering) only queues a quit event, which left workers alive and the parent
    # waiting for them forever at exit.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _exit_with_parent(parent_pid, pdeathsig)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        if factory is None:
            factory = pickle.loads(payload)
        obj = factory()
    except BaseException as exc:
        _send(conn, ("err", _pack_exception(exc)))
        conn.close()
        return
    _send(conn, ("ok", None))
    while True:
        try:
            method, args, kwargs = conn.recv()
        except (EOFError, OSError):
            break  # the parent went away
        if method == _STOP:
            closer = getattr(obj, "close", None)
            try:
                if callable(closer):
                    closer()
            except BaseException as exc:
                _send(conn, ("err", _pack_exception(exc)))
            else:
                _send(conn, ("ok", None))
            break
        try:
            result = getattr(obj, method)(*args, **kwargs)
        except BaseException as exc:
            _send(conn, ("err", _pack_exception(exc)))
        else:
            _send(conn, ("ok", result))
    conn.close()


class Worker:
    """A child process serving method calls on an object built there by ``factory``.

    Args:
        factory: zero-argument callable that builds the served object in the child. Lambdas and
            closures work with every start method (they are cloudpickled where needed).
        name: shown in errors.
        start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"``; ``None`` uses
            :func:`default_start_method`.
        num_threads: torch intra-op threads in the child (1 avoids oversubscribing cores when
            several workers run); ``None`` leaves torch's default.
        daemon: whether the child is a daemon process (multiprocessing then terminates it
            at the parent's normal exit, and it cannot start processes of its own).

    Whatever ``daemon`` and the start method, the child exits when the process that started it
    dies (also by SIGKILL), and on SIGTERM (even if the parent ignored or handled SIGTERM when
    it forked: SDL, under pygame rendering, installs such a handler).
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        name: str,
        start_method: str | None = None,
        num_threads: int | None = 1,
        daemon: bool = True,
    ):
        if not callable(factory):
            raise TypeError(f"factory must be a zero-argument callable, got {type(factory).__name__}")
        self.name = name
        self.start_method = (
            default_start_method() if start_method is None else _check_start_method(start_method)
        )
        self._factory = factory
        self._num_threads = num_threads
        self._daemon = daemon
        self._process: mp.process.BaseProcess | None = None
        self._conn: mp_connection.Connection | None = None
        self._pending = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float | None = None) -> Worker:
        """Start the process and wait until the factory has built the object."""
        if self._closed:
            raise RuntimeError(f"worker {self.name!r} is closed and cannot be restarted")
        if self._process is not None:
            raise RuntimeError(f"worker {self.name!r} is already started")
        ctx = mp.get_context(self.start_method)
        if self.start_method == "fork":
            factory, payload = self._factory, None
        else:
            factory, payload = None, _dumps_factory(self._factory)
        # the kernel's parent-death signal is tied to the forking thread: safe from the main
        # thread only (see _exit_with_parent)
        pdeathsig = threading.current_thread() is threading.main_thread()
        # One start at a time, from the pipe to closing the child's end here: a worker forked
        # meanwhile by another thread would inherit that end, and the parent would never see
        # EOF when this child dies (the hang of a killed collector worker, one run in ten).
        with _START_LOCK:
            parent_conn, child_conn = ctx.Pipe(duplex=True)
            process = ctx.Process(
                target=_child_main,
                args=(child_conn, factory, payload, self._num_threads, os.getpid(), pdeathsig),
                name=f"streamrl:{self.name}",
                daemon=self._daemon,
            )
            process.start()
            # Without this the parent would keep the child's end open and never see EOF on a
            # crash.
            child_conn.close()
        self._process, self._conn = process, parent_conn
        self._pending = 1
        try:
            self.recv(timeout=timeout)
        except BaseException:
            try:
                self.close()
            except Exception:  # the start's own error is the one to report
                pass
            raise
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop the child (calling the object's ``close()`` there, if any). Idempotent.

        The process is stopped in any case; if the object's ``close()`` raised, that error is
        then raised here as a :class:`~streamrl.errors.RemoteError`."""
        if self._closed:
            return
        self._closed = True
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        reply = None
        try:
            if process.is_alive():
                # Drain replies still pending so the stop reply is not mistaken for one of them.
                while self._pending and conn.poll(timeout):
                    conn.recv()
                    self._pending -= 1
                _send(conn, (_STOP, (), {}))
                if conn.poll(timeout):
                    reply = conn.recv()
        except (OSError, EOFError, BrokenPipeError):
            pass
        finally:
            conn.close()
            process.join(timeout)
            if process.is_alive():
                process.terminate()
                process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join()
            if process.exitcode != 0 and process.pid is not None:
                remove_orphan_shm(process.pid)
            process.close()
        if reply is not None:
            self._unpack(*reply)

    def __enter__(self) -> Worker:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._process is not None:
            try:
                self.close(timeout=0.5)
            except Exception:
                pass

    # ------------------------------------------------------------------ calls
    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``obj.method(*args, **kwargs)`` in the child and return the result."""
        self.send(method, *args, **kwargs)
        return self.recv(timeout=timeout)

    def send(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Request ``obj.method(*args, **kwargs)`` without waiting for the reply."""
        conn = self._live_conn()
        try:
            _send(conn, (method, args, kwargs))
        except (BrokenPipeError, OSError, EOFError) as exc:
            raise self._died() from exc
        self._pending += 1

    def recv(self, timeout: float | None = None) -> Any:
        """The reply to the oldest request sent and not yet received."""
        conn = self._live_conn()
        if self._pending == 0:
            raise RuntimeError(f"worker {self.name!r}: recv() without a pending request")
        if timeout is not None and not conn.poll(timeout):
            if not self.is_alive():
                raise self._died()
            raise TimeoutError(f"worker {self.name!r} did not reply within {timeout} s")
        try:
            status, value = conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        self._pending -= 1
        return self._unpack(status, value)

    def _unpack(self, status: str, value: Any) -> Any:
        """A reply's value, or its remote exception raised as a RemoteError."""
        if status == "ok":
            return value
        remote_type, message, tb, original = value
        error = RemoteError(self.name, remote_type, message, tb)
        cause = pickle.loads(original) if original is not None else None
        raise error from cause

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether a reply (or the end of the pipe) is ready."""
        return self._live_conn().poll(timeout)

    # ------------------------------------------------------------------ introspection
    @property
    def pid(self) -> int | None:
        """The child's process id (``None`` before start)."""
        return None if self._process is None else self._process.pid

    @property
    def connection(self) -> mp_connection.Connection:
        """The parent's end of the pipe, for :func:`multiprocessing.connection.wait`."""
        return self._live_conn()

    def is_alive(self) -> bool:
        """Whether the child process is running."""
        return self._process is not None and not self._closed and self._process.is_alive()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._process else "new")
        return f"Worker(name={self.name!r}, pid={self.pid}, {state})"

    def _live_conn(self) -> mp_connection.Connection:
        if self._closed:
            raise RuntimeError(f"worker {self.name!r} is closed")
        if self._conn is None:
            raise RuntimeError(f"worker {self.name!r} is not started: call start() first")
        return self._conn

    def death(self) -> WorkerDiedError:
        """The error describing this worker's end, with its exit code (waiting up to 1 s for
        it), for a caller that saw the pipe end outside :meth:`recv`."""
        return self._died()

    def _died(self) -> WorkerDiedError:
        process = self._process
        exitcode = None
        if process is not None:
            process.join(1.0)
            exitcode = process.exitcode
        return WorkerDiedError(self.name, exitcode)


def _cpu_getter() -> Callable[[], int]:
    """glibc's ``sched_getcpu`` (a fraction of a microsecond: no system call where the
    kernel publishes the CPU through rseq or the vDSO), or a function returning -1 where it
    is missing."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            fn = ctypes.CDLL(None, use_errno=True).sched_getcpu
        except (OSError, AttributeError):
            pass
        else:
            fn.restype, fn.argtypes = ctypes.c_int, []
            if fn() >= 0:
                return fn
    return lambda: -1


_getcpu = _cpu_getter()


def current_cpu() -> int:
    """The CPU this thread runs on, or -1 where that cannot be asked."""
    return _getcpu()


def wait_ready(workers: Iterable[Worker], timeout: float | None = None) -> list[Worker]:
    """The workers among ``workers`` with a reply ready (or a dead pipe), waiting up to
    ``timeout`` seconds for at least one."""
    by_conn = {w.connection: w for w in workers}
    ready = mp_connection.wait(list(by_conn), timeout)
    return [by_conn[c] for c in ready]


def shared_zeros_like(td: TensorDictBase, *leading_dims: int) -> TensorDictBase:
    """A zero-filled TensorDict with ``td``'s keys, dtypes and shapes, ``leading_dims``
    prepended to every entry and to the batch size, in shared memory.

    >>> from tensordict import TensorDict
    >>> buf = shared_zeros_like(TensorDict({"obs": torch.ones(4)}, []), 3)
    >>> buf.batch_size, buf["obs"].shape, buf.is_shared()
    (torch.Size([3]), torch.Size([3, 4]), True)
    >>> group = TensorDict({"agents": TensorDict({"obs": torch.ones(2, 3, 4)}, [2, 3])}, [2])
    >>> shared_zeros_like(group, 5)["agents"].batch_size  # an agent group keeps its dim
    torch.Size([5, 2, 3])
    """
    for dim in leading_dims:
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"leading_dims must be positive ints, got {leading_dims!r}")
    out = td.apply(
        lambda t: torch.zeros((*leading_dims, *t.shape), dtype=t.dtype, device="cpu"),
        batch_size=[*leading_dims, *td.batch_size],
    )
    # nested TensorDicts keep their own batch dims (an agent group's [*batch, n_agents]);
    # parents come before their children, so each one's size extends its parent's
    for key, sub in td.items(True):
        if isinstance(sub, TensorDictBase) and sub.batch_dims > td.batch_dims:
            out.get(key).batch_size = torch.Size((*leading_dims, *sub.batch_size))
    return out.share_memory_()


class ProcessLock:
    """A readers-writer lock between processes: ``fcntl.flock`` on a small lock file.

    :meth:`shared` (readers) and :meth:`exclusive` (the writer) are context managers. Each
    process opens its own descriptor (a forked child too, which would otherwise share its
    parent's lock), so the lock excludes processes; threads of one process must also hold a
    lock of their own around it (a flock is owned by the descriptor, not the thread). The
    lock pickles as its path, so a copy sent to a worker process locks the same file. The
    file is created in the temporary directory and removed when the process that created the
    lock drops it.

    >>> lock = ProcessLock()
    >>> with lock.exclusive():
    ...     pass
    >>> lock.close()
    """

    def __init__(self, path: str | None = None) -> None:
        self._finalizer = None
        if path is None:
            fd, path = tempfile.mkstemp(prefix="streamrl-", suffix=".lock")
            os.close(fd)
            self._finalizer = weakref.finalize(self, _remove_file, path)
        self.path = path
        self._fd: int | None = None
        self._pid: int | None = None
        self._depth = 0

    def _fileno(self) -> int:
        if self._pid != os.getpid() or self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
            self._depth = 0  # a forked child does not hold its parent's lock
        return self._fd

    def acquire(self, exclusive: bool) -> None:
        """Take the lock (re-entrant: nested calls only count). Call it under a thread lock
        of your own: the depth count and the descriptor are per process, not per thread."""
        if self._depth == 0:
            fcntl.flock(self._fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        self._depth += 1

    def release(self) -> None:
        """Undo one :meth:`acquire` (the outermost one unlocks)."""
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _hold(self, mode: int) -> Iterator[None]:
        fd = self._fileno()
        fcntl.flock(fd, mode)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def shared(self) -> contextlib.AbstractContextManager[None]:
        """Hold the lock with other readers."""
        return self._hold(fcntl.LOCK_SH)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Hold the lock alone."""
        return self._hold(fcntl.LOCK_EX)

    def close(self) -> None:
        """Close this process's descriptor (and remove the file if this process made it)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
        if self._finalizer is not None:
            self._finalizer()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._finalizer = None
        self.path = state["path"]
        self._fd = None
        self._pid = None
        self._depth = 0

    def __repr__(self) -> str:
        return f"ProcessLock({self.path!r})"


def _remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
