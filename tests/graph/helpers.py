"""Small operators and leak checks shared by the graph tests."""

from __future__ import annotations

import time

from streamrl.graph import Operator
from streamrl.testing import Resources, check_no_leaks


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


class DieAt(Operator):
    """Passes items through and kills its own process (SIGKILL) at the ``at``-th item."""

    def __init__(self, at: int):
        self.at, self.n = at, 0

    def step(self, inputs):
        import os
        import signal

        self.n += 1
        if self.n >= self.at:
            os.kill(os.getpid(), signal.SIGKILL)
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


class LeakCheck:
    """A snapshot of threads, child processes, fds and shared memory; ``assert_clean`` waits
    until nothing new is left (see :func:`streamrl.testing.check_no_leaks`)."""

    def __init__(self):
        self.before = Resources.snapshot()

    def assert_clean(self, timeout: float = 2.0):
        check_no_leaks(self.before, timeout)
