"""Cost of a Ray-placed operator: one hop per message, compared with the other placements.

    flock /tmp/streamrl-heavy.lock python benchmarks/graph_ray.py [--items N]

A "hop" is what one identity Map costs per message: the time per message of
``source -> map -> sink`` minus that of ``source -> sink`` (min over repeats), from the first to
the last message reaching the sink (so actor start-up is excluded; it is reported apart).
Messages: a tiny int, a 256x4 float32 TensorDict and a 1 MiB one (256x1024 float32), the
same object re-sent. A Ray-placed Map pipelines two calls by default (it is ``pipeline_safe``);
the "1 in flight" rows are the plain round trip driver -> actor -> driver; "ray direct" runs
the map under its own runner on the actor (the driver pushes each item and pulls each
result). "Actor to actor" is what a second Ray-placed map adds to a chain of one: relayed
through the driver (two calls) or pushed from actor to actor (one). References measured
in the same run: thread and process placements, and a bare Ray actor method call awaited from
asyncio. Needs ``pip install 'streamrl[ray]'``; starts a local Ray with 2 CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import anyio
import torch

# the script's folder is on sys.path when it runs: share the sink and map of the hop benchmark
from graph_overhead import _identity, _Stamp
from tensordict import TensorDict

from streamrl.graph import Graph, Map, Process, Ray, Source


def _run(item, n: int, placement, maps: int = 1) -> tuple[float, float]:
    """(seconds per message, seconds from the start to the first message) through
    source -> [map] x maps -> sink; ``placement=None``: no map."""
    g = Graph()
    prev = g.add(Source(lambda: item, limit=n), name="src")
    for i in range(maps if placement is not None else 0):
        m = g.add(Map(_identity), name=f"m{i}", placement=placement())
        g.connect(prev, m)
        prev = m
    sink = _Stamp()
    g.connect(prev, g.add(sink, name="sink"))
    t0 = time.perf_counter()
    anyio.run(lambda: g.run(watchdog_timeout=None))
    if sink.n != n:
        raise RuntimeError(f"expected {n} messages at the sink, found {sink.n}")
    return (sink.last - sink.first) / (n - 1), sink.first - t0


def hop(item, n: int, placement, repeats: int) -> tuple[float, float]:
    """(us per hop, seconds of start-up) for one placement."""
    base = min(_run(item, n, None)[0] for _ in range(repeats))
    runs = [_run(item, n, placement) for _ in range(repeats)]
    per = min(r[0] for r in runs)
    return max(per - base, 0.0) * 1e6, min(r[1] for r in runs)


def actor_to_actor(item, n: int, placement, repeats: int) -> float:
    """us per message that a second Ray-placed map adds to a chain of one: one hop from
    actor to actor (through the driver unless the placement is direct)."""
    one = min(_run(item, n, placement, 1)[0] for _ in range(repeats))
    two = min(_run(item, n, placement, 2)[0] for _ in range(repeats))
    return max(two - one, 0.0) * 1e6


def bare_ray_call_us(ray, item, n: int) -> float:
    """A Ray actor method that returns its argument, awaited from asyncio, one at a time."""

    @ray.remote
    class Echo:
        def f(self, x):
            return x

    actor = Echo.remote()

    async def main() -> float:
        await actor.f.remote(item)
        t0 = time.perf_counter()
        for _ in range(n):
            await actor.f.remote(item)
        return (time.perf_counter() - t0) / n * 1e6

    try:
        return asyncio.run(main())
    finally:
        ray.kill(actor)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=1000, help="messages per measurement")
    p.add_argument("--repeats", type=int, default=2, help="runs per case (min is reported)")
    args = p.parse_args()
    import ray

    torch.set_num_threads(1)
    n = args.items
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    here = Path(__file__).resolve().parent  # the workers import this checkout and its helpers
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{here.parent}:{here}"}})
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f} at start; "
          f"ray {ray.__version__}, ray.init {time.perf_counter() - t0:.1f} s")
    items = {
        "tiny": 0,
        "256x4 TD": TensorDict({"obs": torch.randn(256, 4)}, [256]),
        "1 MiB TD": TensorDict({"obs": torch.randn(256, 1024)}, [256]),
    }
    cases = [
        ("thread", lambda: "thread"),
        ("process, 1 in flight", lambda: Process(max_in_flight=1)),
        ("process (Map: 2 in flight)", lambda: "process"),
        ("ray, 1 in flight", lambda: Ray(max_in_flight=1)),
        ("ray (Map: 2 in flight)", lambda: Ray()),
        ("ray direct", lambda: Ray(direct=True)),
    ]
    print(f"hop cost (us per message, {n} messages, min of {args.repeats}; lower is better)")
    print(f"{'placement':<28} " + " ".join(f"{k:>9}" for k in items) + f" {'start-up':>9}")
    for label, placement in cases:
        cells, startup = [], 0.0
        for item in items.values():
            us, s = hop(item, n, placement, args.repeats)
            cells.append(f"{us:>9.1f}")
            startup = max(startup, s)
        print(f"{label:<28} " + " ".join(cells) + f" {startup:>8.2f}s")
    print()
    print("actor to actor: what a second Ray-placed map adds to a chain of one (us per message)")
    for label, placement in (("ray, driver-relayed", lambda: Ray(num_cpus=0)),
                             ("ray direct", lambda: Ray(num_cpus=0, direct=True))):
        cells = [f"{actor_to_actor(item, n, placement, args.repeats):>9.1f}"
                 for item in items.values()]
        print(f"{label:<28} " + " ".join(cells))
    print()
    print("reference: a bare Ray actor call returning its argument, awaited (us per call)")
    print("  " + "  ".join(f"{k}: {bare_ray_call_us(ray, v, n):.1f}" for k, v in items.items()))
    ray.shutdown()


if __name__ == "__main__":
    main()
