"""Small operators and leak checks shared by the graph tests."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

from streamrl.graph import Operator


class Boom(Operator):
    """Passes items through and raises ValueError on the ``at``-th item."""

    def __init__(self, at: int = 3):
        self.at = at
        self.n = 0

    def step(self, inputs):
        self.n += 1
        if self.n >= self.at:
            # args[1]: when it raised (CLOCK_MONOTONIC is shared by all processes)
            raise ValueError(f"boom at item {self.n}", time.monotonic())
        return {"out": inputs["in"]}


class Slow(Operator):
    """Passes items through after sleeping ``delay`` seconds (releases the GIL)."""

    def __init__(self, delay: float):
        self.delay = delay

    def step(self, inputs):
        time.sleep(self.delay)
        return {"out": inputs["in"]}


class Forever(Operator):
    """A source that never ends."""

    inputs = ()

    def __init__(self):
        self.n = 0

    def step(self, inputs):
        self.n += 1
        return {"out": self.n}


class PingPong(Operator):
    """Emits a counter on ``ping``; each ``pong`` increments it; ends after ``rounds``."""

    inputs = ("pong",)
    outputs = ("ping",)
    primes = 1
    state_keys = ("count",)

    def __init__(self, rounds: int, prime: int = 1):
        self.rounds = rounds
        self.count = 0
        self.primes = prime
        self.seen = []

    def open(self):
        from streamrl.graph import Many

        return {"ping": Many(range(self.primes))}

    def step(self, inputs):
        self.seen.append(inputs["pong"])
        self.count += 1
        if self.count >= self.rounds:
            raise StopIteration
        return {"ping": inputs["pong"] + 1}


def _shm() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:  # not Linux
        return set()


def _children() -> set[int]:
    pids = set()
    me = str(os.getpid())
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                pids.add(int(d))
    return pids


def _process_singletons() -> set[threading.Thread]:
    """Threads the stdlib starts once per process and keeps: the fd sharer that sends shared
    memory handles to other processes (started by the first TensorDict crossing to a worker)."""
    from multiprocessing import resource_sharer

    t = getattr(resource_sharer._resource_sharer, "_thread", None)
    return {t} if t is not None else set()


class LeakCheck:
    """Snapshot threads, child processes (via /proc) and /dev/shm; ``assert_clean`` compares."""

    def __init__(self):
        self.threads = set(threading.enumerate())
        self.children = _children()
        self.mp_children = set(multiprocessing.active_children())
        self.shm = _shm()

    def assert_clean(self, timeout: float = 2.0):
        deadline = time.monotonic() + timeout
        while True:
            threads = (
                {t for t in threading.enumerate() if t.is_alive()} - self.threads
                - _process_singletons()
            )
            children = _children() - self.children
            mp_children = set(multiprocessing.active_children()) - self.mp_children
            shm = _shm() - self.shm
            if not (threads or children or mp_children or shm) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not threads, f"threads left: {threads}"
        assert not children, f"child processes left: {children}"
        assert not mp_children, f"multiprocessing children left: {mp_children}"
        assert not shm, f"/dev/shm entries left: {shm}"
