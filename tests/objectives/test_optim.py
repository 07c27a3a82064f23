"""group_optimizers and KLAdaptiveLR."""

import pytest
import torch
from torch import nn

from streamrl.objectives import KLAdaptiveLR, group_optimizers
from streamrl.objectives import utils as objectives_utils


def _params():
    return nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))


def test_grouped_optimizer_steps_every_group_with_its_own_lr():
    a, b = _params()
    grouped = group_optimizers(torch.optim.SGD([a], lr=0.1), torch.optim.SGD([b], lr=0.5))
    assert isinstance(grouped, torch.optim.SGD) and len(grouped.param_groups) == 2
    (a.sum() + 2 * b.sum()).backward()
    grouped.step()
    torch.testing.assert_close(a.detach(), torch.full((2,), 0.9))
    torch.testing.assert_close(b.detach(), torch.full((3,), 0.0))  # 1 - 0.5 * 2


def test_grouped_optimizer_shares_groups_and_state():
    a, b = _params()
    first, second = torch.optim.Adam([a], lr=0.1), torch.optim.Adam([b], lr=0.2)
    (a.sum() + b.sum()).backward()
    first.step()
    grouped = group_optimizers(first, second)
    assert grouped.param_groups[0] is first.param_groups[0]
    assert grouped.state[a]["step"] == first.state[a]["step"]  # Adam's moments carry over
    first.param_groups[0]["lr"] = 0.01
    assert grouped.param_groups[0]["lr"] == 0.01


def test_group_optimizers_bad_input():
    a, b = _params()
    with pytest.raises(ValueError, match="at least one"):
        group_optimizers()
    with pytest.raises(ValueError, match="one type"):
        group_optimizers(torch.optim.Adam([a]), torch.optim.SGD([b], lr=0.1))
    with pytest.raises(TypeError, match="Optimizer"):
        group_optimizers(torch.optim.Adam([a]), [b])
    with pytest.raises(ValueError, match="more than one"):
        group_optimizers(torch.optim.Adam([a]), torch.optim.Adam([a]))


def test_kl_adaptive_lr_schedule():
    a, _ = _params()
    opt = torch.optim.Adam([a], lr=1e-3)
    sched = KLAdaptiveLR(opt, target_kl=0.01, factor=2.0, min_lr=1e-4, max_lr=3e-3)
    sched.step(torch.tensor(0.05))  # > 2 * target: halve
    assert sched.get_last_lr() == [5e-4] and sched.last_kl == pytest.approx(0.05)
    sched.step(0.015)  # inside [target / 2, 2 * target]: unchanged
    assert sched.get_last_lr() == [5e-4]
    sched.step(0.0)  # the policy did not move: unchanged
    assert sched.get_last_lr() == [5e-4]
    for _ in range(3):  # < target / 2: double, clamped at max_lr
        sched.step(0.001)
    assert sched.get_last_lr() == [3e-3]
    for _ in range(10):
        sched.step(1.0)
    assert sched.get_last_lr() == [1e-4]
    state = sched.state_dict()
    other = KLAdaptiveLR(opt, target_kl=0.5)
    other.load_state_dict(state)
    assert other.state_dict() == state


@pytest.mark.parametrize("kwargs, match", [
    ({"target_kl": 0.0}, "target_kl"),
    ({"target_kl": 0.01, "factor": 1.0}, "factor"),
    ({"target_kl": 0.01, "min_lr": 1.0, "max_lr": 0.1}, "min_lr"),
    ({"target_kl": 0.01, "min_lr": -1.0}, "min_lr"),
])
def test_kl_adaptive_lr_bad_arguments(kwargs, match):
    a, _ = _params()
    with pytest.raises(ValueError, match=match):
        KLAdaptiveLR(torch.optim.Adam([a]), **kwargs)


def test_kl_adaptive_lr_bad_step():
    a, _ = _params()
    sched = KLAdaptiveLR(torch.optim.Adam([a]), 0.01)
    with pytest.raises(ValueError, match="finite"):
        sched.step(float("nan"))
    with pytest.raises(TypeError, match="Optimizer"):
        KLAdaptiveLR([a], 0.01)
    with pytest.raises(KeyError, match="factor"):
        sched.load_state_dict({"target_kl": 0.1})


def test_utils_path_exports():
    assert objectives_utils.KLAdaptiveLR is KLAdaptiveLR
    assert objectives_utils.group_optimizers is group_optimizers
