"""The reusable operator contract applied to the built-in operator kinds."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.graph import Batcher, Map, Operator, Source
from streamrl.graph.testing import OperatorContract, run_operator


def _double(x):
    return 2 * x


class TestMapContract(OperatorContract):
    def make_operator(self):
        return Map(_double)

    def feeds(self):
        return {"in": [TensorDict({"x": torch.arange(4.0)}, [4]) * i for i in range(5)]}


class TestBatcherContract(OperatorContract):
    def make_operator(self):
        return Batcher(3)

    def feeds(self):
        return {"in": list(range(8))}


class TestSourceContract(OperatorContract):
    placements = ("inline", "thread")

    def make_operator(self):
        return Source(range(5))


class Split(Operator):
    outputs = ("even", "odd")

    def step(self, inputs):
        x = inputs["in"]
        return {"even" if x % 2 == 0 else "odd": x}


def test_run_operator_multiple_ports_and_bad_feeds():
    assert run_operator(Split(), {"in": range(5)}) == {"even": [0, 2, 4], "odd": [1, 3]}
    with pytest.raises(ValueError, match=r"missing \['in'\], unknown \['x'\]"):
        run_operator(Split(), {"x": [1]})
