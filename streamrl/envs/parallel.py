"""ParallelEnv: N envs, each in its own worker process, exchanging data through shared memory."""

from __future__ import annotations

import copy
import functools
import multiprocessing as mp
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch

from streamrl._mp import Worker, current_cpu, default_start_method
from streamrl.envs.batched import _BatchedEnv
from streamrl.envs.batched_io import BatchedIO
from streamrl.envs.common import EnvBase, EnvClosedError
from streamrl.envs.step_buffers import StepBuffers
from streamrl.errors import RemoteError, WorkerDiedError

__all__ = ["ParallelEnv"]

# Commands of the per-step channel (a pair of semaphores per worker and a shared int32 row):
# the parent writes the command and its arguments into the worker's row and releases the
# worker's request semaphore; the worker runs it and releases the reply semaphore (a failed
# command leaves FAILED in the row and its exception travels back through the pipe). A
# semaphore round trip costs a few microseconds against tens for a pipe message (measured: 11
# vs 40 us for two workers on a 2-core machine), and nothing is pickled.
# Row layout: [command, t, steps, break_when_any_done, buffers slot]; a step_into's reply:
# [_, steps written, whether the last step was done, _, _]. _STEP_IO steps the env through its
# rows of the shared BatchedIO (the general path: sub-envs with a state spec...).
#
# Waiting: both sides poll their semaphore for up to ``spin_wait`` before sleeping on it.
# Waking a sleeping process costs tens of microseconds (an idle virtual CPU halts; waking
# it is an interrupt and a VM entry), a CartPole step a few. But a poller shares its CPU:
# yielding it (sched_yield) does not hand it to a process that has had more than its fair
# share (the parent, which runs the policy), and does hand a whole time slice (milliseconds)
# to an unrelated busy process. So a worker polls only on a CPU where neither the parent nor
# another polling worker is, as published in the shared row ``where`` (the parent's CPU,
# then each worker's while it polls, else -1), moving to such a CPU if the scheduler put it
# next to the parent; it stops polling at once when a yield took long (another process is
# busy there), and a poll that ends without a command makes it sleep through the next
# waits (twice as many after each such miss). The parent polls without yielding. See
# :class:`_CommandWait`.
_STEP_INTO, _RESET, _STOP, _STEP_IO, _FAILED = 1, 2, 3, 4, -1
# buffers registered with the workers: the 1-step buffers of step(), and collection buffers
_SCRATCH, _COLLECT = 0, 1


def _close_workers(
    workers: list[Worker], channels: list | None, cmd: Any, serving: list[bool], timeout: float
) -> None:
    """Stop the workers (those in the channel's command loop first leave it, so that they
    read the pipe's stop); each gets ``timeout`` seconds before it is terminated."""
    for i, on in enumerate(serving):
        if on:
            serving[i] = False
            cmd[i, 0] = _STOP
            channels[i][0].release()
    for w in workers:
        try:
            w.close(timeout=timeout)
        except Exception:
            pass


class _EnvServer:
    """Runs in a worker process: one env, stepping into its row of shared
    :class:`StepBuffers`; only method names and small values cross the pipe."""

    def __init__(
        self, create_env_fn: Callable[..., EnvBase], kwargs: dict, channel: tuple | None = None
    ) -> None:
        self.channel = channel
        self.env = create_env_fn(**kwargs)
        if not isinstance(self.env, EnvBase):
            raise TypeError(
                f"create_env_fn must return an EnvBase, found {type(self.env).__name__}"
            )
        self.buffers: dict[int, StepBuffers] = {}

    def meta(self) -> dict:
        return _BatchedEnv._meta_of(self.env)

    def setup(
        self, index: int, io: BatchedIO, cmd: torch.Tensor, where: torch.Tensor, spin: float
    ) -> None:
        self.i = index
        self.io = io.row(index)
        self.cmd = cmd.numpy()
        self.waiter = _CommandWait(index, where, spin)

    def set_buffers(self, slot: int, tensors: dict, batch_size: torch.Size) -> None:
        """Shared buffers of the whole batch; this worker steps into row ``i`` of them."""
        self.buffers[slot] = StepBuffers.from_tensors(tensors, batch_size, shared=True).row(self.i)

    def serve(self) -> None:
        """Run commands from the per-step channel until ``_STOP`` (see ``_STEP_INTO``)."""
        req, rep = self.channel
        cmd, i = self.cmd, self.i
        wait = self.waiter.wait
        while True:
            if not req.acquire(False):
                wait(req)
            code = int(cmd[i, 0])
            if code == _STOP:
                rep.release()
                return
            try:
                if code == _STEP_INTO:
                    _, t, steps, brk, slot = cmd[i].tolist()
                    cmd[i, 1:3] = self.step_into(slot, t, steps, bool(brk))
                elif code == _STEP_IO:
                    self.step_io()
                else:
                    self.reset()
            except BaseException:
                cmd[i, 0] = _FAILED  # the exception is this call's reply, through the pipe
                rep.release()
                raise
            rep.release()

    def set_seed(self, seed: int | None) -> None:
        # as TorchRL's workers do: what the sub-env's transforms draw from torch's RNG (the
        # number of no-ops of NoopResetEnv) differs between workers and repeats with the seed
        if seed is not None:
            torch.manual_seed(seed)
        self.env.set_seed(seed)

    def reset(self) -> None:
        self.io.reset(self.env)

    def step_io(self) -> None:
        self.io.step(self.env)

    def step_into(self, slot: int, t: int, steps: int, break_when_any_done: bool) -> tuple:
        """``env.step_into`` on this worker's row; returns (steps written, last step done)."""
        bufs = self.buffers[slot]
        n = self.env._step_into(bufs, t, steps, break_when_any_done)
        return n, int(bufs.done_at(t + n - 1))

    def capture_state(self) -> dict:
        return self.env.capture_state()

    def check_state(self, state: dict) -> None:
        self.env.check_state(state)

    def restore_state(self, state: dict) -> None:
        self.env.restore_state(state)

    def close(self) -> None:
        self.env.close()


class _CommandWait:
    """How worker ``index`` waits for its next command (see the comment on ``_STEP_INTO``):
    :meth:`wait` polls the request semaphore for up to ``spin`` seconds where that pays,
    else sleeps on it. ``where`` is the shared ``[parent, worker 0, worker 1...]`` row of
    CPUs."""

    LONG_YIELD = 5e-5  # a yield that took longer ran another process: stop polling
    MAX_SKIP = 1023  # most waits slept through after polls that missed

    def __init__(self, index: int, where: torch.Tensor, spin: float) -> None:
        self.me = index + 1
        self.where = where.numpy()
        self.spin = spin
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self.skip = self.penalty = 0

    def wait(self, req: Any) -> bool:
        """Take ``req`` (already tried once by the caller); whether it came while polling."""
        if not self.spin or self.skip:
            self.skip = max(self.skip - 1, 0)
            req.acquire()
            return False
        cpu = self._polling_cpu()
        if cpu < 0:
            req.acquire()
            return False
        where, me, clock, give_way = self.where, self.me, time.perf_counter, os.sched_yield
        where[me] = cpu
        end = clock() + self.spin
        try:
            while not req.acquire(False):
                before = clock()
                give_way()  # (to the other worker, if the scheduler woke it on this CPU)
                now = clock()
                if now - before > self.LONG_YIELD or now > end or where[0] == cpu:
                    break  # a busy process here, time is up, or the parent came here
                if current_cpu() != cpu:  # moved by the scheduler: go on where that is free
                    where[me] = -1
                    cpu = current_cpu()
                    if cpu < 0 or cpu in where.tolist():
                        break
                    where[me] = cpu
            else:
                self.penalty //= 2
                return True
        finally:
            where[me] = -1
        # no command while polling (a slow policy, a loaded machine): sleep through the next
        # waits, twice as many after each such miss
        self.penalty = min(2 * self.penalty + 1, self.MAX_SKIP)
        self.skip = self.penalty
        req.acquire()
        return False

    def _polling_cpu(self) -> int:
        """The CPU to poll on: this one, or a free one this process moves to; -1: none
        (unknown, or the parent or another poller is on every CPU allowed)."""
        cpu = current_cpu()
        taken = self.where.tolist()
        if cpu < 0 or cpu not in taken:
            return cpu
        # the scheduler wakes a process next to the one that woke it: the workers may
        # gather on the parent's CPU while another one idles
        free = [c for c in self.cpus if c not in taken]
        if not free:
            return -1
        try:  # the affinity narrowed to that CPU, then given back: the process stays there
            os.sched_setaffinity(0, {free[0]})
            os.sched_setaffinity(0, self.cpus)
        except OSError:
            return -1
        cpu = current_cpu()
        return -1 if cpu in self.where.tolist() else cpu


class ParallelEnv(_BatchedEnv):
    """N envs, each stepped in its own worker process; batch size ``[N]``.

    Each worker steps its env into its row of shared-memory :class:`StepBuffers` (the
    stepping protocol, :meth:`EnvBase.step_into`): ``step()`` through 1-step buffers, a
    collector's or ``rollout()``'s steps straight into the shared ``[N, T]`` batch buffers.
    With the fork start method (Linux's default) each step or reset is one command through a
    semaphore pair per worker (a few microseconds; nothing pickled); other calls, and every
    call with spawn/forkserver, go through pipes as method names. A rollout with random
    actions and ``break_when_any_done=False`` is one command: each worker runs all its steps.
    Done sub-envs are reset as in :class:`SerialEnv`; given the same seeds both produce
    identical rollouts. Sub-envs that do not fit flat step buffers (a state spec, e.g. a
    ``TensorDictPrimer`` inside each; several action keys) step through shared-memory rows
    of their inputs (the action, the state entries given) and outputs, one command per step
    (:mod:`streamrl.envs.batched_io`).

    A worker that dies raises :class:`~streamrl.errors.WorkerDiedError` (the env is then
    closed); an exception inside a sub-env is re-raised as
    :class:`~streamrl.errors.RemoteError`. ``close()`` stops every worker process.

    Args:
        num_workers: number of sub-envs (one process each).
        create_env_fn: a callable building one env (or a list of N); lambdas are fine.
        create_env_kwargs: keyword arguments for the callable(s).
        mp_start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"`` (default: fork on
            Linux).
        num_threads: torch threads of this process, set when the workers start (None, the
            default, leaves them as they are).
        timeout: seconds to wait for a worker's reply before raising ``TimeoutError`` (and
            closing the env); None waits as long as the worker lives. A worker that dies is
            reported at once either way.
        spin_wait: seconds this process polls for a worker's reply to a step, and a worker
            for its next command, before sleeping (with the fork start method, where steps
            go through semaphores). Waking a sleeping process costs tens of microseconds,
            more on virtual machines. A worker polls only on a CPU that neither this process
            nor another polling worker is on (moving to one if the scheduler put it beside
            this process), stops when another process is busy on its CPU, and after a poll
            that ended without a command sleeps through the next waits. Measured on a
            2-core VM, ``SyncDataCollector(ParallelEnv(2))`` with a small policy: about 18k
            frames/s with only this process polling, 35k with both sides; 0 never polls.
        pin_memory: only False (TorchRL 0.14 raises ``ValueError`` for True, as here).
        allow_step_when_done: only False (as in TorchRL 0.14).
        serial_for_single: with ``num_workers=1``, build a :class:`SerialEnv` (no worker
            process) instead; the ParallelEnv-only arguments are then unused.
        num_sub_threads: torch threads in each worker (default 1: several workers on few
            cores would otherwise oversubscribe them).
        daemon: whether the workers are daemon processes (default True: they die with this
            process). False lets a sub-env start processes of its own (a daemon process
            cannot); such workers are stopped at interpreter exit if the env is still open.
        shutdown_timeout: seconds ``close()`` gives each worker to stop (its env's
            ``close()`` included) before it is terminated, then killed.

    ``env[index]`` is a ParallelEnv over some of the workers (see
    :mod:`streamrl.envs.batched_view`).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> from streamrl.envs.batched import SerialEnv
    >>> single = ParallelEnv(1, lambda: GymEnv("Pendulum-v1"), serial_for_single=True)
    >>> isinstance(single, SerialEnv)
    True
    >>> single.close()
    >>> with ParallelEnv(2, lambda: GymEnv("Pendulum-v1")) as env:
    ...     env.rollout(3)["next", "observation"].shape
    torch.Size([2, 3, 3])
    """

    def __new__(cls, *args: Any, serial_for_single: bool = False, **kwargs: Any) -> Any:
        # serial_for_single: one worker is stepped in this process, as TorchRL documents
        # (``isinstance(ParallelEnv(1, fn, serial_for_single=True), SerialEnv)``)
        if not isinstance(serial_for_single, bool):
            raise TypeError(
                f"serial_for_single must be a bool, found {type(serial_for_single).__name__}"
            )
        num_workers = kwargs.get("num_workers", args[0] if args else None)
        if serial_for_single and num_workers == 1:
            from streamrl.envs.batched import SerialEnv

            fn = kwargs.get("create_env_fn", args[1] if len(args) > 1 else None)
            env_kwargs = kwargs.get("create_env_kwargs", args[2] if len(args) > 2 else None)
            return SerialEnv(
                1, fn, env_kwargs, device=kwargs.get("device"),
                pin_memory=kwargs.get("pin_memory", False),
                allow_step_when_done=kwargs.get("allow_step_when_done", False),
            )
        return super().__new__(cls)

    def __init__(
        self,
        num_workers: int,
        create_env_fn: Callable[..., EnvBase] | Sequence[Callable[..., EnvBase]],
        create_env_kwargs: dict | Sequence[dict] | None = None,
        mp_start_method: str | None = None,
        num_threads: int | None = None,
        device: Any = None,
        timeout: float | None = None,
        spin_wait: float = 2e-4,
        *,
        pin_memory: bool = False,
        allow_step_when_done: bool = False,
        serial_for_single: bool = False,
        num_sub_threads: int = 1,
        daemon: bool = True,
        shutdown_timeout: float = 10.0,
    ) -> None:
        super().__init__(
            num_workers, create_env_fn, create_env_kwargs, device=device,
            pin_memory=pin_memory, allow_step_when_done=allow_step_when_done,
        )
        for name, value in (("num_threads", num_threads), ("num_sub_threads", num_sub_threads)):
            if value is None and name == "num_threads":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, found {value!r}")
        if not isinstance(daemon, bool):
            raise TypeError(f"daemon must be a bool, found {type(daemon).__name__}")
        if (isinstance(shutdown_timeout, bool) or not isinstance(shutdown_timeout, int | float)
                or shutdown_timeout < 0):
            raise ValueError(
                f"shutdown_timeout must be non-negative seconds, found {shutdown_timeout!r}"
            )
        self.serial_for_single = serial_for_single
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, found {timeout!r}")
        self.timeout = timeout
        if isinstance(spin_wait, bool) or not isinstance(spin_wait, int | float) or spin_wait < 0:
            raise ValueError(f"spin_wait must be non-negative seconds, found {spin_wait!r}")
        self.spin_wait = float(spin_wait)
        if mp_start_method not in (None, "fork", "spawn", "forkserver"):
            raise ValueError(
                f"mp_start_method must be fork, spawn or forkserver, found {mp_start_method!r}"
            )
        self.mp_start_method = mp_start_method
        self.num_threads = num_threads
        self.num_sub_threads = num_sub_threads
        self.daemon = daemon
        self.shutdown_timeout = float(shutdown_timeout)
        self._workers: list[Worker] = []
        self._pids: list[int | None] = []
        self._channels: list | None = None
        self._serving: list[bool] = []
        self._slots: dict[int, StepBuffers] = {}  # buffers registered with the workers

    # -------------------------------------------------------------- workers
    def _start(self) -> None:
        method = self.mp_start_method or default_start_method()
        # semaphores reach the workers by inheritance: fork only (others use the pipes)
        ctx = mp.get_context("fork")
        channels = (
            [(ctx.Semaphore(0), ctx.Semaphore(0)) for _ in range(self.num_workers)]
            if method == "fork"
            else None
        )
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            for i, (fn, kw) in enumerate(
                zip(self.create_env_fn, self.create_env_kwargs, strict=True)
            ):
                w = Worker(
                    functools.partial(_EnvServer, fn, kw, channels and channels[i]),
                    name=f"ParallelEnv-{i}",
                    start_method=self.mp_start_method,
                    num_threads=self.num_sub_threads,
                    daemon=self.daemon,
                )
                self._workers.append(w)
                w.start()
                self._pids.append(w.pid)
            # the specs' tensors arrive in shared memory (pickled through the pipe): copies
            # in this process's memory map nothing and outlive the workers
            metas = copy.deepcopy(self._gather("meta"))
            self._set_meta(metas)
            n = self.num_workers
            self._io.share_memory_()  # (the root rows too: resets write them)
            # per worker: [command, t, steps, break_when_any_done, slot] (see _STEP_INTO)
            self._cmd = torch.zeros(n, 5, dtype=torch.int32).share_memory_()
            self._cmd_np = self._cmd.numpy()
            # the parent's CPU, then each polling worker's (see _STEP_INTO)
            self._where = torch.full((n + 1,), -1, dtype=torch.int32).share_memory_()
            self._where_np = self._where.numpy()
            self._gather("setup", per_worker=[
                (i, self._io, self._cmd, self._where, self.spin_wait) for i in range(n)
            ])
            self._channels, self._serving = channels, [False] * n
            if not self.daemon:
                # non-daemon workers would keep the interpreter waiting at exit (the
                # multiprocessing exit hook joins them): stop them first
                self._finalizer = weakref.finalize(
                    self, _close_workers, self._workers, channels, self._cmd_np, self._serving,
                    self.shutdown_timeout,
                )
        except BaseException:
            self._stop_workers()
            self._workers, self._pids = [], []  # a later call may try again from scratch
            raise

    def _command(self, code: int, method: str, workers: Sequence[int] | None = None) -> None:
        """Run ``method`` (no arguments) in the workers through the per-step channel (the
        pipe where there is none); every reply is collected before the first error."""
        if self._channels is None:
            self._gather(method, workers=workers)
            return
        idx = range(self.num_workers) if workers is None else workers
        cmd = self._cmd_np
        self._where_np[0] = current_cpu()
        for i in idx:
            if not self._serving[i]:
                try:
                    self._workers[i].send("serve")
                except WorkerDiedError:
                    self._fail()
                    raise
                self._serving[i] = True
            cmd[i, 0] = code
            self._channels[i][0].release()
        self._collect_replies(idx)

    def _collect_replies(self, idx: Sequence[int]) -> None:
        error = None
        for i in idx:
            try:
                self._wait_reply(i)
            except (WorkerDiedError, RemoteError, TimeoutError) as exc:
                error = error or exc
        self._where_np[0] = current_cpu()  # where the parent goes on (to run the policy)
        self._raise(error)

    def _raise(self, error: BaseException | None) -> None:
        """Raise the first error of a round of replies; a dead or hung worker closes the env."""
        if isinstance(error, WorkerDiedError | TimeoutError):
            self._fail()
        if error is not None:
            raise error

    def _wait_reply(self, i: int) -> None:
        rep, w = self._channels[i][1], self._workers[i]
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        if not (self.spin_wait and self._poll_reply(rep, w, deadline)):
            self._sleep_for_reply(i, rep, w, deadline)
        if self._cmd_np[i, 0] == _FAILED:
            self._serving[i] = False
            w.recv()  # the command's exception (RemoteError)

    def _poll_reply(self, rep: Any, w: Worker, deadline: float | None) -> bool:
        """Poll for the reply for up to ``spin_wait`` (not past ``deadline``); every
        millisecond, stop if the worker's pipe has something (it failed or died) or another
        worker died (see :meth:`_check_others`)."""
        clock = time.perf_counter
        now = clock()
        end = now + self.spin_wait
        if deadline is not None:
            end = min(end, now + (deadline - time.monotonic()))
        check = now + 1e-3
        while True:
            if rep.acquire(False):
                return True
            now = clock()
            if now > end:
                return False
            if now > check:
                if w.poll() or not all(o.is_alive() for o in self._workers):
                    return False
                check = now + 1e-3

    def _sleep_for_reply(self, i: int, rep: Any, w: Worker, deadline: float | None) -> None:
        while not rep.acquire(True, 0.05):
            if w.poll():  # the serve loop ended (an error) or the process died
                self._serving[i] = False
                w.recv()  # raises RemoteError / WorkerDiedError
                raise RuntimeError(f"worker {w.name!r} left its command loop unexpectedly")
            self._check_others(w)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"worker {w.name!r} did not reply within {self.timeout} s")

    def _check_others(self, w: Worker) -> None:
        """While waiting for ``w``: another worker that died fails the whole command now, not
        after ``w``'s steps (a long step_into would otherwise hide it until the end)."""
        dead = next((o for o in self._workers if o is not w and not o.is_alive()), None)
        if dead is not None:
            raise dead.death()

    def _recv(self, i: int) -> Any:
        """Worker ``i``'s reply through its pipe (see :meth:`_check_others`)."""
        w = self._workers[i]
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not w.poll(0.05):
            self._check_others(w)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"worker {w.name!r} did not reply within {self.timeout} s")
        return w.recv()

    def _stop_serving(self) -> None:
        """Return the workers from the channel's command loop to the pipe's."""
        idx = [i for i, on in enumerate(self._serving) if on]
        if not idx:
            return
        for i in idx:
            self._cmd_np[i, 0] = _STOP
            self._channels[i][0].release()
        self._collect_replies(idx)
        error = None
        for i in idx:
            self._serving[i] = False
            try:
                self._workers[i].recv(timeout=self.timeout)  # serve()'s own reply
            except (WorkerDiedError, RemoteError, TimeoutError) as exc:
                error = error or exc
        self._raise(error)

    def _gather(
        self,
        method: str | None,
        *args: Any,
        workers: Sequence[int] | None = None,
        per_worker: Sequence[tuple] | None = None,
    ) -> list:
        """Send ``method`` to the workers (None: only collect pending replies) and return
        their replies; every reply is collected before the first error is raised.
        ``per_worker[i]`` replaces ``args`` for worker ``i``."""
        idx = range(self.num_workers) if workers is None else workers
        if any(self._serving):
            self._stop_serving()
        if method is not None:
            for i in idx:
                try:
                    call_args = args if per_worker is None else per_worker[i]
                    self._workers[i].send(method, *call_args)
                except WorkerDiedError:
                    self._fail()
                    raise
        out, error = [], None
        for i in idx:
            try:
                out.append(self._recv(i))
            except (WorkerDiedError, RemoteError, TimeoutError) as exc:
                error = error or exc
                out.append(None)
        self._raise(error)
        return out

    def _fail(self) -> None:
        # a dead or hung worker leaves the batch inconsistent: stop everything (quickly:
        # the hung one is terminated), refuse further use
        self._stop_workers(timeout=0.2)
        self._closed = True

    def _stop_workers(self, timeout: float = 1.0) -> None:
        _close_workers(
            self._workers, self._channels, self.__dict__.get("_cmd_np"), self._serving, timeout
        )

    @property
    def worker_pids(self) -> list[int | None]:
        """Process ids of the workers (empty before start; kept after close)."""
        return list(self._pids)

    def __getstate__(self) -> dict:
        # workers and pipes belong to this process: only an unstarted env can travel
        if self._started and not self._closed:
            raise TypeError(
                "a started ParallelEnv cannot be pickled; pickle it before its first use, or "
                "send its create_env_fn (e.g. an EnvCreator) instead"
            )
        return dict(self.__dict__)

    # ----------------------------------------------------------- EnvBase hooks
    def _check_open(self) -> None:
        if self._closed:
            raise EnvClosedError("ParallelEnv is closed (its workers are stopped)")

    def _seed_rows(self, rows: list[int], seeds: list[int | None]) -> None:
        self._gather("set_seed", workers=rows, per_worker=self._per_worker(rows, seeds))

    def _per_worker(self, rows: list[int] | None, values: list) -> list[tuple]:
        """``_gather``'s per-worker arguments (indexed by worker) of ``values`` for ``rows``."""
        if rows is None:
            return [(v,) for v in values]
        out: list[tuple] = [()] * self.num_workers
        for i, v in zip(rows, values, strict=True):
            out[i] = (v,)
        return out

    def _reset_rows(self, rows: list[int]) -> None:
        self._command(_RESET, "reset", workers=rows)

    def _step_io(self, rows: list[int] | None = None) -> None:
        self._command(_STEP_IO, "step_io", workers=rows)

    def _new_scratch(self) -> StepBuffers:
        return self._register(_SCRATCH, super()._new_scratch())

    def step_buffers(self, T: int) -> StepBuffers | None:
        """Shared-memory buffers the workers write into, kept from call to call (handed to
        the workers again only when ``T`` changes): batches are copied out of them."""
        self._ensure_started()
        bufs = self._slots.get(_COLLECT)
        if bufs is not None and bufs.T == T:
            return bufs
        bufs = super().step_buffers(T)
        return None if bufs is None else self._register(_COLLECT, bufs)

    def _register(self, slot: int, bufs: StepBuffers) -> StepBuffers:
        bufs.share_memory_()
        args = (slot, bufs.tensors(), self.batch_size)
        self._gather("set_buffers", per_worker=[args] * self.num_workers)
        self._slots[slot] = bufs
        return bufs

    def _step_rows(
        self, buffers: StepBuffers, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        slot = next((k for k, b in self._slots.items() if b is buffers), None)
        if slot is None:
            raise ValueError(
                "ParallelEnv.step_into needs buffers from its own step_buffers() (the workers "
                "write into shared memory); found other buffers"
            )
        if not break_when_any_done:
            self._step_workers(slot, t, steps, False)
            return steps
        # in lockstep: every worker takes step i before any takes step i + 1
        for k in range(steps):
            if self._step_workers(slot, t + k, 1, True):
                return k + 1
        return steps

    def _step_workers(self, slot: int, t: int, steps: int, brk: bool) -> bool:
        """One step_into command to every worker; returns whether any last step was done."""
        if self._channels is None:
            replies = self._gather("step_into", slot, t, steps, brk)
            return any(done for _, done in replies)
        cmd = self._cmd_np
        cmd[:, 1:] = (t, steps, brk, slot)
        self._command(_STEP_INTO, "step_into")
        return any(cmd[:, 2].tolist())  # (cheaper than numpy's any for a few envs)

    def _sub_states(self, rows: list[int] | None = None) -> list[dict]:
        try:
            return self._gather("capture_state", workers=rows)
        except RemoteError as exc:
            if exc.remote_type == "NotImplementedError":
                raise NotImplementedError(f"{exc.worker_name}: {exc.remote_message}") from exc
            raise

    def _check_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        try:
            self._gather("check_state", workers=rows, per_worker=self._per_worker(rows, states))
        except RemoteError as exc:
            if exc.remote_type in ("TypeError", "ValueError", "NotImplementedError"):
                raise ValueError(f"{exc.worker_name}: {exc.remote_message}") from exc
            raise

    def _restore_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        self._gather("restore_state", workers=rows, per_worker=self._per_worker(rows, states))

    def _close(self) -> None:
        self._stop_workers(timeout=self.shutdown_timeout)
        self._release_shared()

    def _release_shared(self) -> None:
        """Drop this env's references to its shared memory (step buffers, IO rows, command
        rows, semaphores) once the workers are stopped: a closed env that something still
        refers to maps none of it. Batches handed out were copied out of the buffers, and
        what a caller holds of ``step()``'s output stays the caller's."""
        finalizer = self.__dict__.pop("_finalizer", None)
        if finalizer is not None:
            finalizer.detach()  # the workers are stopped: nothing left for exit to do
        self._workers = []  # (each holds its channel through its target)
        self._slots.clear()
        self._pending = None  # (the buffers of the last rollout's resets still to come)
        self._scratch = None
        self.__dict__.pop("_scratch_views", None)
        self._channels = None
        # the carried entries (shared with the IO rows) keep their values in private memory
        self._state = {k: v.clone() for k, v in self._state.items()}
        for name in ("_cmd", "_cmd_np", "_where", "_where_np"):
            self.__dict__.pop(name, None)
        if self._started:  # (its IO rows were moved into shared memory at the start)
            self._io = None

    def __repr__(self) -> str:
        return (
            f"ParallelEnv(num_workers={self.num_workers}, batch_size={self.batch_size}, "
            f"device={self.device})"
        )
