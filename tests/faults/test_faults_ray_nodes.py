"""Faults of direct Ray operators when the node under their actor is lost (a three-node
``ray.cluster_utils.Cluster`` whose head checks node health every 0.5 s and gives a node up
after 3 missed checks).

Promises:

* the graph fails with an :class:`~streamrl.graph.OperatorError` naming the operator, its
  actor and the lost node's id and IP, within the health-check window plus 10 s; no actor of
  the run is left;
* with ``on_failure="restart"`` the operator goes on on another node from the state taken
  after the last item the driver received: every item arrives once, in order.
"""

from __future__ import annotations

import os
import time

import pytest

from streamrl.graph import Collect, Graph, Operator, OperatorError, Ray
from tests.ray_support import assert_no_actors, checkout_first, local_cluster

pytestmark = pytest.mark.slow
_HEALTH = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def cluster():
    # the head runs no actor; each worker node can hold one env actor
    with local_cluster(__name__, head={"num_cpus": 0, "_system_config": _HEALTH},
                       workers=[{"num_cpus": 1, "resources": {"env": 1}}] * 2,
                       with_cluster=True, state_api=True) as (ray, c):
        yield ray, c


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class _Counted(Operator):
    """A source of ``(i, node id, pid)`` for i in 0..n-1 (forever with ``n=None``)."""

    inputs = ()
    state_keys = ("i",)

    def __init__(self, n: int | None):
        self.n, self.i = n, 0

    def step(self, inputs):
        if self.n is not None and self.i >= self.n:
            raise StopIteration
        time.sleep(0.01)
        self.i += 1
        return {"out": (self.i - 1, _node_id(), os.getpid())}


class _RemoveNodeAt(Operator):
    """A driver sink (on a thread) that removes the node item ``at`` came from, once."""

    def __init__(self, cluster, at: int):
        self.cluster, self.at = cluster, at
        self.removed: list[tuple[str, float]] = []

    def step(self, inputs):
        i, node, _pid = inputs["in"]
        if i == self.at and not self.removed:
            (target,) = [n for n in self.cluster.list_all_nodes() if n.node_id == node]
            self.cluster.remove_node(target, allow_graceful=False)
            self.removed.append((node, time.monotonic()))
        return None

    outputs = ()


@pytest.fixture
def two_workers(cluster):
    """The cluster with its two worker nodes: those a test before removed are replaced
    (before the test that needs them, not after each test: none is added for nothing after
    the last one)."""
    _ray, c = cluster
    workers = [n for n in c.list_all_nodes() if not n.head]
    with checkout_first():
        for _ in range(2 - len(workers)):
            c.add_node(num_cpus=1, resources={"env": 1}, object_store_memory=128 * 2**20)
    c.wait_for_nodes()
    return cluster


def test_a_lost_node_is_named(two_workers):
    ray, c = two_workers
    g = Graph()
    src = g.add(_Counted(None), name="src",
                placement=Ray(num_cpus=1, resources={"env": 1}, direct=True))
    remover = _RemoveNodeAt(c, at=20)
    g.connect(src, g.add(remover, name="remover", placement="thread"))
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    failed_at = time.monotonic()
    assert remover.removed, "the node was never removed"
    node, removed_at = remover.removed[0]
    assert failed_at - removed_at < 1.5 + 10, failed_at - removed_at
    assert info.value.operator == "src"
    text = str(info.value)
    assert node in text and "streamrl:" in text, text
    assert_no_actors(ray)


def test_a_restartable_operator_goes_on_on_another_node(two_workers):
    ray, c = two_workers
    g = Graph()
    # 200 items of 10 ms: the node goes (item 30) long before the source could end
    src = g.add(_Counted(200), name="src",
                placement=Ray(num_cpus=1, resources={"env": 1}, direct=True,
                              on_failure="restart", max_restarts=1))
    out = g.add(Collect(), name="out")
    remover = _RemoveNodeAt(c, at=30)
    g.connect(src, out).connect(src, g.add(remover, name="remover", placement="thread"))
    g.run_sync()
    assert remover.removed
    assert [i for i, _, _ in out.op.items] == list(range(200))
    assert g._last_run.deployment.restarts["src"] == 1
    nodes = [n for _, n, _ in out.op.items]
    assert nodes[0] == remover.removed[0][0] and nodes[-1] != nodes[0]
    assert_no_actors(ray)
