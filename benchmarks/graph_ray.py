"""Streamrl on Ray, in one run: the cost of a hop, weight broadcast, collection frames/s.

    flock /tmp/streamrl-heavy.lock python benchmarks/graph_ray.py [--items N]
        [--sections hops,broadcast,collection,overhead] [--versions 20] [--actors 1,2,4]
        [--envs CartPole,Pong] [--peers-python /tmp/peers/bin/python] [--no-peers]

Sections: ``hops`` (below), ``broadcast`` (``ray_broadcast.py``: a 1M-parameter policy to 4
actors), ``collection`` and ``overhead`` (``ray_collection.py``: frames/s with 1, 2 and 4 env
actors beside local processes and TorchRL's RayCollector, and the per-actor overhead that
decides the scaling on a cluster). Ray is shut down before the local and TorchRL rows run.

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

# the script's folder is on sys.path when it runs: the hop benchmark's sink and map, and the
# broadcast and collection sections
import ray_broadcast
import ray_collection
import torch
from graph_overhead import _identity, _Stamp
from tensordict import TensorDict

from streamrl.graph import Graph, Map, Process, Ray, Source


def _run(item, n: int, placement, maps: int = 1, capacity: int = 2) -> tuple[float, float]:
    """(seconds per message, seconds from the start to the first message) through
    source -> [map] x maps -> sink over edges of ``capacity``; ``placement=None``: no map."""
    g = Graph()
    prev = g.add(Source(lambda: item, limit=n), name="src")
    for i in range(maps if placement is not None else 0):
        m = g.add(Map(_identity), name=f"m{i}", placement=placement())
        g.connect(prev, m, capacity=capacity)
        prev = m
    sink = _Stamp()
    g.connect(prev, g.add(sink, name="sink"), capacity=capacity)
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


def actor_to_actor(item, n: int, placement, repeats: int, capacity: int = 2) -> float:
    """us per message that a second Ray-placed map adds to a chain of one: one hop from
    actor to actor (through the driver unless the placement is direct), edges of
    ``capacity``."""
    one = min(_run(item, n, placement, 1, capacity)[0] for _ in range(repeats))
    two = min(_run(item, n, placement, 2, capacity)[0] for _ in range(repeats))
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


SECTIONS = ("hops", "broadcast", "collection", "overhead")


def _csv(text: str, allowed: tuple[str, ...] | None, what: str,
         parser: argparse.ArgumentParser) -> list[str]:
    items = [x for x in text.split(",") if x]
    bad = [x for x in items if allowed is not None and x not in allowed]
    if bad or not items:
        parser.error(f"{what}: expected some of {allowed}, found {text!r}")
    return items


def print_hops(ray, n: int, repeats: int) -> None:
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
    print(f"hop cost (us per message, {n} messages, min of {repeats}; lower is better)")
    print(f"{'placement':<28} " + " ".join(f"{k:>9}" for k in items) + f" {'start-up':>9}")
    for label, placement in cases:
        cells, startup = [], 0.0
        for item in items.values():
            us, s = hop(item, n, placement, repeats)
            cells.append(f"{us:>9.1f}")
            startup = max(startup, s)
        print(f"{label:<28} " + " ".join(cells) + f" {startup:>8.2f}s", flush=True)
    print()
    print("actor to actor: what a second Ray-placed map adds to a chain of one (us per message;"
          " with capacity-8 edges a direct push call carries the items queued meanwhile)")
    for capacity in (2, 8):
        for label, placement in (("ray relayed", lambda: Ray(num_cpus=0)),
                                 ("ray direct", lambda: Ray(num_cpus=0, direct=True))):
            cells = [f"{actor_to_actor(item, n, placement, repeats, capacity):>9.1f}"
                     for item in items.values()]
            print(f"{label + f', capacity {capacity}':<28} " + " ".join(cells))
    print()
    print("reference: a bare Ray actor call returning its argument, awaited (us per call)")
    print("  " + "  ".join(f"{k}: {bare_ray_call_us(ray, v, n):.1f}" for k, v in items.items()))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"some of {SECTIONS}")
    p.add_argument("--items", type=int, default=1000, help="hops: messages per measurement")
    p.add_argument("--repeats", type=int, default=2, help="hops: runs per case (min reported)")
    p.add_argument("--readers", type=int, default=4, help="broadcast: reader actors")
    p.add_argument("--versions", type=int, default=20, help="broadcast: timed versions")
    p.add_argument("--actors", default="1,2,4", help="collection: env actor counts")
    p.add_argument("--envs", default="CartPole,Pong", help="collection: some of CartPole,Pong")
    p.add_argument("--frames-per-batch", type=int, default=1000)
    p.add_argument("--cartpole-frames", type=int, default=200_000,
                   help="collection: timed CartPole frames per row")
    p.add_argument("--pong-frames", type=int, default=10_000,
                   help="collection: timed Pong frames per row")
    p.add_argument("--overhead-batches", type=int, default=20,
                   help="overhead: batches per actor")
    p.add_argument("--peers-python",
                   default=os.environ.get("STREAMRL_PEERS_PYTHON", "/tmp/peers/bin/python"))
    p.add_argument("--no-peers", action="store_true", help="skip the TorchRL rows")
    p.add_argument("--no-local", action="store_true", help="skip the local process rows")
    args = p.parse_args(argv)
    sections = _csv(args.sections, SECTIONS, "--sections", p)
    envs = _csv(args.envs, tuple(ray_collection.ENVS), "--envs", p)
    try:
        counts = [int(x) for x in _csv(args.actors, None, "--actors", p)]
    except ValueError:
        p.error(f"--actors: expected comma-separated ints, found {args.actors!r}")
    if any(c < 1 for c in counts):
        p.error(f"--actors: expected ints >= 1, found {counts}")
    import ray

    torch.set_num_threads(1)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    here = Path(__file__).resolve().parent  # the workers import this checkout and its helpers
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{here.parent}:{here}"}})
    print(f"machine: {cores} cores, load average {load:.2f} at start; "
          f"ray {ray.__version__}, ray.init {time.perf_counter() - t0:.1f} s", flush=True)
    fpb = args.frames_per_batch
    frames = {"CartPole": args.cartpole_frames, "Pong": args.pong_frames}
    results: dict = {}
    overhead: dict = {}
    try:
        if "hops" in sections:
            print_hops(ray, args.items, args.repeats)
            print()
        if "broadcast" in sections:
            ray_broadcast.print_broadcast(ray, args.readers, args.versions)
            print()
        if "collection" in sections:
            print("collecting (streamrl on Ray) ...", flush=True)
            results.update(ray_collection.run_ours(True, envs, counts, frames, fpb))
        if "overhead" in sections:
            for env in envs:
                overhead[env] = ray_collection.actor_overhead(env, 1, args.overhead_batches, fpb)
    finally:
        ray.shutdown()
    if "collection" in sections:
        if not args.no_local:
            print("collecting (local processes, Ray shut down) ...", flush=True)
            results.update(ray_collection.run_ours(False, envs, counts, frames, fpb))
        if not args.no_peers:
            print("collecting (TorchRL RayCollector, its own Ray) ...", flush=True)
            results.update(ray_collection.run_torchrl(args.peers_python, envs, counts, frames,
                                                      fpb))
        print()
        ray_collection.print_collection(results, envs, counts, fpb, frames)
        for system, rows in results.items():
            print(f"  scaling, {system}: " + "; ".join(
                ray_collection.scaling_line(rows, env, counts) for env in envs))
        print()
    if overhead:
        ours = results.get("streamrl ray", {})
        ray_collection.print_overhead(overhead, fpb, cores, {
            env: ours[(env, 1)]["driver_cpu_ms"] for env in envs if (env, 1) in ours})


if __name__ == "__main__":
    main()
