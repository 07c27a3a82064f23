"""ParallelEnv: N envs, each in its own worker process, exchanging data through shared memory."""

from __future__ import annotations

import functools
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl._mp import Worker, default_start_method
from streamrl.envs._fast import (
    FLAGS,
    CollectBuffers,
    RolloutBuffers,
    collect_row,
    row_views,
    run_env,
    supports_fast,
)
from streamrl.envs.batched import _BatchedEnv, td_from_keys
from streamrl.envs.common import EnvBase, EnvClosedError
from streamrl.errors import RemoteError, WorkerDiedError

__all__ = ["ParallelEnv"]

# Commands of the per-step channel (a pair of semaphores per worker and one shared int32 slot):
# the parent writes the command into the worker's slot and releases the worker's request
# semaphore; the worker runs it and releases the reply semaphore (a failed command leaves
# FAILED in the slot and its exception travels back through the pipe). A semaphore round trip
# costs a few microseconds against tens for a pipe message (measured: 11 vs 40 us for two
# workers on a 2-core machine), and nothing is pickled.
_STEP, _COLLECT, _RESET, _STOP, _COLLECT_INTO, _FAILED = 1, 2, 3, 4, 5, -1


class _EnvServer:
    """Runs in a worker process: one env, reading actions from and writing results to
    shared buffers (row ``index``); only method names and small values cross the pipe."""

    def __init__(
        self, create_env_fn: Callable[..., EnvBase], kwargs: dict, channel: tuple | None = None
    ) -> None:
        self.channel = channel
        self.env = create_env_fn(**kwargs)
        if not isinstance(self.env, EnvBase):
            raise TypeError(
                f"create_env_fn must return an EnvBase, found {type(self.env).__name__}"
            )
        self.fast = supports_fast(self.env)

    def meta(self) -> dict:
        return _BatchedEnv._meta_of(self.env)

    def setup(self, index: int, bufs: dict) -> None:
        self.i = index
        self.action = bufs["action"]
        self.next = bufs["next"]
        self.state = bufs["state"]
        self.next_np = {k: v[index].numpy() for k, v in self.next.items()}
        self.state_np = {k: v[index].numpy() for k, v in self.state.items()}
        self.obs_keys = [k for k in self.state if k not in FLAGS]
        self.cmd = bufs["cmd"].numpy()

    def serve(self) -> None:
        """Run commands from the per-step channel until ``_STOP`` (see ``_STEP``)."""
        req, rep = self.channel
        cmd, i = self.cmd, self.i
        handlers = {
            _STEP: self.step,
            _COLLECT: self.collect_step,
            _RESET: self.reset,
            _COLLECT_INTO: self.collect_into,
        }
        while True:
            req.acquire()
            code = int(cmd[i, 0])
            if code == _STOP:
                rep.release()
                return
            try:
                handlers[code]()
            except BaseException:
                cmd[i, 0] = _FAILED  # the exception is this call's reply, through the pipe
                rep.release()
                raise
            rep.release()

    def set_seed(self, seed: int | None) -> None:
        self.env.set_seed(seed)

    def reset(self) -> None:
        i, st = self.i, self.state_np
        if self.fast:
            obs = self.env._np_reset()
            for k in self.obs_keys:
                st[k][...] = obs[k]
        else:
            out = self.env.reset()
            for k in self.obs_keys:
                self.state[k][i].copy_(out.get(k))
        for k in FLAGS:
            st[k][...] = False

    def step(self) -> None:
        nx, st = self.next_np, self.state_np
        if self.fast:
            native = self.env._native_actions(self.action[self.i])
            obs, r, te, tr = self.env._np_step(native)
            for k in self.obs_keys:
                nx[k][...] = obs[k]
                st[k][...] = obs[k]
            nx["reward"][...] = r
            nx["terminated"][...] = st["terminated"][...] = te
            nx["truncated"][...] = st["truncated"][...] = tr
            nx["done"][...] = st["done"][...] = te or tr
            return
        src = {k: v[self.i].clone() for k, v in self.state.items()}
        src["action"] = self.action[self.i].clone()
        td = TensorDict(batch_size=self.env.batch_size)
        for k, v in src.items():
            td.set(k, v)
        out = self.env.step(td).get("next")
        for k, buf in self.next.items():
            buf[self.i].copy_(out.get(k))
        for k, buf in self.state.items():
            buf[self.i].copy_(out.get(k))

    def collect_step(self) -> None:
        """``step`` then, if done, reset: the state row holds the next root observation
        (flags False), the next row the step's results. One round trip per step."""
        nx, st = self.next_np, self.state_np
        obs, r, te, tr = self.env._np_step(self.env._native_actions(self.action[self.i]))
        for k in self.obs_keys:
            nx[k][...] = obs[k]
        nx["reward"][...] = r
        nx["terminated"][...] = te
        nx["truncated"][...] = tr
        nx["done"][...] = te or tr
        if te or tr:
            obs = self.env._np_reset()
        for k in self.obs_keys:
            st[k][...] = obs[k]
        for k in FLAGS:
            st[k][...] = False

    def set_collect_buffers(self, tensors: dict) -> None:
        """Shared ``[N, T]`` collection buffers that ``collect_into`` writes this env's row of."""
        self.collect_views = row_views(tensors, self.i)

    def collect_into(self) -> None:
        """``collect_row`` at the step index in the command slot; writes done back there."""
        i = self.i
        t = int(self.cmd[i, 1])
        native = self.env._native_actions(self.action[i])
        self.cmd[i, 1] = collect_row(self.env, native, self.collect_views, t)

    def rollout(self, tensors: dict, actions: torch.Tensor, T: int) -> None:
        i = self.i
        views = row_views(tensors, i)
        _, obs, was_reset = run_env(self.env, self.env._native_actions(actions[i]), views, T, False)
        st = self.state_np
        for k in self.obs_keys:
            st[k][...] = obs[k]
        te = bool(views["terminated"][T - 1]) and not was_reset
        tr = bool(views["truncated"][T - 1]) and not was_reset
        st["terminated"][...] = te
        st["truncated"][...] = tr
        st["done"][...] = te or tr

    def close(self) -> None:
        self.env.close()


class ParallelEnv(_BatchedEnv):
    """N envs, each stepped in its own worker process; batch size ``[N]``.

    The workers write their results into shared-memory buffers of shape ``[N, ...]``. With
    the fork start method (Linux's default) each step, reset or collected step is one command
    through a semaphore pair per worker (a few microseconds; nothing pickled); other calls,
    and every call with spawn/forkserver, go through pipes as method names. A rollout with
    random actions and ``break_when_any_done=False`` runs entirely inside the workers (each
    writes its own ``[T, ...]`` block); a collector's or ``rollout(policy=...)``'s steps are
    written by the workers straight into shared ``[N, T]`` batch buffers. Done sub-envs are reset as in :class:`SerialEnv`; given the same
    seeds both produce identical rollouts.

    A worker that dies raises :class:`~streamrl.errors.WorkerDiedError` (the env is then
    closed); an exception inside a sub-env is re-raised as
    :class:`~streamrl.errors.RemoteError`. ``close()`` stops every worker process.

    Args:
        num_workers: number of sub-envs (one process each).
        create_env_fn: a callable building one env (or a list of N); lambdas are fine.
        create_env_kwargs: keyword arguments for the callable(s).
        mp_start_method: ``"fork"``, ``"spawn"`` or ``"forkserver"`` (default: fork on
            Linux).
        num_threads: torch threads in each worker.
        timeout: seconds to wait for a worker's reply before raising ``TimeoutError`` (and
            closing the env); None waits as long as the worker lives. A worker that dies is
            reported at once either way.
        spin_wait: seconds this process polls for a worker's reply to a step before it
            sleeps (with the fork start method, where steps go through semaphores). Waking a
            sleeping process costs tens of microseconds, more on virtual machines: polling
            briefly makes lockstep stepping markedly faster (measured on a 2-core VM with a
            policy: about 9k -> 15k frames/s for two workers) at the cost of that CPU time;
            0 never polls.

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> with ParallelEnv(2, lambda: GymEnv("Pendulum-v1")) as env:
    ...     env.rollout(3)["next", "observation"].shape
    torch.Size([2, 3, 3])
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: Callable[..., EnvBase] | Sequence[Callable[..., EnvBase]],
        create_env_kwargs: dict | Sequence[dict] | None = None,
        mp_start_method: str | None = None,
        num_threads: int = 1,
        device: Any = None,
        timeout: float | None = None,
        spin_wait: float = 2e-4,
    ) -> None:
        super().__init__(num_workers, create_env_fn, create_env_kwargs, device=device)
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
        self._workers: list[Worker] = []
        self._pids: list[int | None] = []
        self._channels: list | None = None
        self._serving: list[bool] = []
        self._shared_collect: CollectBuffers | None = None

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
        try:
            for i, (fn, kw) in enumerate(
                zip(self.create_env_fn, self.create_env_kwargs, strict=True)
            ):
                w = Worker(
                    functools.partial(_EnvServer, fn, kw, channels and channels[i]),
                    name=f"ParallelEnv-{i}",
                    start_method=self.mp_start_method,
                    num_threads=self.num_threads,
                )
                self._workers.append(w)
                w.start()
                self._pids.append(w.pid)
            metas = self._gather("meta")
            if any(m["full_state_spec"].keys(True, True) for m in metas):
                raise NotImplementedError("ParallelEnv does not support envs with a state_spec")
            self._set_meta(metas)
            self._fast = all(m["fast"] for m in metas)
            n = self.num_workers
            self._action_buf = self._full_action_spec["action"].zero().share_memory_()
            self._next_bufs = {k: s.zero().share_memory_() for k, s in self._obs_specs.items()}
            self._next_bufs["reward"] = self._full_reward_spec["reward"].zero().share_memory_()
            for k in FLAGS:
                flag = torch.zeros((*self.batch_size, 1), dtype=torch.bool)
                self._next_bufs[k] = flag.share_memory_()
            for v in self._state.values():
                v.share_memory_()
            # per worker: [command, argument/result] (collect_into: step index in, done out)
            self._cmd = torch.zeros(n, 2, dtype=torch.int32).share_memory_()
            self._cmd_np = self._cmd.numpy()
            bufs = {
                "action": self._action_buf,
                "next": self._next_bufs,
                "state": self._state,
                "cmd": self._cmd,
            }
            self._gather("setup", per_worker=[(i, bufs) for i in range(n)])
            self._channels, self._serving = channels, [False] * n
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
        if isinstance(error, WorkerDiedError | TimeoutError):
            self._fail()
        if error is not None:
            raise error

    def _wait_reply(self, i: int) -> None:
        rep, w = self._channels[i][1], self._workers[i]
        if not (self.spin_wait and self._poll_reply(rep)):
            self._sleep_for_reply(i, rep, w)
        if self._cmd_np[i, 0] == _FAILED:
            self._serving[i] = False
            w.recv()  # the command's exception (RemoteError)

    def _poll_reply(self, rep: Any) -> bool:
        end = time.perf_counter() + self.spin_wait
        while True:
            if rep.acquire(False):
                return True
            if time.perf_counter() > end:
                return False

    def _sleep_for_reply(self, i: int, rep: Any, w: Worker) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not rep.acquire(True, 0.05):
            if w.poll():  # the serve loop ended (an error) or the process died
                self._serving[i] = False
                w.recv()  # raises RemoteError / WorkerDiedError
                raise RuntimeError(f"worker {w.name!r} left its command loop unexpectedly")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"worker {w.name!r} did not reply within {self.timeout} s")

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
        if isinstance(error, WorkerDiedError | TimeoutError):
            self._fail()
        if error is not None:
            raise error

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
                out.append(self._workers[i].recv(timeout=self.timeout))
            except (WorkerDiedError, RemoteError, TimeoutError) as exc:
                error = error or exc
                out.append(None)
        if isinstance(error, WorkerDiedError | TimeoutError):
            self._fail()
        if error is not None:
            raise error
        return out

    def _fail(self) -> None:
        # a dead or hung worker leaves the batch inconsistent: stop everything (quickly:
        # the hung one is terminated), refuse further use
        self._stop_workers(timeout=0.2)
        self._closed = True

    def _stop_workers(self, timeout: float = 1.0) -> None:
        # workers in the channel's command loop: end it, so that they read the pipe's stop
        for i, on in enumerate(self._serving):
            if on:
                self._serving[i] = False
                self._cmd_np[i, 0] = _STOP
                self._channels[i][0].release()
        for w in self._workers:
            try:
                w.close(timeout=timeout)
            except Exception:
                pass

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

    def _set_seed(self, seed: int | None) -> None:
        stride = self._seed_stride
        seeds = [(None if seed is None else seed + i * stride,) for i in range(self.num_workers)]
        self._gather("set_seed", per_worker=seeds)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        self._ensure_started()
        self._command(_RESET, "reset", workers=self._reset_mask(tensordict))
        return self._state_td()

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self._action_buf.copy_(tensordict.get("action"))
        if not self._fast:
            # generic sub-envs read their root row (e.g. a step counter) from the state
            for k, buf in self._state.items():
                val = tensordict.get(k, None)
                if val is not None:
                    buf.copy_(val)
        self._command(_STEP, "step")
        out = {k: v.clone() for k, v in self._next_bufs.items()}
        return td_from_keys(out, self.batch_size)

    def _rollout_fast(
        self, tensordict: TensorDictBase, max_steps: int, break_when_any_done: bool
    ) -> TensorDictBase | None:
        # with break_when_any_done the sub-envs must stop together: use the lockstep loop
        if break_when_any_done or not self._rollout_ok(tensordict):
            return None
        T = max_steps
        bufs = RolloutBuffers(
            self._obs_specs,
            self._full_reward_spec["reward"].dtype,
            (self.num_workers,),
            T,
            share=True,
        )
        actions = self._rollout_actions(T).share_memory_()
        for k in self._obs_keys:
            bufs.root[k][:, 0] = tensordict.get(k)
        self._gather("rollout", bufs.tensors(), actions, T)
        return bufs.to_tensordict(T, actions, tensordict)

    def _collect_buffers(self, T: int) -> CollectBuffers | None:
        bufs = super()._collect_buffers(T)
        if bufs is None or self._channels is None:
            return bufs
        # with the channel the workers write straight into shared buffers, kept from batch to
        # batch (handed to the workers once per length T); batches are copied out of them
        shared = self._shared_collect
        if shared is None or shared.T != T:
            shared = bufs.share_memory_()
            self._gather("set_collect_buffers", per_worker=[(shared.tensors(),)] * self.num_workers)
            self._shared_collect = shared
        else:  # collect_row writes the flags of done steps only
            shared.terminated.zero_()
            shared.truncated.zero_()
        return shared

    def _collect_step(self, action: torch.Tensor, bufs: Any, t: int) -> bool:
        self._action_buf.copy_(action)
        if bufs is self._shared_collect:
            cmd = self._cmd_np
            cmd[:, 1] = t
            self._command(_COLLECT_INTO, "collect_into")
            return any(cmd[:, 1].tolist())  # (cheaper than numpy's any for a few envs)
        self._command(_COLLECT, "collect_step")
        nx, st = self._next_bufs, self._state
        cols = bufs.columns()
        for k in self._obs_keys:
            cols["next"][k][t].copy_(nx[k])
            cols["root"][k][t + 1].copy_(st[k])
        cols["reward"][t].copy_(nx["reward"])
        cols["terminated"][t].copy_(nx["terminated"])
        cols["truncated"][t].copy_(nx["truncated"])
        return bool(nx["done"].any())

    def _collect_end(self, bufs: Any) -> None:
        if bufs is self._shared_collect:  # the workers' state rows were not written
            self._collect_end_state(bufs)

    def _close(self) -> None:
        self._stop_workers()

    def __repr__(self) -> str:
        return (
            f"ParallelEnv(num_workers={self.num_workers}, batch_size={self.batch_size}, "
            f"device={self.device})"
        )
