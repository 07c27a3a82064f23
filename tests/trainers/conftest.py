"""Small pieces the trainer tests share: a loss, batches, a collector that records its calls."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.objectives import LossModule
from streamrl.trainers import Trainer


class MSELoss(LossModule):
    """``loss_mse``: a linear net regressing ``y`` from ``x`` (writes ``pred`` into the batch)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 1)

    def forward(self, td):
        pred = self.net(td["x"])
        td.set("pred", pred.detach())
        return TensorDict({"loss_mse": (pred - td["y"]).pow(2).mean(), "n": torch.tensor(1.0)})


def make_batch(n=8, seed=None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    x = torch.randn(n, 2, generator=g)
    return TensorDict({"x": x, "y": x.sum(-1, keepdim=True),
                       ("next", "reward"): torch.ones(n, 1)}, [n])


class ListCollector:
    """A collector over fixed batches that records shutdown, seeding and weight updates."""

    def __init__(self, batches, init_random_frames=0):
        self.batches = batches
        self.init_random_frames = init_random_frames
        self.shutdowns = 0
        self.seeds = []
        self.weight_updates = 0

    def __iter__(self):
        yield from self.batches

    def shutdown(self):
        self.shutdowns += 1

    def set_seed(self, seed):
        self.seeds.append(seed)
        return seed

    def update_policy_weights_(self, weights=None):
        self.weight_updates += 1


class RecordingLogger:
    def __init__(self):
        self.rows = []
        self.flushes = 0

    def log_scalar(self, name, value, step=None):
        self.rows.append((name, value, step))

    def flush(self):
        self.flushes += 1

    def names(self):
        return {name for name, _, _ in self.rows}


@pytest.fixture
def loss():
    torch.manual_seed(0)
    return MSELoss()


@pytest.fixture
def make_trainer(loss):
    """``make_trainer(n_batches=3, **trainer kwargs)`` with an SGD optimizer over ``loss``."""

    def make(n_batches=3, batch_size=8, collector=None, optimizer=True, **kwargs):
        collector = collector or ListCollector([make_batch(batch_size, i)
                                               for i in range(n_batches)])
        args = {"total_frames": n_batches * batch_size, "frame_skip": 1,
                "optim_steps_per_batch": 2, "progress_bar": False}
        args.update(kwargs)
        opt = torch.optim.SGD(loss.parameters(), lr=0.05) if optimizer else None
        return Trainer(collector=collector, loss_module=loss, optimizer=opt, **args)

    return make
