"""Overhead of the graph runtime: the cost of one hop per placement, and pipeline throughput.

    flock /tmp/streamrl-heavy.lock python benchmarks/graph_overhead.py [--items N]

A "hop" is what one extra identity operator costs per message: the time per message of
``source -> K identity maps -> sink`` minus that of ``source -> sink``, divided by K (K = 4 for
inline operators, 1 for thread and process ones: on 2 cores, several worker processes would
mostly measure their competition for the cores). A process-placed Map pipelines two messages
by default (``Process(max_in_flight=None)``); the 1-in-flight row is the plain round trip. Timing runs
from the first to the last message reaching the sink (start-up, e.g. forking a worker process,
is excluded). Messages are a tiny int and a 256x4 float32 TensorDict (the same object re-sent,
so the source costs nothing). Also reported: anyio memory-object-stream hops and a
``to_thread.run_sync`` call, measured the same way on this machine, as references.
"""

from __future__ import annotations

import argparse
import os
import time

import anyio
import torch
from tensordict import TensorDict

from streamrl.graph import Graph, Map, Operator, Process, Source


class _Stamp(Operator):
    """A sink that records when the first and the last message arrived."""

    outputs = ()

    def __init__(self):
        self.n = 0
        self.first = self.last = 0.0

    def step(self, inputs):
        t = time.perf_counter()
        if self.n == 0:
            self.first = t
        self.last = t
        self.n += 1


def _identity(x):
    return x


def _run(make_item, n: int, k: int, placement, fuse: bool) -> float:
    """Seconds per message through source -> k identity maps -> sink."""
    item = make_item()
    g = Graph()
    prev = g.add(Source(lambda: item, limit=n), name="src")
    for i in range(k):
        m = g.add(Map(_identity), name=f"m{i}",
                  placement=placement() if callable(placement) else placement)
        g.connect(prev, m)
        prev = m
    sink = _Stamp()
    g.connect(prev, g.add(sink, name="sink"))
    anyio.run(lambda: g.run(fuse=fuse, watchdog_timeout=None))
    assert sink.n == n
    return (sink.last - sink.first) / (n - 1)


def hop_us(make_item, n: int, placement, fuse: bool, k: int, repeats: int = 5) -> float:
    base = min(_run(make_item, n, 0, "inline", fuse) for _ in range(repeats))
    with_k = min(_run(make_item, n, k, placement, fuse) for _ in range(repeats))
    return max(with_k - base, 0.0) / k * 1e6


def anyio_stream_hop_us(n: int) -> float:
    async def main():
        send, recv = anyio.create_memory_object_stream(2)

        async def producer():
            async with send:
                for i in range(n):
                    await send.send(i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            t0 = time.perf_counter()
            async with recv:
                async for _ in recv:
                    pass
            return (time.perf_counter() - t0) / n * 1e6

    return anyio.run(main)


def to_thread_us(n: int) -> float:
    async def main():
        t0 = time.perf_counter()
        for _ in range(n):
            await anyio.to_thread.run_sync(_identity, 1)
        return (time.perf_counter() - t0) / n * 1e6

    return anyio.run(main)


def pipeline(make_item, n: int, placements: tuple) -> tuple[float, float]:
    """items/s and rows/s of source -> map -> map(+1) -> sink with the given placements for the
    source-side map, the second map and the sink."""
    item = make_item()
    g = Graph()
    src = g.add(Source(lambda: item, limit=n), name="src")
    a = g.add(Map(lambda td: td * 2), name="scale", placement=placements[0])
    b = g.add(Map(lambda td: td + 1), name="shift", placement=placements[1])

    class StampSink(_Stamp):
        pass

    sink = StampSink()
    g.connect(src, a).connect(a, b).connect(b, g.add(sink, name="sink", placement=placements[2]))
    anyio.run(lambda: g.run(watchdog_timeout=None))
    rate = (n - 1) / (sink.last - sink.first)
    return rate, rate * item.batch_size[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=5000, help="messages per measurement")
    args = p.parse_args()
    n = args.items
    torch.set_num_threads(1)
    tiny = lambda: 0  # noqa: E731
    td = lambda: TensorDict({"obs": torch.randn(256, 4)}, [256])  # noqa: E731

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f} at start")
    print(f"graph hop cost (us per message, {n} messages, min of 5; lower is better)")
    print(f"{'placement':<28} {'tiny':>9} {'256x4 TD':>9}")
    cases = [
        ("inline", "inline", False, 4),
        ("fused inline", "inline", True, 4),
        ("thread", "thread", False, 1),
        ("process, 1 in flight", lambda: Process(max_in_flight=1), False, 1),
        ("process (Map: 2 in flight)", "process", False, 1),
    ]
    for label, placement, fuse, k in cases:
        m = n if placement == "inline" else n // 2
        t1 = hop_us(tiny, m, placement, fuse, k)
        t2 = hop_us(td, m, placement, fuse, k)
        print(f"{label:<28} {t1:>9.1f} {t2:>9.1f}")
    print("targets: inline hop of a batched message <= 20 us; process hop of 256x4 TD <= 100 us")
    print()
    print("references on this machine:")
    print(f"  anyio memory stream hop (buffer 2): {anyio_stream_hop_us(n):6.1f} us")
    print(f"  anyio.to_thread.run_sync call:      {to_thread_us(n // 5):6.1f} us")
    print()
    print(f"3-stage pipeline (scale -> shift -> sink) of 256x4 TensorDicts, {n} messages")
    single = Process(max_in_flight=1)
    for placements in [("inline", "inline", "inline"), ("thread", "thread", "inline"),
                       ("thread", "process", "inline"), ("process", "process", "inline"),
                       (single, single, "inline")]:
        names = "/".join(p if isinstance(p, str) else "process(1 in flight)" for p in placements)
        items, rows = pipeline(td, n if "process" not in names else n // 2, placements)
        print(f"  {names:<44} {items:>9.0f} items/s {rows:>11.0f} rows/s")


if __name__ == "__main__":
    main()
