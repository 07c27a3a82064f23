"""Direct Ray edges and the Ray placement's options on a local three-node Ray cluster
(``ray.cluster_utils.Cluster``): a head (the driver's node) and two worker nodes of one CPU
each, told apart by custom resources and by their (loopback) IPs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import (
    Collect,
    Graph,
    Map,
    Operator,
    OperatorError,
    Ray,
    RayPlacementGroup,
    Sink,
    Source,
)
from tests.ray_support import assert_no_actors, local_cluster

from .helpers import DieAt

_IPS = {1: "127.0.0.2", 2: "127.0.0.3"}  # the worker nodes' (loopback) addresses


@pytest.fixture(scope="module")
def cluster():
    # an IP of its own for each worker node, so that node= can name them by IP
    with local_cluster(__name__, DieAt.__module__, head={"num_cpus": 1, "resources": {"head": 1}},
                       workers=[{"num_cpus": 1, "resources": {f"node{i}": 1},
                                 "node_ip_address": _IPS[i]} for i in (1, 2)],
                       state_api=True) as ray:
        yield ray


@pytest.fixture
def ray(cluster):
    yield cluster
    assert_no_actors(cluster)


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


def test_an_actor_killed_on_a_worker_node_is_named_with_that_node(ray):
    node_ids = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    node2 = next(i for i, res in node_ids.items() if "node2" in res)
    g = Graph()
    src = g.add(Source(range(10**6)), name="src")
    a = g.add(_WhereAmI(), name="a", placement=_on("node1"))
    dies = g.add(DieAt(5), name="dies", placement=_on("node2"))
    g.connect(src, g.add(_Tensor(), name="td")).connect("td", a).connect(a, dies)
    g.connect(dies, g.add(Sink(lambda x: None)))
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert info.value.operator == "dies"
    assert node2 in str(info.value), str(info.value)


def test_an_actor_killed_on_a_worker_node_is_named_with_that_node_relayed(ray):
    node2 = _node_ids(ray)["node2"]
    g = Graph()
    src = g.add(Source(range(10**6)), name="src")
    dies = g.add(DieAt(5), name="dies", placement=Ray(num_cpus=0, node=_IPS[2]))
    g.connect(src, dies).connect(dies, g.add(Sink(lambda x: None)))
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert info.value.operator == "dies"
    text = str(info.value)
    assert f"on node {node2} ({_IPS[2]}) died" in text and "streamrl:dies:" in text, text


class _Tensor(Operator):
    def step(self, inputs):
        return {"out": TensorDict({"x": torch.tensor([float(inputs["in"])])}, [1])}


# ------------------------------------------------------------------------ placement options
def _node_ids(ray) -> dict[str, str]:
    """``{"head" | "node1" | "node2": node id}``."""
    ids = {}
    for n in ray.nodes():
        if n["Alive"]:
            ids[next(k for k in ("head", "node1", "node2") if k in n["Resources"])] = n["NodeID"]
    return ids


def _one_map(placement: Ray) -> Graph:
    """``Source([1]) -> Map "m" (placed so) -> Sink``."""
    g = Graph()
    m = g.add(Map(lambda x: x), name="m", placement=placement)
    g.connect(g.add(Source([1])), m).connect(m, g.add(Sink(lambda x: None)))
    return g


def _through(g: Graph, placements: dict[str, Ray]) -> dict[str, str]:
    """Run 4 items through one ``_WhereAmI`` per placement (a chain); ``{name: node id}``."""
    src = g.add(Source([TensorDict({"x": torch.zeros(2, 1)}, [2]) for _ in range(4)]),
                name="src")
    prev = src
    for name, placement in placements.items():
        node = g.add(_WhereAmI(), name=name, placement=placement)
        g.connect(prev, node)
        prev = node
    out = g.add(Collect(), name="out")
    g.connect(prev, out)
    g.run_sync()
    assert [float(td["x"][0, 0]) for td in out.op.items] == [len(placements)] * 4
    return {name: next(iter(g[name].op.nodes)) for name in placements}


def test_node_and_spread_place_actors_on_both_paths(ray):
    ids = _node_ids(ray)
    placements = {
        "by_id": Ray(num_cpus=0, node=ids["node1"], direct=True),
        "by_ip": Ray(num_cpus=0, node=_IPS[2]),
        "by_ip_direct": Ray(num_cpus=0, node=_IPS[1], direct=True),
        "on_driver": Ray(num_cpus=0, node="driver"),
        "spread": Ray(num_cpus=0, spread=True, direct=True),
    }
    where = _through(Graph("where"), placements)
    assert where["by_id"] == ids["node1"]
    assert where["by_ip"] == ids["node2"]
    assert where["by_ip_direct"] == ids["node1"]
    assert where["on_driver"] == ids["head"] == ray.get_runtime_context().get_node_id()
    assert where["spread"] in ids.values()


@pytest.mark.parametrize("direct", [False, True], ids=["relayed", "direct"])
@pytest.mark.parametrize("node", ["10.1.2.3", "ab" * 28])
def test_an_unknown_node_is_an_error_naming_the_alive_nodes(ray, direct, node):
    g = _one_map(Ray(num_cpus=0, node=node, direct=direct))
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert info.value.operator == "m"
    text = str(info.value.__cause__)
    assert f"node {node!r} is not an alive node" in text, text
    for i, ip in ((n["NodeID"], n["NodeManagerAddress"]) for n in ray.nodes() if n["Alive"]):
        assert f"{i} ({ip})" in text, text


def _groups(ray) -> list[dict]:
    return list(ray.util.placement_group_table().values())


def test_a_graph_owned_group_spreads_two_operators_and_is_removed(ray):
    pg = RayPlacementGroup([{"CPU": 0.1}, {"CPU": 0.1}], strategy="STRICT_SPREAD")
    before = {g["placement_group_id"] for g in _groups(ray)}
    where = _through(Graph("pg"), {  # one actor started by each path, sharing the group
        "a": Ray(num_cpus=0, placement_group=pg, bundle=0, direct=True),
        "b": Ray(num_cpus=0, placement_group=pg, bundle=1),
    })
    assert where["a"] != where["b"]
    made = [g for g in _groups(ray) if g["placement_group_id"] not in before]
    assert len(made) == 1, made  # one group for both operators
    assert made[0]["strategy"] == "STRICT_SPREAD" and made[0]["state"] == "REMOVED", made[0]
    assert set(made[0]["bundles_to_node_id"].values()) == {where["a"], where["b"]}


def test_a_group_no_node_can_hold_times_out_naming_the_bundle(ray):
    pg = RayPlacementGroup([{"CPU": 0.1}, {"CPU": 64}])
    before = {g["placement_group_id"] for g in _groups(ray)}
    g = _one_map(Ray(num_cpus=0, placement_group=pg, bundle=0, start_timeout=0.5))
    with pytest.raises(OperatorError) as info:
        g.run_sync()
    assert info.value.operator == "m"
    assert isinstance(info.value.__cause__, TimeoutError)
    assert "no alive node can hold bundle 1 {'CPU': 64}" in str(info.value.__cause__)
    made = [g for g in _groups(ray) if g["placement_group_id"] not in before]
    assert [g["state"] for g in made] == ["REMOVED"]


def test_a_users_placement_group_is_used_and_kept(ray):
    pg = ray.util.placement_group([{"CPU": 0.1}], strategy="PACK")
    try:
        ray.get(pg.ready(), timeout=30)
        (node,) = ray.util.placement_group_table(pg)["bundles_to_node_id"].values()
        where = _through(Graph("user_pg"), {
            "a": Ray(num_cpus=0, placement_group=pg, bundle=0),
            "b": Ray(num_cpus=0, placement_group=pg, direct=True),
        })
        assert where == {"a": node, "b": node}
        assert ray.util.placement_group_table(pg)["state"] == "CREATED"
    finally:
        ray.util.remove_placement_group(pg)


def test_options_conflict_and_bad_values_raise_exact_errors():
    pg = RayPlacementGroup([{"CPU": 1}])
    nid = "0f" * 28
    conflicts = [
        (dict(node=nid, spread=True), "found node and spread"),
        (dict(placement_group=pg, spread=True), "found placement_group and spread"),
        (dict(node="driver", placement_group=pg), "found node and placement_group"),
        (dict(spread=True, actor_options={"scheduling_strategy": "DEFAULT"}),
         "found spread and actor_options['scheduling_strategy']"),
    ]
    for kwargs, found in conflicts:
        with pytest.raises(ValueError, match="exclude each other") as info:
            Ray(**kwargs)
        assert str(info.value).endswith(found), str(info.value)
    bad = [
        (dict(node="nowhere"), ValueError, "node must be a node id (56 hex digits), a node's IP "
         "address or 'driver', found 'nowhere'"),
        (dict(node_soft=True), ValueError, "node_soft=True needs node=, found node=None"),
        (dict(node=nid, node_soft=1), TypeError, "node_soft must be a bool, found int"),
        (dict(bundle=0), ValueError, "bundle=0 needs placement_group=, found None"),
        (dict(placement_group=pg, bundle=1), ValueError,
         "bundle must be an index >= 0 and < 1, found 1"),
        (dict(placement_group="pg"), TypeError, "placement_group must be a "
         "ray.util.placement_group.PlacementGroup or a RayPlacementGroup, found str"),
        (dict(memory=-1), ValueError, "memory must be a number >= 0 or None, found -1"),
        (dict(actor_options={"memory": 1}), ValueError, "actor_options may not set ['memory']"),
        (dict(spread="yes"), TypeError, "spread must be a bool, found str"),
    ]
    for kwargs, cls, message in bad:
        with pytest.raises(cls) as info:
            Ray(**kwargs)
        assert str(info.value).startswith(message), str(info.value)
    with pytest.raises(ValueError, match=r"strategy must be one of \['PACK', 'SPREAD', "
                                         r"'STRICT_PACK', 'STRICT_SPREAD'\], found 'ANY'"):
        RayPlacementGroup([{"CPU": 1}], strategy="ANY")
    with pytest.raises(ValueError, match="bundle 0 must be a non-empty dict"):
        RayPlacementGroup([{}])


def test_repr_and_options_show_where():
    pg = RayPlacementGroup([{"CPU": 1}, {"GPU": 1}], strategy="SPREAD")
    assert repr(Ray(num_cpus=1, memory=2**30, node="10.0.0.1", node_soft=True)) == (
        "Ray(num_cpus=1, memory=1073741824, node='10.0.0.1', node_soft=True)")
    assert repr(Ray(placement_group=pg, bundle=1, direct=True)) == (
        "Ray(placement_group=RayPlacementGroup([{'CPU': 1}, {'GPU': 1}], strategy='SPREAD'), "
        "bundle=1, direct=True)")
    assert repr(Ray(spread=True)) == "Ray(spread=True)"
    assert Ray(num_cpus=1, memory=10, node="driver").request() == (
        "num_cpus=1, memory=10 on node 'driver'")
    opts = Ray(memory=10, spread=True).actor_options_for("x")
    assert opts["memory"] == 10 and opts["scheduling_strategy"] == "SPREAD"
    with pytest.raises(RuntimeError, match="has no Ray placement group yet"):
        Ray(placement_group=pg).actor_options_for("x")
