"""Faults of batched envs and collectors: an env that raises, a worker killed mid-step, a loop
left early, shutdowns repeated or too early.

Promises:

* an exception in a sub-env's constructor, ``reset`` or ``step`` reaches the caller of
  SerialEnv / ParallelEnv / SyncDataCollector / MultiSyncDataCollector /
  MultiaSyncDataCollector with the original message (the worker or operator named where one
  is involved); once the env is closed / the collector shut down no thread or child process
  is left, and once it is released no file descriptor, shared-memory mapping or
  ``/dev/shm`` entry either (a closed object still referenced may keep its shared buffers);
* a worker process killed while it steps its env: ParallelEnv raises ``WorkerDiedError``
  naming the worker and closes itself, a multi-process collector raises an ``OperatorError``
  caused by ``WorkerDiedError``; within 5 s, nothing left;
* ``break`` out of a collector's loop, without ``shutdown()``, stops its collection: no
  thread or process left running; ``shutdown()`` may then be called twice, or before any iteration.
"""

from __future__ import annotations

import functools
import gc
import os
import signal
import threading
import time

import gymnasium as gym
import pytest

from streamrl.collectors import (
    MultiaSyncDataCollector,
    MultiSyncDataCollector,
    SyncDataCollector,
)
from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.common import EnvClosedError
from streamrl.envs.libs.gym import GymWrapper
from streamrl.errors import RemoteError, WorkerDiedError
from streamrl.graph import OperatorError
from streamrl.testing import Resources, check_no_leaks, descendants

CONTAINERS = ("SerialEnv", "ParallelEnv", "SyncDataCollector", "MultiSyncDataCollector",
              "MultiaSyncDataCollector")
FAULTS = ("constructor", "reset", "step")


class Injected(Exception):
    """The injected fault."""


class _Faulty(gym.Wrapper):
    """CartPole that raises :class:`Injected` in ``reset`` or at its 3rd ``step`` (``fail_in``),
    or sleeps ``step_delay`` seconds in each step."""

    def __init__(self, fail_in: str | None, step_delay: float):
        super().__init__(gym.make("CartPole-v1"))
        self.fail_in, self.step_delay, self.steps = fail_in, step_delay, 0

    def reset(self, **kwargs):
        if self.fail_in == "reset":
            raise Injected("injected reset fault")
        return super().reset(**kwargs)

    def step(self, action):
        self.steps += 1
        if self.fail_in == "step" and self.steps == 3:
            raise Injected("injected step fault")
        time.sleep(self.step_delay)
        return super().step(action)


def make_env(fail_in: str | None = None, step_delay: float = 0.0):
    if fail_in == "constructor":
        raise Injected("injected constructor fault")
    return GymWrapper(_Faulty(fail_in, step_delay))


# while a closed env or shut-down collector is still referenced it may keep its shared memory
# (buffers, semaphores, counters); what must be gone at once is everything that runs
RUNNING_ONLY = ("fds", "shm_maps", "shm_files")


def _exercise(container: str, fn) -> tuple[object | None, BaseException | None]:
    """Build ``container`` over two envs (a healthy one and one from ``fn``) and use it;
    returns the object (None if building it failed) and the error raised (or None)."""
    fns = [make_env, fn]
    obj = None
    try:
        if container in ("SerialEnv", "ParallelEnv"):
            obj = (SerialEnv if container == "SerialEnv" else ParallelEnv)(2, fns)
            obj.rollout(10, break_when_any_done=False)
        elif container == "SyncDataCollector":
            obj = SyncDataCollector(lambda: SerialEnv(2, fns), None, frames_per_batch=20,
                                    total_frames=60)
            for _ in obj:
                pass
        else:
            cls = MultiSyncDataCollector if container == "MultiSyncDataCollector" else (
                MultiaSyncDataCollector)
            obj = cls(fns, None, frames_per_batch=20, total_frames=60)
            for _ in obj:
                pass
    except Exception as exc:
        return obj, exc
    return obj, None


def _close(obj) -> None:
    if obj is None:
        return
    if hasattr(obj, "shutdown"):
        obj.shutdown()
    else:
        obj.close()


def _expected(container: str):
    """The error type the container raises, and the name it must mention (or None)."""
    if container == "ParallelEnv":
        return RemoteError, "ParallelEnv-1"
    if container.startswith("Multi"):
        return OperatorError, "rollout1"
    if container == "SyncDataCollector":
        return OperatorError, "rollout"
    return Injected, None


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("container", CONTAINERS)
def test_an_env_fault_is_raised_and_nothing_is_left(container, fault):
    """fault: the second sub-env raises in its constructor / reset / 3rd step. promise: the
    caller gets the error with the original message (and the worker or operator named);
    once closed / shut down nothing runs, once released nothing is held. check: type,
    message; resource counts."""
    before = Resources.snapshot()
    error_type, named = _expected(container)
    obj, error = _exercise(container, functools.partial(make_env, fault))
    assert isinstance(error, error_type), repr(error)
    message = str(error)
    assert f"injected {fault} fault" in message, message
    if named is not None:
        assert named in message, message
    _close(obj)
    check_no_leaks(before, timeout=5.0, ignore=RUNNING_ONLY)
    del obj, error
    check_no_leaks(before, timeout=5.0)


# ---------------------------------------------------------------- a worker killed mid-step


def _kill_one_worker_soon(pids: list[int], after: float) -> threading.Thread:
    def kill():
        time.sleep(after)
        os.kill(pids[-1], signal.SIGKILL)

    t = threading.Thread(target=kill)
    t.start()
    return t


@pytest.mark.parametrize("start_method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_a_parallel_env_worker_killed_mid_step(start_method):
    """fault: SIGKILL of a ParallelEnv worker while its env steps (each step sleeps 20 ms), the
    other worker still stepping (fork: semaphore channel; spawn: pipes). promise:
    WorkerDiedError naming the worker within 5 s; the env closes itself; nothing left.
    check: type, name, timing, is_closed; resource counts."""
    before = Resources.snapshot()
    slow = functools.partial(make_env, None, 0.02)
    env = ParallelEnv(2, [slow, slow], mp_start_method=start_method)
    env.reset()
    killer = _kill_one_worker_soon(env.worker_pids, 0.3)
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError, match="ParallelEnv-1") as info:
        env.rollout(10_000, break_when_any_done=False)
    killer.join()
    assert time.monotonic() - t0 < 0.3 + 5.0
    assert info.value.exitcode == -signal.SIGKILL
    assert env.is_closed
    check_no_leaks(before, timeout=5.0, ignore=RUNNING_ONLY)
    del env, info
    check_no_leaks(before, timeout=5.0)


@pytest.mark.parametrize("cls", [MultiSyncDataCollector, MultiaSyncDataCollector])
def test_a_collector_worker_killed_mid_step(cls):
    """fault: SIGKILL of one of a multi-process collector's workers while it collects.
    promise: OperatorError caused by WorkerDiedError, within 5 s; nothing left after shutdown.
    check: type, cause, timing; resource counts."""
    before = Resources.snapshot()
    slow = functools.partial(make_env, None, 0.005)
    c = cls([slow, slow], None, frames_per_batch=20, total_frames=-1)
    older = set(descendants())  # (e.g. a forkserver an earlier test started)
    killed: list[float] = []
    with pytest.raises(OperatorError) as info:
        for i, _ in enumerate(c):
            if i == 1:
                workers = sorted(set(descendants()) - older)
                assert len(workers) == 2, workers
                killed.append(time.monotonic())
                os.kill(workers[-1], signal.SIGKILL)
    assert time.monotonic() - killed[0] < 5.0
    assert isinstance(info.value.__cause__, WorkerDiedError), repr(info.value.__cause__)
    assert info.value.operator.startswith("rollout")
    c.shutdown()
    check_no_leaks(before, timeout=5.0, ignore=RUNNING_ONLY)
    del c, info
    check_no_leaks(before, timeout=5.0)


# ---------------------------------------------------------------- leaving and shutting down


COLLECTORS = {
    "SyncDataCollector": lambda: SyncDataCollector(make_env, None, frames_per_batch=20,
                                                   total_frames=-1),
    "MultiSyncDataCollector": lambda: MultiSyncDataCollector(
        [make_env, make_env], None, frames_per_batch=20, total_frames=-1),
    "MultiaSyncDataCollector": lambda: MultiaSyncDataCollector(
        [make_env, make_env], None, frames_per_batch=20, total_frames=-1),
}


@pytest.mark.parametrize("name", sorted(COLLECTORS))
def test_break_without_shutdown_stops_collecting(name):
    """fault: the loop over an endless collector is left with ``break``, without shutdown().
    promise: collection stops; nothing left running; shutdown() afterwards, twice, is clean
    and iterating again says it is shut down. check: resource counts before shutdown()."""
    before = Resources.snapshot()
    c = COLLECTORS[name]()
    for i, batch in enumerate(c):
        assert batch.numel() == 20
        if i == 2:
            break
    check_no_leaks(before, timeout=5.0, ignore=RUNNING_ONLY)
    c.shutdown()
    c.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        next(iter(c))
    del c, batch
    check_no_leaks(before, timeout=5.0)


@pytest.mark.parametrize("name", sorted(COLLECTORS))
def test_shutdown_before_iterating_is_clean(name):
    """fault: shutdown() (twice) on a collector never iterated. promise: no error, nothing
    left. check: resource counts."""
    before = Resources.snapshot()
    c = COLLECTORS[name]()
    c.shutdown()
    c.shutdown()
    check_no_leaks(before, timeout=5.0, ignore=RUNNING_ONLY)
    del c
    check_no_leaks(before, timeout=5.0)


@pytest.mark.parametrize("cls", [SerialEnv, ParallelEnv])
def test_close_twice_or_before_use_is_clean(cls):
    """fault: close() twice, on a used env and on one never used. promise: no error, nothing
    left. check: resource counts."""
    before = Resources.snapshot()
    used, unused = cls(2, make_env), cls(2, make_env)
    used.rollout(3)
    for env in (used, unused):
        env.close()
        env.close()
    check_no_leaks(before, timeout=5.0, ignore=RUNNING_ONLY)
    del used, unused, env
    check_no_leaks(before, timeout=5.0)


def _cartpole():
    return GymWrapper(gym.make("CartPole-v1"))


@pytest.mark.parametrize("daemon", [True, False])
def test_a_closed_env_still_referenced_maps_no_shared_memory(daemon):
    before = Resources.snapshot()
    env = ParallelEnv(2, _cartpole, daemon=daemon)
    batch = env.rollout(30, break_when_any_done=False)
    env.rollout(10, lambda td: td.set("action", env.action_spec.rand()),
                break_when_any_done=False)
    stepped = env.rand_step(env.reset())
    assert Resources.snapshot().new_since(before).get("shm_maps")  # buffers, rows, semaphores
    env.close()
    gc.collect()
    assert not Resources.snapshot().new_since(before).get("shm_maps")
    # what was handed out keeps its values; the env keeps its specs and refuses to step
    assert batch["next", "observation"].shape == (2, 30, 4)
    assert stepped["next", "observation"].shape == (2, 4)
    assert env.observation_spec["observation"].shape == (2, 4)
    with pytest.raises(EnvClosedError):
        env.rollout(3)
