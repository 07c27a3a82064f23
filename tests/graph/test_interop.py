"""torchdata round trip: a graph output as a BaseNode, a BaseNode as a graph source."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchdata.nodes import BaseNode, IterableWrapper, Loader
from torchdata.nodes import Batcher as TDBatcher

from streamrl.graph import Collect, Graph, GraphNode, Map, NodeSource, Source

from .helpers import LeakCheck


def test_round_trip_torchdata_graph_torchdata():
    leaks = LeakCheck()
    g = Graph()
    src = g.add(NodeSource(TDBatcher(IterableWrapper(range(10)), batch_size=3)), name="src")
    to_td = g.add(
        Map(lambda xs: TensorDict({"x": torch.tensor(xs, dtype=torch.float32)}, [len(xs)])),
        name="to_td", placement="thread",
    )
    g.connect(src, to_td)
    node = g.as_node(to_td)
    assert isinstance(node, BaseNode)
    loader = Loader(node)
    got = [td["x"].tolist() for td in loader]
    assert got == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # torchdata's Batcher drops the last
    # a second epoch restarts the graph
    assert [td["x"].tolist() for td in loader] == got
    node.close()
    leaks.assert_clean()


def test_graph_node_state_resumes():
    g = Graph()
    src, sq = g.add(Source(range(6))), g.add(Map(lambda x: x * x), name="sq")
    g.connect(src, sq)
    node = GraphNode(g, "sq.out")
    assert [next(node), next(node)] == [0, 1]
    state = node.state_dict()
    assert state == {"num_yielded": 2}
    node.reset(state)
    assert list(node) == [4, 9, 16, 25]
    with pytest.raises(ValueError, match=r"operator\.output_port"):
        GraphNode(g, "sq.nope")


def test_node_source_state_round_trip():
    g = Graph()
    src, out = g.add(NodeSource(IterableWrapper(range(5))), name="src"), g.add(Collect())
    g.connect(src, out)
    g.run_sync()
    assert out.op.items == list(range(5))
    with pytest.raises(TypeError, match="BaseNode"):
        NodeSource(range(3))
    # resume a fresh source from a saved state
    node = IterableWrapper(range(5))
    node.reset()
    next(node), next(node)
    src2 = NodeSource(IterableWrapper(range(5)))
    src2.load_state_dict({"node": node.state_dict()})
    g = Graph()
    out = g.add(Collect())
    g.connect(g.add(src2), out)
    g.run_sync()
    assert out.op.items == [2, 3, 4]
