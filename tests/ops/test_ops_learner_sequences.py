"""Learner(sequence_length=L): minibatches of whole sequences cut from the batch's rows, the
loss run in recurrent mode from the state stored at each sequence's first step, and bad
shapes named."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.modules import GRUModule
from streamrl.modules.tensordict_module import recurrent_mode
from streamrl.objectives.common import LossModule
from streamrl.ops import Learner


class _Recording(LossModule):
    """Records what each update gets and the GRU's features over it."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = GRUModule(2, 3, in_keys=["x", "h", "is_init"], out_keys=["f", ("next", "h")])
        self.seen: list[TensorDict] = []
        self.modes: list[bool | None] = []

    def forward(self, td):
        self.modes.append(recurrent_mode())
        out = self.gru(td.clone())
        self.seen.append(td.clone().set("f", out["f"].detach()))
        return TensorDict({"loss_f": out["f"].pow(2).mean()})


def _batch(rows=3, steps=8):
    torch.manual_seed(0)
    return TensorDict({
        "x": torch.randn(rows, steps, 2),
        "h": torch.randn(rows, steps, 1, 3),  # the states the collector stored, one per step
        "is_init": torch.zeros(rows, steps, 1, dtype=torch.bool),
        "row": torch.arange(rows).unsqueeze(-1).expand(rows, steps),
        "t": torch.arange(steps).expand(rows, steps),
    }, [rows, steps])


def test_minibatches_are_whole_sequences_run_from_their_stored_state():
    loss = _Recording()
    learner = Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.0), minibatch_size=8,
                      sequence_length=4, epochs=2, shuffle=True)
    batch = _batch()
    batch["is_init"][1, 6] = True  # a new task inside the second half of row 1
    metrics = learner.step({"in": batch})["out"]
    assert metrics["updates"] == 2 * 3 == learner.updates_per_batch(24)  # 6 sequences / 2
    assert loss.modes == [True] * 6 and recurrent_mode() is None  # only inside the updates
    starts = []
    for mb in loss.seen:
        assert mb.batch_size == (2, 4)
        for seq in mb:
            row, t = int(seq["row"][0]), seq["t"]
            assert (seq["row"] == row).all() and t.tolist() == list(range(int(t[0]), int(t[0]) + 4))
            starts.append((row, int(t[0])))
            # the GRU stepped by hand from the state stored at the sequence's first step
            h = batch["h"][row, int(t[0])]
            for k in range(4):
                if batch["is_init"][row, int(t[k])]:
                    h = torch.zeros_like(h)
                step = TensorDict({"x": seq["x"][k:k + 1], "h": h.unsqueeze(0)}, [1])
                with torch.no_grad():
                    out = loss.gru(step)
                torch.testing.assert_close(seq["f"][k], out["f"][0])
                h = out["next", "h"][0]
    # each epoch sees every sequence once, in a shuffled order
    expected = sorted((r, s) for r in range(3) for s in (0, 4))
    assert sorted(starts[:6]) == expected == sorted(starts[6:]) and starts[:6] != expected


def test_without_sequences_rows_are_single_steps():
    loss = _Recording()
    learner = Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.0), minibatch_size=8)
    learner.step({"in": _batch()})
    assert [mb.batch_size for mb in loss.seen] == [torch.Size([8])] * 3
    assert loss.modes == [None] * 3


def test_bad_sequence_shapes_are_named():
    net = nn.Linear(1, 1)
    sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    learner = Learner(_Recording(), sgd, minibatch_size=10, sequence_length=5)
    with pytest.raises(ValueError, match=r"needs batches whose last dim \(time\) is a multiple "
                                         r"of 5, found batch_size \[3, 8\]"):
        learner.step({"in": _batch()})
    with pytest.raises(ValueError, match=r"minibatch_size \(6\) must be a multiple of "
                                         r"sequence_length \(4\)"):
        Learner(net, sgd, minibatch_size=6, sequence_length=4)
    with pytest.raises(ValueError, match="sequence_length must be a positive int or None, got 0"):
        Learner(net, sgd, sequence_length=0)
