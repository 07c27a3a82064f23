"""plain_parent (streamrl._utils.plain_td): the dict holding a nested key in a plain TensorDict."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictParams

from streamrl._utils.plain_td import plain_parent


def nested():
    return TensorDict({"x": torch.zeros(()),
                       "agents": TensorDict({"obs": torch.ones(2, 3)}, [2])}, [])


def test_reads_and_writes_through_plain_tensordicts():
    td = nested()
    parent, name = plain_parent(td, ("agents", "obs"), writable=True)
    parent[name] = torch.full((2, 3), 5.0)
    assert (td["agents", "obs"] == 5).all()
    parent, name = plain_parent(td, "x")
    assert name == "x" and parent[name] is td.get("x")
    parent, name = plain_parent(td, ("agents", "new"))  # an absent leaf: its dict is there
    assert name not in parent


def test_other_paths_are_left_to_get_and_set():
    td = nested()
    assert plain_parent(td, ("missing", "obs")) is None
    assert plain_parent(td, ("x", "obs")) is None  # a tensor on the path
    locked = nested().lock_()
    assert plain_parent(locked, ("agents", "obs")) is not None  # reading a locked one is fine
    assert plain_parent(locked, ("agents", "obs"), writable=True) is None
    assert plain_parent(TensorDictParams(nested()), ("agents", "obs")) is None
