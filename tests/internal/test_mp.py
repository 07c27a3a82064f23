"""streamrl._mp: worker processes and shared buffers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time

import pytest
import torch
from tensordict import TensorDict

from streamrl._mp import Worker, default_start_method, shared_zeros_like, wait_ready
from streamrl.errors import RemoteError, WorkerDiedError


class Counter:
    def __init__(self, start=0, buffer=None):
        self.n = start
        self.buffer = buffer
        self.closed_flag = None

    def add(self, k=1):
        self.n += k
        return self.n

    def fail(self, message):
        raise ValueError(message)

    def write(self, slot, value):
        self.buffer["x"][slot] = value
        return slot

    def die(self):
        os._exit(3)

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds


def _no_children_left():
    deadline = time.monotonic() + 5
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not mp.active_children()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_call_lambda_factory(start_method):
    base = 10
    with Worker(lambda: Counter(base), name="c", start_method=start_method) as w:
        assert w.call("add", 2) == 12
        assert w.call("add", k=3) == 15
        assert w.is_alive() and isinstance(w.pid, int)
    assert not w.is_alive()
    assert _no_children_left()


def test_remote_exception_carries_type_traceback_and_cause():
    with Worker(Counter, name="env-3") as w:
        with pytest.raises(RemoteError) as info:
            w.call("fail", "bad action shape")
        err = info.value
        assert err.remote_type == "ValueError"
        assert "env-3" in str(err) and "bad action shape" in str(err)
        assert "Traceback" in err.remote_traceback
        assert isinstance(err.__cause__, ValueError)
        # the worker survives an exception in a call
        assert w.call("add") == 1


def test_factory_failure_is_raised_at_start_and_leaves_nothing():
    def boom():
        raise KeyError("no such env")

    w = Worker(boom, name="broken")
    with pytest.raises(RemoteError, match="no such env"):
        w.start()
    assert _no_children_left()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dead_worker_is_reported_quickly(start_method):
    with Worker(Counter, name="dies", start_method=start_method) as w:
        t0 = time.monotonic()
        with pytest.raises(WorkerDiedError, match="dies") as info:
            w.call("die")
        assert time.monotonic() - t0 < 3
        assert info.value.exitcode == 3
    assert _no_children_left()


def test_killed_worker_is_reported():
    with Worker(Counter, name="killed") as w:
        w.send("sleep", 30)
        os.kill(w.pid, 9)
        with pytest.raises(WorkerDiedError):
            w.recv(timeout=5)
    assert _no_children_left()


def test_timeout_then_close_does_not_hang():
    w = Worker(Counter, name="slow").start()
    with pytest.raises(TimeoutError, match="slow"):
        w.call("sleep", 5, timeout=0.1)
    t0 = time.monotonic()
    w.close(timeout=0.5)
    assert time.monotonic() - t0 < 4
    w.close()  # idempotent
    assert _no_children_left()


def test_pipelined_sends_and_wait_ready():
    workers = [Worker(Counter, name=f"w{i}").start() for i in range(2)]
    try:
        for i, w in enumerate(workers):
            w.send("add", i + 1)
        seen = {}
        while len(seen) < 2:
            for w in wait_ready(workers, timeout=5):
                seen[w.name] = w.recv()
        assert seen == {"w0": 1, "w1": 2}
    finally:
        for w in workers:
            w.close()
    assert _no_children_left()


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_shared_buffer_written_by_child_is_seen_by_parent(start_method):
    buf = shared_zeros_like(TensorDict({"x": torch.zeros(3)}, []), 4)
    assert buf.is_shared() and buf["x"].shape == (4, 3)
    with Worker(lambda: Counter(buffer=buf), name="writer", start_method=start_method) as w:
        w.call("write", 2, 7.0)
    assert buf["x"][2].tolist() == [7.0, 7.0, 7.0]
    assert buf["x"][0].tolist() == [0.0, 0.0, 0.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="start_method"):
        Worker(Counter, name="x", start_method="thread")
    with pytest.raises(TypeError, match="callable"):
        Worker(3, name="x")
    with pytest.raises(ValueError, match="leading_dims"):
        shared_zeros_like(TensorDict({}, []), 0)
    w = Worker(Counter, name="x")
    with pytest.raises(RuntimeError, match="not started"):
        w.call("add")
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.start()


def test_default_start_method_env(monkeypatch):
    monkeypatch.setenv("STREAMRL_MP_START_METHOD", "spawn")
    assert default_start_method() == "spawn"
    monkeypatch.setenv("STREAMRL_MP_START_METHOD", "nope")
    with pytest.raises(ValueError):
        default_start_method()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork start method")
def test_a_worker_started_beside_another_does_not_hold_its_pipe():
    """Two workers started at once from two threads (as a graph starts process operators):
    when one is killed its pipe reports EOF at once, i.e. the other did not inherit the
    child's end of that pipe while forking (it would hide the death until it exits too)."""
    for round_ in range(8):
        workers = [Worker(lambda: [1], name=f"w{i}", start_method="fork") for i in range(2)]
        barrier = threading.Barrier(2)

        def start(w, barrier=barrier):
            barrier.wait()
            w.start()

        threads = [threading.Thread(target=start, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        victim = workers[round_ % 2]  # the other one lives on
        try:
            os.kill(victim.pid, signal.SIGKILL)
            assert wait_ready([victim], timeout=3.0) == [victim], (
                f"{victim.name}: no EOF after its death")
        finally:
            for w in workers:
                w.close()
