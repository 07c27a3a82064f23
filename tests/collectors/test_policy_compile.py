"""Collectors' compile_policy / cudagraph_policy / policy_factory (TorchRL 0.14's arguments)."""

import pytest
import torch
from tensordict.nn import CudaGraphModule, TensorDictModule
from torch import nn

from streamrl.collectors import MultiSyncDataCollector, SyncDataCollector
from streamrl.collectors._accelerate import PolicyAccelerator, as_kwargs
from streamrl.envs import GymEnv
from streamrl.ops import Rollout


def _env():
    return GymEnv("Pendulum-v1")


def _policy():
    return TensorDictModule(nn.Linear(3, 1), in_keys=["observation"], out_keys=["action"])


def test_torchrl_script_arguments_off_change_nothing():
    # what TorchRL's sota scripts pass when compilation is off
    c = SyncDataCollector(_env, _policy(), frames_per_batch=8, total_frames=16,
                          compile_policy=False, cudagraph_policy=False)
    try:
        assert [b.numel() for b in c] == [8, 8]
        assert (c.compiled_policy, c.cudagraphed_policy) == (False, False)
    finally:
        c.shutdown()


def test_compile_policy_runs_the_policy_through_torch_compile(monkeypatch):
    compiled = []

    def fake_compile(fn, **kwargs):
        compiled.append(kwargs)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    c = SyncDataCollector(_env, _policy(), frames_per_batch=4, total_frames=12,
                          compile_policy={"mode": "default", "warmup": 2})
    try:
        assert c.compiled_policy is True
        assert sum(b.numel() for b in c) == 12
        # eager for the 2 warm-up calls, then compiled once with the remaining kwargs
        assert compiled == [{"mode": "default"}]
    finally:
        c.shutdown()


def test_compile_policy_with_the_real_compiler():
    policy = _policy()
    with torch.no_grad():  # large weights: some actions fall outside Pendulum's [-2, 2]
        policy.module.weight.fill_(3.0)
    c = SyncDataCollector(_env, policy, frames_per_batch=4, total_frames=8,
                          compile_policy={"backend": "eager"})
    try:
        batch = next(iter(c))
        expected = policy(batch.select("observation").clone())["action"]
        # the rollout stores the action the env executed: the policy's, clamped into [-2, 2]
        expected = expected.clamp(-2.0, 2.0)
        torch.testing.assert_close(batch["action"], expected)
    finally:
        c.shutdown()


def test_cudagraph_policy_wraps_in_cudagraphmodule():
    wrapped = PolicyAccelerator(None, {"warmup": 3})(_policy())
    assert isinstance(wrapped, CudaGraphModule)
    c = SyncDataCollector(_env, _policy(), frames_per_batch=4, total_frames=8,
                          cudagraph_policy=True)
    try:  # without CUDA the module runs the policy as it is
        assert c.cudagraphed_policy and sum(b.numel() for b in c) == 8
    finally:
        c.shutdown()


def test_policy_factory():
    made = []

    def factory():
        made.append(1)
        return _policy()

    c = SyncDataCollector(_env, frames_per_batch=4, total_frames=4, policy_factory=factory)
    try:
        assert made == [1] and isinstance(c.policy, TensorDictModule)
        assert next(iter(c))["action"].shape == (4, 1)
    finally:
        c.shutdown()
    with pytest.raises(TypeError, match="policy or policy_factory, not both"):
        SyncDataCollector(_env, _policy(), frames_per_batch=4, policy_factory=factory)
    with pytest.raises(TypeError, match="does not take policy_factory"):
        MultiSyncDataCollector([_env], frames_per_batch=4, policy_factory=factory)
    with pytest.raises(TypeError, match="policy_factory must be a callable"):
        SyncDataCollector(_env, frames_per_batch=4, policy_factory=3)


def test_bad_values():
    with pytest.raises(TypeError, match="compile_policy must be a bool or a dict"):
        SyncDataCollector(_env, _policy(), frames_per_batch=4, compile_policy="yes")
    with pytest.raises(TypeError, match="cudagraph_policy must be a bool or a dict"):
        SyncDataCollector(_env, _policy(), frames_per_batch=4, cudagraph_policy=1)
    with pytest.raises(TypeError, match="policy_wrapper must be callable"):
        Rollout(_env, _policy(), frames_per_batch=4, policy_wrapper=3)
    assert as_kwargs(None, "x") is None and as_kwargs(True, "x") == {}


@pytest.mark.slow
def test_multi_collector_wraps_each_worker_copy():
    c = MultiSyncDataCollector([_env, _env], _policy(), frames_per_batch=8, total_frames=16,
                               compile_policy={"backend": "eager"})
    try:
        assert sum(b.numel() for b in c) == 16
    finally:
        c.shutdown()


def test_a_policy_reading_observation_keys_is_wrapped_unless_trusted():
    seen = []

    def policy(observation):
        seen.append(observation.shape)
        return observation[..., :1].clamp(-2, 2)

    c = SyncDataCollector(_env, policy, frames_per_batch=4, total_frames=4)
    try:
        batch = next(iter(c))
        torch.testing.assert_close(batch["action"], batch["observation"][..., :1].clamp(-2, 2))
        assert seen == [torch.Size([3])] * 4
    finally:
        c.shutdown()

    def td_policy(observation):  # named like an obs key but reads the TensorDict: trusted
        return observation.set("action", torch.zeros(1))

    c = SyncDataCollector(_env, td_policy, frames_per_batch=4, total_frames=4, trust_policy=True)
    try:
        assert (next(iter(c))["action"] == 0).all()
    finally:
        c.shutdown()
    with pytest.raises(TypeError, match="trust_policy must be a bool"):
        SyncDataCollector(_env, td_policy, frames_per_batch=4, trust_policy="yes")
