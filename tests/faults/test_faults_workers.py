"""Faults of worker processes (streamrl._mp.Worker, under ParallelEnv, the graph's process
placement and the multi-process collectors).

Promises:

* a worker exits when its parent process dies, however the parent dies (SIGKILL included) and
  whatever the start method, also when it was started from a short-lived thread;
* a worker started from a short-lived thread outlives that thread (it is not killed when the
  thread that forked it exits);
* a worker exits on SIGTERM, even when the parent had SIGTERM ignored or handled (e.g. by
  SDL, which pygame rendering installs);
* a process that renders a pixel GymEnv and then starts a fork ParallelEnv exits normally;
* a worker killed while it moved a tensor into shared memory (between torch creating the
  ``/dev/shm`` entry and unlinking it) leaves no entry once closed; entries of other
  processes are not touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from streamrl._mp import Worker
from streamrl.testing import pid_alive

# Creates workers of the kinds named in argv[1] (comma separated), prints the pids of every
# process below it as one JSON line, then waits to be killed.
_PARENT = r"""
import json, sys, threading, time
from streamrl.testing import descendants
from streamrl.envs import ParallelEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.graph import Graph, Process, Sink, Source
from streamrl.collectors import MultiSyncDataCollector, MultiaSyncDataCollector

def make():
    return GymEnv("CartPole-v1")

keep = []
for kind in sys.argv[1].split(","):
    if kind == "parallel_env":
        env = ParallelEnv(2, make)
        env.reset()
        keep.append(env)
    elif kind == "process_operator":
        # the graph starts its worker from a thread that ends once the worker is up
        g = Graph()
        got = []
        src = g.add(Source(lambda: time.sleep(0.01) or 1), name="src", placement=Process())
        g.connect(src, g.add(Sink(got.append)))
        threading.Thread(target=g.run_sync, daemon=True).start()
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:  # its worker is up and serving
            time.sleep(0.05)
        keep.append(g)
    elif kind in ("multi_sync", "multi_async"):
        cls = MultiSyncDataCollector if kind == "multi_sync" else MultiaSyncDataCollector
        c = cls([make, make], None, frames_per_batch=20, total_frames=-1)
        it = iter(c)
        next(it)
        keep.append((c, it))
deadline = time.monotonic() + 60
while len(descendants()) < int(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)  # the process operator's starting thread has ended by now
print(json.dumps(sorted(descendants())), flush=True)
time.sleep(600)
"""

_ALL_KINDS = "parallel_env,process_operator,multi_sync,multi_async"


def _env(start_method: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if start_method is not None:
        env["STREAMRL_MP_START_METHOD"] = start_method
    return env


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if pid_alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _kill_parent_and_check(kinds: str, workers: int, start_method: str | None) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _PARENT, kinds, str(workers)],
        stdout=subprocess.PIPE, env=_env(start_method), text=True,
    )
    pids: list[int] = []
    try:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the parent process exited early (code {proc.wait()})")
        pids = json.loads(line)
        assert len(pids) >= workers, f"expected at least {workers} workers, found {pids}"
        assert all(pid_alive(p) for p in pids), "a worker died before its parent"
        proc.kill()
        proc.wait()
        left = _wait_gone(pids, 5.0)
        assert not left, f"processes still running 5 s after their parent was killed: {left}"
    finally:
        _kill_all(proc, pids)


def _kill_all(proc: subprocess.Popen, pids: list[int]) -> None:
    # a failed check must leave nothing behind either (SIGKILL: SIGTERM may be ignored there)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    for p in pids:
        if pid_alive(p):
            os.kill(p, signal.SIGKILL)


def test_every_kind_of_worker_exits_when_its_parent_is_killed():
    """fault: SIGKILL of a process holding a ParallelEnv, a graph with a process-placed operator
    (its worker started from a short-lived thread) and both multi-process collectors (fork).
    promise: every process below it exits. check: all their pids gone within 5 s."""
    _kill_parent_and_check(_ALL_KINDS, 2 + 1 + 2 + 2, "fork")


@pytest.mark.slow
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_workers_exit_when_their_parent_is_killed_any_start_method(start_method):
    """fault: SIGKILL of a process holding a ParallelEnv and a process-placed operator started
    with spawn / forkserver. promise: every process below it (the forkserver included) exits.
    check: all their pids gone within 5 s."""
    _kill_parent_and_check("parallel_env,process_operator", 3, start_method)


class _Echo:
    def echo(self, x):
        return x


def test_a_worker_started_from_a_short_lived_thread_outlives_the_thread():
    """fault: the thread that started the worker ends (the kernel's parent-death signal is tied
    to that thread). promise: the worker keeps serving. check: a call 0.3 s later answers."""
    box: list[Worker] = []
    t = threading.Thread(target=lambda: box.append(Worker(_Echo, name="echo").start()))
    t.start()
    t.join()
    with box[0] as w:
        time.sleep(0.3)
        assert w.is_alive() and w.call("echo", 7, timeout=5) == 7


@pytest.mark.parametrize("start_method", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
@pytest.mark.parametrize("handler", ["ignored", "handled"])
def test_a_worker_exits_on_sigterm_whatever_the_parent_did_with_it(start_method, handler):
    """fault: the parent ignores SIGTERM or handles it without exiting (as SDL does) when it
    starts a worker, then the worker gets SIGTERM. promise: the worker exits.
    check: its pid is gone within 2 s."""
    previous = signal.signal(
        signal.SIGTERM, signal.SIG_IGN if handler == "ignored" else lambda *a: None
    )
    try:
        w = Worker(_Echo, name="echo", start_method=start_method).start()
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        os.kill(w.pid, signal.SIGTERM)
        assert not _wait_gone([w.pid], 2.0), "the worker ignored SIGTERM"
    finally:
        w.close(timeout=0.5)


_PIXELS_THEN_FORK = r"""
import json
from streamrl.envs import ParallelEnv
from streamrl.envs.libs.gym import GymEnv
pixels = GymEnv("CartPole-v1", from_pixels=True)
assert pixels.reset()["pixels"].shape[-1] == 3
env = ParallelEnv(2, lambda: GymEnv("CartPole-v1"), mp_start_method="fork")
env.rollout(3)
print(json.dumps(env.worker_pids), flush=True)
"""


def test_a_fork_parallel_env_after_pixel_rendering_exits():
    """fault: a pixel GymEnv (pygame/SDL, which installs a SIGTERM handler) is rendered before
    a fork ParallelEnv starts, and the script ends without closing either. promise: the process
    exits normally, its workers with it. check: exit code 0 within 30 s; worker pids gone."""
    pytest.importorskip("pygame")
    proc = subprocess.Popen([sys.executable, "-c", _PIXELS_THEN_FORK], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    pids: list[int] = []
    try:
        line = proc.stdout.readline()
        pids = json.loads(line) if line else []
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the process did not exit within 30 s") from None
        assert code == 0 and pids, f"exit code {code}, worker pids {pids}"
        assert not _wait_gone(pids, 2.0)
    finally:
        _kill_all(proc, pids)


class _ShmMaker:
    """Creates ``/dev/shm`` entries named as torch names its segments, without unlinking them:
    what a process killed between torch's ``shm_open`` and ``shm_unlink`` leaves."""

    def make(self, tag: str) -> str:
        name = f"torch_{os.getpid()}_{tag}_1"
        with open(os.path.join("/dev/shm", name), "wb") as f:
            f.write(b"x")
        return name


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
@pytest.mark.parametrize("how", ["killed", "closed"])
def test_a_worker_killed_mid_share_leaves_no_shm_entry(how):
    """fault: a worker dies by SIGKILL holding a torch_<pid>_* entry it has not unlinked (seen
    once in CI, a collector worker killed by the graph's fast shutdown). promise: Worker.close() removes it;
    a worker that stops normally is not swept (its entries would be the owner's to remove);
    another process's entry is kept. check: /dev/shm listing."""
    other = f"torch_{os.getpid()}_streamrl_test_other_1"
    with open(os.path.join("/dev/shm", other), "wb") as f:
        f.write(b"x")
    w = Worker(_ShmMaker, name="shm-maker").start()
    pid = w.pid
    try:
        name = w.call("make", "streamrl_test")
        assert os.path.exists(os.path.join("/dev/shm", name))
        if how == "killed":
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while w.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
        w.close()
        left = os.path.exists(os.path.join("/dev/shm", name))
        assert left == (how == "closed")
        assert os.path.exists(os.path.join("/dev/shm", other))
    finally:
        for n in (other, f"torch_{pid}_streamrl_test_1"):
            if os.path.exists(os.path.join("/dev/shm", n)):
                os.unlink(os.path.join("/dev/shm", n))
