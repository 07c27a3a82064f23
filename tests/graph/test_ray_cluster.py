"""Direct Ray edges on a local three-node Ray cluster (``ray.cluster_utils.Cluster``): a head
(the driver's node) and two worker nodes of one CPU each, told apart by custom resources."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import Collect, Graph, Operator, OperatorError, Ray, Sink, Source

ROOT = Path(__file__).resolve().parents[2]
_STORE = 128 * 2**20  # per node: by default each node sizes its store from the whole machine


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"head": 1}, "object_store_memory": _STORE,
        "include_dashboard": False})
    for i in (1, 2):
        c.add_node(num_cpus=1, resources={f"node{i}": 1}, object_store_memory=_STORE)
    ray.init(address=c.address, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    c.wait_for_nodes()
    yield ray
    ray.shutdown()
    c.shutdown()


@pytest.fixture
def ray(cluster):
    yield cluster
    deadline = time.monotonic() + 5.0
    while cluster.util.list_named_actors():
        assert time.monotonic() < deadline, cluster.util.list_named_actors()
        time.sleep(0.01)


def _on(node: str) -> Ray:
    return Ray(num_cpus=0, resources={node: 0.01}, direct=True)


class _WhereAmI(Operator):
    """Adds one to ``x`` and records, in its state, the Ray node it ran on."""

    state_keys = ("nodes",)

    def __init__(self):
        self.nodes: set[str] = set()

    def step(self, inputs):
        import ray

        self.nodes.add(ray.get_runtime_context().get_node_id())
        td = inputs["in"]
        return {"out": td.set("x", td["x"] + 1)}


def test_a_chain_over_two_worker_nodes(ray):
    g = Graph("nodes")
    src = g.add(Source([TensorDict({"x": torch.full((256, 4), float(i))}, [256])
                        for i in range(50)]), name="src")
    a = g.add(_WhereAmI(), name="a", placement=_on("node1"))
    b = g.add(_WhereAmI(), name="b", placement=_on("node2"))
    out = g.add(Collect(), name="out")
    g.connect(src, a).connect(a, b).connect(b, out)
    g.run_sync()
    assert [float(td["x"][0, 0]) for td in out.op.items] == [i + 2.0 for i in range(50)]
    driver_node = ray.get_runtime_context().get_node_id()
    (na,), (nb,) = a.op.nodes, b.op.nodes
    assert len({na, nb, driver_node}) == 3


class _DieAt(Operator):
    def __init__(self, at: int):
        self.at, self.n = at, 0

    def step(self, inputs):
        self.n += 1
        if self.n >= self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"out": inputs["in"]}


def test_an_actor_killed_on_a_worker_node_is_named_with_that_node(ray):
    node_ids = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    node2 = next(i for i, res in node_ids.items() if "node2" in res)
    g = Graph()
    src = g.add(Source(range(10**6)), name="src")
    a = g.add(_WhereAmI(), name="a", placement=_on("node1"))
    dies = g.add(_DieAt(5), name="dies", placement=_on("node2"))
    g.connect(src, g.add(_Tensor(), name="td")).connect("td", a).connect(a, dies)
    g.connect(dies, g.add(Sink(lambda x: None)))
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert info.value.operator == "dies"
    assert node2 in str(info.value), str(info.value)


class _Tensor(Operator):
    def step(self, inputs):
        return {"out": TensorDict({"x": torch.tensor([float(inputs["in"])])}, [1])}
