"""Parameter schedulers of a sampler's attributes (TorchRL 0.14's replay_buffers.scheduler)."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    PrioritizedSampler,
    RandomSampler,
    TensorDictPrioritizedReplayBuffer,
)
from streamrl.data.replay_buffers.scheduler import (
    LambdaScheduler,
    LinearScheduler,
    SchedulerList,
    StepScheduler,
)


def _rb(alpha=0.6, beta=0.4):
    rb = TensorDictPrioritizedReplayBuffer(alpha=alpha, beta=beta, storage=LazyTensorStorage(50))
    rb.extend(TensorDict({"x": torch.arange(50.0)}, [50]))
    return rb


def test_linear_ramp_then_flat():
    rb = _rb()
    s = LinearScheduler(rb, "alpha", final_value=0.0, num_steps=3)
    seen = []
    for _ in range(5):
        s.step()
        seen.append(round(rb.sampler.alpha, 4))
    assert seen == [0.4, 0.2, 0.0, 0.0, 0.0]
    rb.sample(8)  # the sampler works with the scheduled value


def test_step_scheduler_modes_and_clamping():
    rb = _rb(beta=1.0)
    s = StepScheduler(rb, "beta", gamma=0.5, n_steps=2, min_value=0.3)
    seen = []
    for _ in range(6):
        s.step()
        seen.append(rb.sampler.beta)
    assert seen == [1.0, 0.5, 0.5, 0.3, 0.3, 0.3]
    sampler = PrioritizedSampler(10, alpha=0.5, beta=0.1)  # a sampler directly
    add = StepScheduler(sampler, "beta", gamma=0.25, mode="additive", max_value=0.5)
    for _ in range(3):
        add.step()
    assert sampler.beta == 0.5


def test_lambda_and_list_and_state():
    rb = _rb(alpha=0.8, beta=0.2)
    both = SchedulerList([LambdaScheduler(rb, "alpha", lambda n: 1.0 / (n + 1)),
                          LinearScheduler(rb, "beta", 1.0, 4)])
    both.step()
    assert rb.sampler.alpha == pytest.approx(0.4) and rb.sampler.beta == pytest.approx(0.4)
    state = both.state_dict()
    rb2 = _rb(alpha=0.8, beta=0.2)
    again = SchedulerList([LambdaScheduler(rb2, "alpha", lambda n: 1.0 / (n + 1)),
                           LinearScheduler(rb2, "beta", 1.0, 4)])
    again.load_state_dict(state)
    both.step()
    again.step()
    assert rb2.sampler.alpha == rb.sampler.alpha and rb2.sampler.beta == rb.sampler.beta


def test_bad_arguments():
    rb = _rb()
    with pytest.raises(ValueError, match="no attribute 'gamma'"):
        LinearScheduler(rb, "gamma", 1.0, 3)
    with pytest.raises(ValueError, match="no attribute 'beta'"):
        LinearScheduler(RandomSampler(), "beta", 1.0, 3)
    with pytest.raises(ValueError, match="num_steps"):
        LinearScheduler(rb, "beta", 1.0, 0)
    with pytest.raises(ValueError, match="mode"):
        StepScheduler(rb, "beta", mode="exponential")
    with pytest.raises(ValueError, match="above max_value"):
        StepScheduler(rb, "beta", min_value=1.0, max_value=0.5)
    with pytest.raises(TypeError, match="callable"):
        LambdaScheduler(rb, "beta", 3)
    with pytest.raises(TypeError, match="ParameterScheduler"):
        SchedulerList([object()])
    with pytest.raises(ValueError, match="scheduler state is for"):
        LinearScheduler(rb, "beta", 1.0, 2).load_state_dict({"type": "StepScheduler"})
