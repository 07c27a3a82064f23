"""ObservationNorm (fixed stats, init_stats, inverse, state_dict) and VecNorm (running stats)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data.specs import Bounded, Unbounded
from streamrl.envs.transforms import (
    Compose,
    ObservationNorm,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
    VecNorm,
)
from streamrl.envs.utils import check_env_specs


# ---------------------------------------------------------------------------- ObservationNorm
def test_observation_norm_maps():
    x = torch.tensor([1.0, 2.0, 3.0])
    affine = ObservationNorm(loc=1.0, scale=2.0)
    torch.testing.assert_close(
        affine(TensorDict({"observation": x.clone()}))["observation"], x * 2 + 1
    )
    std = ObservationNorm(loc=torch.tensor([1.0, 2.0, 3.0]), scale=2.0, standard_normal=True)
    torch.testing.assert_close(
        std(TensorDict({"observation": x.clone()}))["observation"], torch.zeros(3)
    )
    assert repr(affine) == "ObservationNorm(loc=1.0000, scale=2.0000, keys=['observation'])"
    assert "shape=torch.Size([3])" in repr(std)


def test_observation_norm_inverse_on_actions(counting_env):
    base = counting_env()
    # users act in [-0.5, 0.5]; the base env takes [-1, 1]
    env = TransformedEnv(
        base, ObservationNorm(loc=0.0, scale=0.5, in_keys=[], in_keys_inv=["action"])
    )
    spec = env.action_spec
    torch.testing.assert_close(spec.high, torch.tensor([0.5]))
    torch.testing.assert_close(spec.low, torch.tensor([-0.5]))
    td = env.reset()
    td["action"] = torch.tensor([0.25])
    env.step(td)
    torch.testing.assert_close(base.last_action, torch.tensor([0.5]))


def test_observation_norm_bounded_spec_follows_map():
    t = ObservationNorm(loc=2.0, scale=-1.0, in_keys=["pixels"])
    spec = t._transform_spec(Bounded(0.0, 1.0, shape=(3,)))
    torch.testing.assert_close(spec.low, torch.ones(3))  # 1 * -1 + 2
    torch.testing.assert_close(spec.high, torch.full((3,), 2.0))
    assert isinstance(t._transform_spec(Unbounded((3,))), Unbounded)


def test_observation_norm_errors():
    with pytest.raises(ValueError, match="both loc and scale"):
        ObservationNorm(loc=1.0)
    with pytest.raises(ValueError, match="non-zero"):
        ObservationNorm(loc=0.0, scale=0.0)
    with pytest.raises(RuntimeError, match="init_stats"):
        ObservationNorm()(TensorDict({"observation": torch.zeros(3)}))
    with pytest.raises(RuntimeError, match="TransformedEnv"):
        ObservationNorm().init_stats(3)


def test_init_stats_gives_standard_normal_outputs(counting_env):
    # the counter runs 1..6 then resets: whole episodes have the mean/std of any longer run
    env = TransformedEnv(counting_env(max_count=6), Compose(StepCounter(), ObservationNorm()))
    env.transform[1].init_stats(num_iter=18)  # 3 whole episodes
    roll = env.rollout(60, break_when_any_done=False)
    obs = roll["next", "observation"]
    assert abs(obs.mean().item()) < 0.1
    assert abs(obs.std().item() - 1.0) < 0.1
    assert env.transform[1].loc.shape == (3,)
    # standard_normal: loc/scale are the raw mean/std of the counter (1..6 repeated)
    env2 = TransformedEnv(counting_env(max_count=6), ObservationNorm(standard_normal=True))
    env2.transform[0].init_stats(num_iter=12)
    torch.testing.assert_close(env2.transform[0].loc, torch.full((3,), 3.5))
    raw = torch.arange(1.0, 7.0).repeat(2)
    torch.testing.assert_close(env2.transform[0].scale, torch.full((3,), raw.std().item()))
    with pytest.raises(RuntimeError, match="already"):
        env2.transform[0].init_stats(3)


def test_init_stats_keep_dims_on_images_and_batched_env(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), pixels=True, hw=(4, 5)),
        Compose(ToTensorImage(), ObservationNorm(in_keys=["pixels"])),
    )
    # rollout data is [2, T, 3, 4, 5]: reduce batch, time, H, W; keep [C, 1, 1]
    env.transform[1].init_stats(4, reduce_dim=(0, 1, 3, 4), cat_dim=1, keep_dims=(3, 4))
    assert env.transform[1].loc.shape == (3, 1, 1)
    out = env.rollout(4)["next", "pixels"]
    per_channel = out.transpose(0, 2).reshape(3, -1)
    torch.testing.assert_close(per_channel.mean(-1), torch.zeros(3), atol=1e-5, rtol=0)
    check_env_specs(env)


def test_observation_norm_state_dict_round_trip_after_init_stats(counting_env):
    env = TransformedEnv(counting_env(max_count=6), ObservationNorm())
    env.transform[0].init_stats(10)
    fresh = ObservationNorm()
    fresh.load_state_dict(env.transform[0].state_dict())
    assert fresh.initialized
    torch.testing.assert_close(fresh.loc, env.transform[0].loc)
    torch.testing.assert_close(fresh.scale, env.transform[0].scale)


# ---------------------------------------------------------------------------- VecNorm
def test_vecnorm_matches_exact_statistics_without_decay():
    t = VecNorm(in_keys=["observation"], decay=1.0, eps=1e-8)
    data = torch.randn(5, 4, 2) * torch.tensor([1.0, 10.0]) + torch.tensor([3.0, -2.0])
    for step in range(5):
        out = t(TensorDict({"observation": data[step].clone()}, batch_size=[4]))["observation"]
    seen = data.reshape(-1, 2)
    mean, std = t.mean_std()
    torch.testing.assert_close(mean.float(), seen.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(std.float(), seen.std(0, unbiased=False), rtol=1e-4, atol=1e-5)
    expected = (data[4] - seen.mean(0)) / seen.std(0, unbiased=False)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_vecnorm_decay_weights_recent_data():
    t = VecNorm(in_keys=["x"], decay=0.5)
    t(TensorDict({"x": torch.tensor([[0.0]])}, [1]))
    t(TensorDict({"x": torch.tensor([[4.0]])}, [1]))
    mean, _ = t.mean_std()
    # sum = 0.5 * 0 + 4, count = 0.5 * 1 + 1
    torch.testing.assert_close(mean, torch.tensor([4.0 / 1.5], dtype=torch.float64))


def test_vecnorm_freeze_and_export():
    t = VecNorm(in_keys=["x"], decay=1.0)
    t(TensorDict({"x": torch.tensor([[1.0], [3.0]])}, [2]))
    t.freeze()
    before = t.mean_std()
    out = t(TensorDict({"x": torch.tensor([[100.0]])}, [1]))["x"]
    after = t.mean_std()
    torch.testing.assert_close(before[0], after[0])
    torch.testing.assert_close(out, torch.tensor([[98.0]]))  # (100 - 2) / 1
    norm = t.to_observation_norm()
    torch.testing.assert_close(
        norm(TensorDict({"x": torch.tensor([5.0])}))["x"], torch.tensor([3.0])
    )
    t.unfreeze()
    t(TensorDict({"x": torch.tensor([[100.0]])}, [1]))
    assert t.mean_std()[0].item() > 2.0


def test_vecnorm_state_dict_round_trip(counting_env):
    env = TransformedEnv(counting_env(batch_size=(3,), max_count=4), VecNorm())
    env.rollout(10, break_when_any_done=False)
    sd = env.state_dict()
    assert {"transforms.0.observation_sum", "transforms.0.observation_ssq"} <= set(sd)
    fresh = VecNorm()
    fresh.load_state_dict({k.removeprefix("transforms.0."): v for k, v in sd.items()})
    for a, b in zip(fresh.mean_std(), env.transform[0].mean_std()):
        torch.testing.assert_close(a, b)
    x = TensorDict({"observation": torch.ones(1, 3)}, [1])
    torch.testing.assert_close(
        fresh.freeze()(x.clone())["observation"],
        env.transform[0].freeze()(x.clone())["observation"],
    )


def test_vecnorm_in_env_specs_and_shape_errors(counting_env):
    env = TransformedEnv(counting_env(batch_size=(2,)), VecNorm())
    spec = env.observation_spec["observation"]
    assert isinstance(spec, Unbounded) and spec.dtype == torch.float32
    check_env_specs(env)
    t = VecNorm(in_keys=["x"])
    t(TensorDict({"x": torch.zeros(2, 3)}, [2]))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        t(TensorDict({"x": torch.zeros(2, 4)}, [2]))
    with pytest.raises(ValueError, match="decay"):
        VecNorm(decay=0.0)
    with pytest.raises(RuntimeError, match="no statistics"):
        VecNorm().mean_std()


def test_vecnorm_partial_reset_counts_only_reset_rows(counting_env):
    env = TransformedEnv(counting_env(batch_size=(3,), max_count=100), VecNorm(decay=1.0))
    td = env.reset()  # 3 rows of zeros
    td = env.rand_step(td)["next"].clone()  # 3 rows of ones
    t = env.transform[0]
    assert t.observation_count.item() == 6
    td["_reset"] = torch.tensor([[True], [False], [False]])
    env.reset(td)  # one fresh row (zeros); the two others are not new data
    assert t.observation_count.item() == 7
    torch.testing.assert_close(t.observation_sum, torch.full((3,), 3.0, dtype=torch.float64))


def test_nested_keys_in_specs():
    from streamrl.data.specs import Composite

    spec = Composite(agent=Composite(obs=Bounded(0.0, 1.0, shape=(3,))), shape=())
    t = ObservationNorm(
        loc=1.0, scale=2.0, in_keys=[("agent", "obs")], out_keys=[("agent", "obs2")]
    )
    out = t.transform_observation_spec(spec)
    torch.testing.assert_close(out["agent", "obs2"].high, torch.full((3,), 3.0))
    assert ("agent", "obs") in out.keys(True, True)
