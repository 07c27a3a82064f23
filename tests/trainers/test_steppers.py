"""Optimization steppers: Trainer(optimization_stepper=...), the default stepper (same update
as the hook path), mixed precision and gradient accumulation, state and errors."""

from __future__ import annotations

import pytest
import torch
from conftest import ListCollector, MSELoss, make_batch
from tensordict import TensorDict
from torch import nn

from streamrl.trainers import (
    DefaultOptimizationStepper,
    MixedPrecisionOptimizationStepper,
    OptimizationStepper,
    Trainer,
)


def _trainer(loss, batches, **kwargs):
    kwargs.setdefault("optimizer", torch.optim.SGD(loss.parameters(), lr=0.1))
    return Trainer(collector=ListCollector(batches), total_frames=8 * len(batches), frame_skip=1,
                   optim_steps_per_batch=2, loss_module=loss, progress_bar=False, **kwargs)


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_default_stepper_updates_like_the_optimizer_hook():
    batches = [make_batch(8, i) for i in range(3)]
    torch.manual_seed(0)
    hooked = MSELoss()
    torch.manual_seed(0)
    stepped = MSELoss()
    _trainer(hooked, batches, clip_norm=0.5).train()
    trainer = _trainer(stepped, batches, clip_norm=0.5,
                       optimization_stepper=DefaultOptimizationStepper())
    calls = []
    trainer.register_op("post_loss", lambda sub: calls.append("post_loss"))
    trainer.register_op("post_optim", lambda: calls.append("post_optim"))
    trainer.train()
    for a, b in zip(_params(hooked), _params(stepped), strict=True):
        torch.testing.assert_close(a, b)
    # the stepper replaces loss + post_loss + optimizer; post_optim still runs
    assert calls == ["post_optim"] * 6 and trainer.optim_count == 6
    assert set(trainer.state_dict()) >= {"optimization_stepper", "optimizer"}


def test_default_stepper_loss_components_and_grad_norm():
    net_a, net_b = nn.Linear(2, 1), nn.Linear(2, 1)

    def loss(td):
        return TensorDict({"loss_a": net_a(td["x"]).pow(2).mean(),
                           "loss_b": net_b(td["x"]).pow(2).mean()})

    before_b = _params(net_b)
    opt = torch.optim.SGD([*net_a.parameters(), *net_b.parameters()], lr=0.1)
    trainer = Trainer(collector=ListCollector([make_batch(8, 0)]), total_frames=8, frame_skip=1,
                      optim_steps_per_batch=1, loss_module=loss, optimizer=opt,
                      optimization_stepper=DefaultOptimizationStepper(["loss_a"]),
                      progress_bar=False)
    out = trainer.optimization_stepper.step(trainer, make_batch(8, 1))
    assert {"loss_a", "loss_b", "grad_norm"} <= set(out.keys())
    assert all(not v.requires_grad for v in out.values())
    for a, b in zip(before_b, _params(net_b), strict=True):
        assert torch.equal(a, b)  # loss_b is logged, not minimised
    with pytest.raises(ValueError, match="must not be empty"):
        DefaultOptimizationStepper([])


def test_default_stepper_needs_the_trainer_optimizer(loss):
    trainer = _trainer(loss, [make_batch(8, 0)], optimizer=None,
                       optimization_stepper=DefaultOptimizationStepper())
    with pytest.raises(RuntimeError, match="uses the trainer's optimizer"):
        trainer.train()


def test_accumulation_steps_once_per_n_micro_batches_on_their_mean():
    torch.manual_seed(0)
    net = nn.Linear(2, 1)
    ref = nn.Linear(2, 1)
    ref.load_state_dict(net.state_dict())
    stepper = MixedPrecisionOptimizationStepper(torch.optim.SGD(net.parameters(), lr=0.5),
                                                gradient_accumulation_steps=2, clip_norm=None)

    class Host:
        def compute_loss(self, td):
            return TensorDict({"loss": net(td["x"]).pow(2).mean()})

    b1, b2 = make_batch(4, 1), make_batch(4, 2)
    start = _params(net)
    first = stepper.step(Host(), b1)
    assert "grad_norm" not in first.keys()
    assert all(torch.equal(a, b) for a, b in zip(start, _params(net), strict=True))
    second = stepper.step(Host(), b2)
    assert "grad_norm" in second.keys() and stepper.micro_steps == 2
    # the same update as one SGD step on the mean of the two losses
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.5)
    ((ref(b1["x"]).pow(2).mean() + ref(b2["x"]).pow(2).mean()) / 2).backward()
    ref_opt.step()
    for a, b in zip(_params(ref), _params(net), strict=True):
        torch.testing.assert_close(a, b)
    assert all(p.grad is None for p in net.parameters())  # cleared after the step


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_trains_under_autocast(dtype):
    torch.manual_seed(0)
    loss = MSELoss()
    seen = []
    forward = loss.forward

    def spy(td):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return forward(td)

    loss.forward = spy
    stepper = MixedPrecisionOptimizationStepper(torch.optim.SGD(loss.parameters(), lr=0.05),
                                                mixed_precision=True, autocast_dtype=dtype)
    assert (stepper.scaler is not None) == (dtype == torch.float16)
    before = _params(loss)
    trainer = _trainer(loss, [make_batch(8, i) for i in range(2)], optimizer=None,
                       optimization_stepper=stepper)
    trainer.train()
    assert seen == [dtype] * 4
    assert any(not torch.equal(a, b) for a, b in zip(before, _params(loss), strict=True))
    state = stepper.state_dict()
    assert state["micro_steps"] == 4 and ("scaler" in state) == (dtype == torch.float16)


def test_mixed_precision_state_round_trip_and_errors():
    net = nn.Linear(2, 1)
    stepper = MixedPrecisionOptimizationStepper(torch.optim.Adam(net.parameters()),
                                                gradient_accumulation_steps=3)
    stepper.micro_steps = 2
    other = MixedPrecisionOptimizationStepper(torch.optim.Adam(net.parameters()),
                                              gradient_accumulation_steps=3)
    other.load_state_dict(stepper.state_dict())
    assert other.micro_steps == 2
    with pytest.raises(ValueError, match="needs keys"):
        other.load_state_dict({"micro_steps": 1})
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        MixedPrecisionOptimizationStepper(torch.optim.Adam(net.parameters()),
                                          gradient_accumulation_steps=0)
    with pytest.raises(ValueError, match="clip_norm"):
        MixedPrecisionOptimizationStepper(torch.optim.Adam(net.parameters()), clip_norm=-1.0)
    with pytest.raises(TypeError, match="autocast_dtype"):
        MixedPrecisionOptimizationStepper(torch.optim.Adam(net.parameters()),
                                          autocast_dtype=torch.int8)
    with pytest.raises(TypeError, match="optimizer"):
        MixedPrecisionOptimizationStepper(net)


def test_custom_stepper_and_bad_steppers(loss):
    class Nothing(OptimizationStepper):
        pass

    with pytest.raises(NotImplementedError, match="Nothing must implement step"):
        Nothing().step(None, make_batch(2))
    with pytest.raises(TypeError, match="optimization_stepper must have step"):
        _trainer(loss, [make_batch(8, 0)], optimization_stepper=object())

    class ReturnsDict(OptimizationStepper):
        def step(self, trainer, sub_batch):
            return {"loss": 1.0}

    trainer = _trainer(loss, [make_batch(8, 0)], optimization_stepper=ReturnsDict())
    with pytest.raises(TypeError, match="must return a TensorDict"):
        trainer.train()
    with pytest.raises(AttributeError, match="no method 'nope'"):
        _trainer(loss, [make_batch(8, 0)]).compute_loss(make_batch(2), method="nope")
