"""GradientStep: the update arithmetic Learner and the Trainer's OptimizerHook share."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.ops import GradientStep


def _losses(net, scale=1.0):
    x = torch.ones(4, 2)
    return TensorDict({"loss_a": net(x).pow(2).mean() * scale, "loss_b": net(x).mean(),
                       "alpha": torch.tensor(0.5), "vector": torch.ones(3)})


def test_sums_loss_terms_and_steps():
    torch.manual_seed(0)
    net, twin = nn.Linear(2, 1), nn.Linear(2, 1)
    twin.load_state_dict(net.state_dict())
    scalars = GradientStep(torch.optim.SGD(net.parameters(), lr=0.1))(_losses(net))
    assert set(scalars) == {"loss_a", "loss_b", "alpha"}  # scalars only; no clipping, no norm
    # by hand: the same update
    opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    losses = _losses(twin)
    (losses["loss_a"] + losses["loss_b"]).backward()
    opt.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_loss_keys_select_terms():
    net = nn.Linear(2, 1)
    step = GradientStep(torch.optim.SGD(net.parameters(), lr=0.1), loss_keys="loss_b")
    assert step.total_loss(_losses(net)).item() == pytest.approx(_losses(net)["loss_b"].item())
    with pytest.raises(KeyError, match=r"no \['loss_c'\]"):
        GradientStep(torch.optim.SGD(net.parameters(), lr=0.1), loss_keys=["loss_c"])(_losses(net))
    with pytest.raises(ValueError, match="no 'loss\\*' entries"):
        GradientStep(torch.optim.SGD(net.parameters(), lr=0.1))(TensorDict({"x": torch.ones(())}))


def test_stale_gradients_are_cleared_before_backward():
    net = nn.Linear(2, 1)
    for p in net.parameters():
        p.grad = torch.full_like(p, 1e6)
    before = [p.detach().clone() for p in net.parameters()]
    GradientStep(torch.optim.SGD(net.parameters(), lr=0.1))(_losses(net))
    assert all((p - b).abs().max() < 10 for p, b in zip(net.parameters(), before, strict=True))


def test_clip_by_norm_reports_the_norm_and_inf_only_measures():
    net = nn.Linear(2, 1)
    step = GradientStep(torch.optim.SGD(net.parameters(), lr=1.0), max_grad_norm=0.1)
    before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    out = step(_losses(net, scale=100.0))
    after = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert out["grad_norm"] > 0.1 and (after - before).norm() == pytest.approx(0.1, rel=1e-4)
    measure = GradientStep(torch.optim.SGD(net.parameters(), lr=0.0), max_grad_norm=math.inf)
    assert math.isfinite(measure(_losses(net))["grad_norm"].item())


def test_clip_by_value():
    net = nn.Linear(2, 1)
    before = net.weight.detach().clone()
    GradientStep(torch.optim.SGD(net.parameters(), lr=1.0), clip_value=0.01)(
        _losses(net, scale=100.0))
    assert (net.weight.detach() - before).abs().max() <= 0.01 + 1e-7


def test_step_and_after_step_run_under_the_lock():
    net = nn.Linear(2, 1)
    lock = threading.Lock()
    held = []
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    real = opt.step
    opt.step = lambda *a, **k: (held.append(lock.locked()), real(*a, **k))[1]
    GradientStep(opt, lock=lock)(_losses(net), after_step=lambda: held.append(lock.locked()))
    assert held == [True, True] and not lock.locked()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"loss_keys": []}, ValueError, "loss_keys"),
    ({"max_grad_norm": 0.0}, ValueError, "max_grad_norm"),
    ({"clip_value": -1.0}, ValueError, "clip_value"),
    ({"clip_value": math.inf}, ValueError, "clip_value"),
    ({"max_grad_norm": 1.0, "clip_value": 1.0}, ValueError, "not both"),
    ({"lock": object()}, TypeError, "context manager"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        GradientStep(torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1), **kwargs)
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        GradientStep("sgd")
    with pytest.raises(TypeError, match="TensorDict"):
        GradientStep(torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1))({"loss": 1})
