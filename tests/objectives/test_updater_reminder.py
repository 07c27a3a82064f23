"""A loss with target parameters and no target updater reminds the user once (TorchRL's
UserWarning), unless RL_WARNINGS=0."""

import warnings

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.modules import QValueActor
from streamrl.objectives import DQNLoss, HardUpdate, SoftUpdate


def _loss(delay_value=True):
    net = QValueActor(nn.Linear(3, 2), in_keys=["observation"], action_space="one_hot")
    return DQNLoss(net, action_space="one_hot", delay_value=delay_value)


def _batch():
    return TensorDict({
        "observation": torch.randn(4, 3), "action": torch.eye(2)[[0, 1, 0, 1]].long(),
        "next": {"observation": torch.randn(4, 3), "reward": torch.ones(4, 1),
                 "done": torch.zeros(4, 1, dtype=torch.bool),
                 "terminated": torch.zeros(4, 1, dtype=torch.bool)}}, [4])


def test_warns_once_without_an_updater(monkeypatch):
    monkeypatch.setenv("RL_WARNINGS", "1")
    loss = _loss()
    with pytest.warns(UserWarning, match="No target network updater"):
        loss(_batch())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(_batch())  # once per loss


@pytest.mark.parametrize("updater", [lambda loss: SoftUpdate(loss, tau=0.1),
                                     lambda loss: HardUpdate(loss, period=2)])
def test_no_warning_with_an_updater_without_targets_or_when_silenced(monkeypatch, updater):
    monkeypatch.setenv("RL_WARNINGS", "1")
    loss = _loss()
    updater(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(_batch())
        _loss(delay_value=False)(_batch())  # no target parameters
    monkeypatch.setenv("RL_WARNINGS", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _loss()(_batch())
