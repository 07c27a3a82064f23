"""Placement groups a graph creates for its Ray actors (``Ray(placement_group=RayPlacementGroup(...))``).

Promise: the group is removed when the run ends, whatever ended it: an operator's error or a
cancellation, with the actor started from the driver (the default) or ``direct=True``; and no
actor of the run is left.
"""

from __future__ import annotations

import time

import anyio
import pytest

from streamrl.graph import Graph, Operator, OperatorError, Ray, RayPlacementGroup, Sink, Source
from tests.ray_support import local_ray


@pytest.fixture(scope="module")
def ray_local():
    with local_ray(__name__) as ray:
        yield ray


class _FailAt(Operator):
    """Passes items on; raises at its ``at``-th step (never when ``at`` is 0)."""

    def __init__(self, at: int):
        self.at, self.n = at, 0

    def step(self, inputs):
        self.n += 1
        if self.n == self.at:
            raise ValueError(f"step {self.n} failed on purpose")
        return {"out": inputs["in"]}


def _new_groups(ray, before: set[str]) -> list[dict]:
    return [g for g in ray.util.placement_group_table().values()
            if g["placement_group_id"] not in before]


def _our_actors(ray) -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("streamrl:")]


@pytest.mark.parametrize("direct", [False, True], ids=["relayed", "direct"])
@pytest.mark.parametrize("ending", ["error", "cancel"])
def test_a_graph_owned_placement_group_is_removed_after_an_error_or_cancel(
        ray_local, ending, direct):
    ray = ray_local
    spec = RayPlacementGroup([{"CPU": 0.1}, {"CPU": 0.1}], strategy="PACK")
    before = {g["placement_group_id"] for g in ray.util.placement_group_table().values()}
    g = Graph(f"groups_{ending}")
    src = g.add(Source(range(10**6)), name="src")
    a = g.add(_FailAt(3 if ending == "error" else 0), name="a",
              placement=Ray(num_cpus=0, placement_group=spec, bundle=0, direct=direct))
    b = g.add(_FailAt(0), name="b",
              placement=Ray(num_cpus=0, placement_group=spec, bundle=1, direct=direct))
    seen: list[int] = []
    scopes: list[anyio.CancelScope] = []

    def sink(x):
        seen.append(x)
        if ending == "cancel" and len(seen) == 5:
            scopes[0].cancel()

    g.connect(src, a).connect(a, b).connect(b, g.add(Sink(sink)))

    async def main():
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await g.run()

    if ending == "error":
        with pytest.raises(OperatorError) as info:
            anyio.run(main)
        assert info.value.operator == "a" and "failed on purpose" in str(info.value)
    else:
        anyio.run(main)
        assert scopes[0].cancelled_caught and len(seen) >= 5
    deadline = time.monotonic() + 5.0
    while True:
        made = _new_groups(ray, before)
        if [m["state"] for m in made] == ["REMOVED"] and not _our_actors(ray):
            break
        assert time.monotonic() < deadline, (made, _our_actors(ray))
        time.sleep(0.05)
