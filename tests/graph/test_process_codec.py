"""The process placement's slot codec: TensorDicts cross into shared buffers reused while
their structure holds, nested TensorDicts (an agent group's ``[*batch, n_agents]``) keep
their batch sizes, and a structure change takes a new buffer."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from streamrl.graph.process import SlotCodec


def _group_batch(n_agents: int, fill: float) -> TensorDict:
    agents = TensorDict({"observation": torch.full((4, 5, n_agents, 3), fill),
                         "info": TensorDict({"x": torch.full((4, 5, n_agents, 1), fill)},
                                            [4, 5, n_agents])}, [4, 5, n_agents])
    return TensorDict({"agents": agents, "done": torch.zeros(4, 5, 1, dtype=torch.bool)},
                      [4, 5])


def test_nested_batch_sizes_survive_the_shared_buffer():
    tx, rx = SlotCodec(), SlotCodec()
    first = rx.decode(tx.encode({"out": _group_batch(3, 1.0)}))["out"]
    assert first["agents"].batch_size == (4, 5, 3)
    assert first["agents", "info"].batch_size == (4, 5, 3)
    # the second message reuses the buffer (only a handle crosses) and reads its own values
    message = tx.encode({"out": _group_batch(3, 2.0)})
    assert message["out"][2] is None
    second = rx.decode(message)["out"]
    assert second["agents"].batch_size == (4, 5, 3)
    assert bool((second["agents", "observation"] == 2.0).all())
    assert bool((first["agents", "observation"] == 1.0).all())  # decoded copies stay


def test_a_changed_nested_batch_size_takes_a_new_buffer():
    tx, rx = SlotCodec(), SlotCodec()
    rx.decode(tx.encode({"out": _group_batch(3, 1.0)}))
    # the same leaves seen flat: one agent dim folded into the group's batch size or not
    flat = _group_batch(3, 5.0)
    flat["agents"].batch_size = torch.Size([4, 5])
    message = tx.encode({"out": flat})
    assert message["out"][2] is not None
    got = rx.decode(message)["out"]
    assert got["agents"].batch_size == (4, 5)
    assert bool((got["agents", "observation"] == 5.0).all())
