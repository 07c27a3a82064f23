"""BCLoss against hand computations: squared error, likelihood, padding, reductions."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import (
    NormalParamExtractor,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
)
from torch import nn
from torch.distributions import Normal

from streamrl.objectives import BCLoss


def _linear_actor(out_key="action"):
    net = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.eye(2))  # the action is the observation
    return TensorDictModule(net, ["observation"], [out_key])


def _data():
    return TensorDict({"observation": torch.tensor([[1.0, 2.0], [0.0, -1.0]]),
                       "action": torch.tensor([[0.0, 2.0], [1.0, 1.0]])}, [2])


@pytest.mark.parametrize("loss_function, expected", [
    (None, (1.0 + 0.0 + 1.0 + 4.0) / 4),  # deterministic actor: squared error
    ("mse", (1.0 + 0.0 + 1.0 + 4.0) / 4),
    ("l1", (1.0 + 0.0 + 1.0 + 2.0) / 4),
    ("smooth_l1", (0.5 + 0.0 + 0.5 + 1.5) / 4),
])
def test_deterministic_by_hand(loss_function, expected):
    out = BCLoss(_linear_actor(), loss_function=loss_function)(_data())
    torch.testing.assert_close(out["loss_bc"], torch.tensor(expected))


def test_reductions_and_callable():
    data = _data()
    none = BCLoss(_linear_actor(), reduction="none")(data)["loss_bc"]
    torch.testing.assert_close(none, torch.tensor([[1.0, 0.0], [1.0, 4.0]]))
    total = BCLoss(_linear_actor(), reduction="sum")(data)["loss_bc"]
    torch.testing.assert_close(total, torch.tensor(6.0))
    cubic = BCLoss(_linear_actor(), loss_function=lambda p, e: (p - e).abs() ** 3)(data)
    torch.testing.assert_close(cubic["loss_bc"], torch.tensor((1.0 + 0.0 + 1.0 + 8.0) / 4))


def test_likelihood_by_hand():
    # a Gaussian with mean = observation and scale = 1 (NormalParamExtractor: softplus-biased)
    net = nn.Linear(2, 4, bias=False)
    with torch.no_grad():
        net.weight.zero_()
        net.weight[:2].copy_(torch.eye(2))
    actor = ProbabilisticTensorDictSequential(
        TensorDictModule(nn.Sequential(net, NormalParamExtractor()), ["observation"],
                         ["loc", "scale"]),
        ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                      distribution_class=Normal))
    data = _data()
    scale = nn.functional.softplus(torch.tensor(0.0) + 0.5413248538970947)  # ~1.0
    loc = data["observation"]
    # torch's Normal has no event dim: the loss is the mean of the per-dimension NLLs
    nll = -Normal(loc, scale).log_prob(data["action"])
    out = BCLoss(actor)(data)
    torch.testing.assert_close(out["loss_bc"], nll.mean(), rtol=1e-4, atol=1e-4)
    assert abs(float(scale) - 1.0) < 1e-3
    expected = 0.5 * (1 + 0 + 1 + 4) / 4 + 0.5 * math.log(2 * math.pi)
    assert abs(float(out["loss_bc"].detach()) - expected) < 1e-2
    # with a loss_function the deterministic action (the mean) is regressed instead
    mse = BCLoss(actor, loss_function="l2")(data)["loss_bc"]
    torch.testing.assert_close(mse, torch.tensor(6.0 / 4))


def test_padding_mask_leaves_entries_out_of_the_mean():
    actor = TensorDictModule(nn.Sequential(nn.Linear(2, 4), nn.Unflatten(-1, (2, 2))),
                             ["observation"], [("vla", "chunk")])
    loss = BCLoss(actor, loss_function="l1")
    loss.set_keys(action=("vla", "chunk"), pad_mask="is_pad")
    assert loss.in_keys == ["observation", ("vla", "chunk"), "is_pad"]
    data = TensorDict({"observation": torch.randn(3, 2), "vla": {"chunk": torch.randn(3, 2, 2)},
                       "is_pad": torch.tensor([[False, False], [False, True], [True, True]])},
                      [3])
    pred = actor(data.clone())["vla", "chunk"].detach()
    err = (pred - data["vla", "chunk"]).abs()
    expected = (err[0].sum() + err[1, 0].sum()) / 6
    torch.testing.assert_close(loss(data)["loss_bc"].detach(), expected)
    data["is_pad"] = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="pad_mask"):
        loss(data)


def test_keyword_inputs_and_bad_arguments():
    loss = BCLoss(_linear_actor())
    data = _data()
    value = loss(observation=data["observation"], action=data["action"])
    torch.testing.assert_close(value, loss(data)["loss_bc"])
    assert loss.out_keys == ["loss_bc"]
    with pytest.raises(KeyError, match="action"):
        loss(data.exclude("action"))
    with pytest.raises(ValueError, match="loss_function"):
        BCLoss(_linear_actor(), loss_function="cross_entropy")
    with pytest.raises(ValueError, match="reduction"):
        BCLoss(_linear_actor(), reduction="max")
    with pytest.raises(TypeError, match="TensorDict module"):
        BCLoss(nn.Linear(2, 2))
    with pytest.raises(NotImplementedError, match="does not use a value estimator"):
        loss.make_value_estimator()
    bad = data.clone()
    bad["action"] = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="shape"):
        loss(bad)


def test_training_fits_the_demonstrations():
    torch.manual_seed(0)
    actor = TensorDictModule(nn.Linear(2, 2), ["observation"], ["action"])
    loss = BCLoss(actor)
    obs = torch.randn(64, 2)
    data = TensorDict({"observation": obs, "action": obs @ torch.tensor([[0.5, -1.0],
                                                                         [2.0, 0.0]])}, [64])
    optim = torch.optim.Adam(actor.parameters(), lr=0.05)
    first = float(loss(data)["loss_bc"].detach())
    for _ in range(200):
        optim.zero_grad()
        loss(data)["loss_bc"].backward()
        optim.step()
    assert float(loss(data)["loss_bc"]) < 0.01 * first
