"""Weight broadcast to Ray actors, for ``graph_ray.py``: how long from the driver's publish of a
1M-parameter policy until every reader actor has loaded that version.

Each reader copies the received parameters into its own copy of the network and stamps
``time.time()`` when done (readers and driver share this machine's clock); a version's time is
the last reader's stamp minus the publish time. The next version is published once every
reader has reported the current one (a latest-value edge would otherwise skip versions), and
the first version (actor start-up) is not timed; it is reported apart.

Rows: streamrl's path (a :class:`~streamrl.ops.WeightsSource` on the driver, one latest-value
edge to each reader operator, readers on ``Ray(direct=True)`` actors or driver-relayed
``Ray()`` ones), and bare Ray calls to plain actors: one ``ray.put`` per actor, or one
``ray.put`` shared by all the calls (what one object-store copy per version costs).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from tensordict import TensorDict
from torch import nn

from streamrl.graph import Graph, Map, Operator, Ray
from streamrl.ops import WeightsSource


def policy_net(hidden: int = 1024) -> nn.Module:
    """An MLP of about 1M parameters (4 MB float32) with the default ``hidden``."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, hidden - 64),
                         nn.Tanh(), nn.Linear(hidden - 64, 2))


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _load(net: nn.Module, params: Any) -> None:
    """Copy ``params`` (a TensorDict of the net's parameters, or a state dict) into ``net``."""
    with torch.no_grad():
        if isinstance(params, TensorDict):
            TensorDict.from_module(net).update_(params)
        else:
            net.load_state_dict(params)


class Reader(Operator):
    """Loads each ``(version, params)`` it receives into its network; emits
    ``(index, version, time.time() once loaded)``."""

    inputs = ("weights",)

    def __init__(self, index: int, hidden: int):
        self.index, self.hidden = index, hidden
        self.net: nn.Module | None = None

    def open(self) -> None:
        torch.set_num_threads(1)
        self.net = policy_net(self.hidden)

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        version, params = inputs["weights"]
        if self.net is None:
            raise RuntimeError("Reader.step before open")
        _load(self.net, params)
        return {"out": (self.index, version, time.time())}


def _summary(times: list[float], startup: float) -> dict[str, float]:
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
            "max_ms": max(times) * 1e3, "startup_s": startup}


def graph_broadcast(readers: int, versions: int, direct: bool, hidden: int = 1024
                    ) -> dict[str, float]:
    """streamrl's path: WeightsSource -> latest-value edges -> ``readers`` reader actors."""
    net = policy_net(hidden)
    source = WeightsSource(net)
    g = Graph(name="broadcast")
    src = g.add(source, name="weights", placement="thread")
    stamps = g.add(Map(lambda x: x), name="stamps")
    for i in range(readers):
        r = g.add(Reader(i, hidden), name=f"reader{i}",
                  placement=Ray(num_cpus=0, direct=direct))
        g.connect(src, r["weights"], kind="latest").connect(r, stamps)
    published: dict[int, float] = {}
    done: dict[int, set[int]] = {}
    last: dict[int, float] = {}  # the newest loaded stamp of each version
    times: list[float] = []
    t0 = time.perf_counter()
    startup = 0.0
    published[source.publish()] = time.time()  # the untimed first version (start-up)
    for index, version, stamp in g.iterate(stamps, watchdog_timeout=None):
        seen = done.setdefault(version, set())
        seen.add(index)
        last[version] = max(last.get(version, 0.0), stamp)
        if len(seen) < readers:
            continue
        if version == 1:
            startup = time.perf_counter() - t0
        else:
            times.append(last[version] - published[version])
        if version > versions:
            source.stop()
            continue
        _perturb(net)
        published[version + 1] = time.time()
        source.publish()
    if len(times) != versions:
        raise RuntimeError(f"expected {versions} timed versions, found {len(times)}")
    return _summary(times, startup)


def _perturb(net: nn.Module) -> None:
    """New weights, as after an update (not timed)."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1e-3)


def bare_ray_broadcast(ray: Any, readers: int, versions: int, shared: bool,
                       hidden: int = 1024) -> dict[str, float]:
    """Plain Ray actors that load a state dict and return the time they finished: one
    ``ray.put`` per actor, or one shared by all (``shared``); one version at a time."""

    @ray.remote(num_cpus=0)
    class Loader:
        def __init__(self, hidden: int):
            torch.set_num_threads(1)
            self.net = policy_net(hidden)

        def load(self, params: Any) -> float:
            _load(self.net, params)
            return time.time()

    net = policy_net(hidden)
    t0 = time.perf_counter()
    actors = [Loader.remote(hidden) for _ in range(readers)]
    times: list[float] = []
    startup = 0.0
    try:
        for version in range(versions + 1):
            _perturb(net)
            start = time.time()
            state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if shared:
                ref = ray.put(state)
                calls = [a.load.remote(ref) for a in actors]
            else:
                calls = [a.load.remote(ray.put(state)) for a in actors]
            loaded = max(ray.get(calls))
            if version == 0:
                startup = time.perf_counter() - t0
            else:
                times.append(loaded - start)
    finally:
        for a in actors:
            ray.kill(a)
    return _summary(times, startup)


def print_broadcast(ray: Any, readers: int, versions: int, relayed: bool = True) -> None:
    """The broadcast table: one row per path."""
    n = n_params(policy_net())
    print(f"weight broadcast: an MLP of {n:,} parameters ({n * 4 / 2**20:.1f} MiB float32) to "
          f"{readers} actors, publish until all have loaded the version (ms, {versions} "
          f"versions; first version = start-up, apart)")
    rows = [("streamrl WeightsSource -> Ray(direct=True)",
             lambda: graph_broadcast(readers, versions, direct=True))]
    if relayed:
        rows.append(("streamrl WeightsSource -> Ray() relayed",
                     lambda: graph_broadcast(readers, versions, direct=False)))
    rows += [(f"Ray: {readers} x (ray.put + call)",
              lambda: bare_ray_broadcast(ray, readers, versions, shared=False)),
             (f"Ray: 1 ray.put, {readers} calls",
              lambda: bare_ray_broadcast(ray, readers, versions, shared=True))]
    print(f"{'path':<44} {'median':>8} {'min':>8} {'max':>8} {'start-up':>9}")
    for label, measure in rows:
        r = measure()
        print(f"{label:<44} {r['median_ms']:>8.1f} {r['min_ms']:>8.1f} {r['max_ms']:>8.1f} "
              f"{r['startup_s']:>8.2f}s", flush=True)
