"""Dtype casts, Flatten/Unsqueeze, Rename/Exclude/Select, NoopResetEnv."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.envs.transforms import (
    Compose,
    DoubleToFloat,
    DTypeCastTransform,
    ExcludeTransform,
    FlattenObservation,
    NoopResetEnv,
    RenameTransform,
    SelectTransform,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
    UnsqueezeTransform,
)
from streamrl.envs.utils import check_env_specs


# ---------------------------------------------------------------------------- dtypes
def test_double_to_float_all_outputs_and_actions(counting_env):
    base = counting_env(double=True)
    base.full_observation_spec["observation"] = base.full_observation_spec["observation"].to(
        torch.float64
    )
    # the base env writes float32 observations; make one float64 through a cast transform
    env = TransformedEnv(
        base,
        Compose(
            DTypeCastTransform(torch.float32, torch.float64, in_keys=["observation"]),
            DoubleToFloat(),
        ),
    )
    assert env.action_spec.dtype == torch.float32  # automatic: float64 actions exposed as float32
    assert env.observation_spec["observation"].dtype == torch.float32
    td = env.rand_step(env.reset())
    assert td["next", "observation"].dtype == torch.float32
    assert base.last_action.dtype == torch.float64
    check_env_specs(env)


def test_dtype_cast_plain_data_and_values():
    t = DTypeCastTransform(torch.float32, torch.float16, in_keys=["a"])
    td = TensorDict({"a": torch.tensor([1.5]), "b": torch.tensor([2.5])})
    t(td)
    assert td["a"].dtype == torch.float16 and td["b"].dtype == torch.float32
    auto = DoubleToFloat()
    td = TensorDict(
        {"x": torch.ones(2, dtype=torch.float64), "n": {"y": torch.ones(1, dtype=torch.float64)}}
    )
    auto(td)
    assert td["x"].dtype == torch.float32 and td["n", "y"].dtype == torch.float32
    with pytest.raises(TypeError, match="dtype_in"):
        DTypeCastTransform("float32", torch.float16)


def test_double_to_float_explicit_inverse_key():
    t = DoubleToFloat(in_keys=[], in_keys_inv=["action"])
    td = t.inv(TensorDict({"action": torch.ones(1)}))
    assert td["action"].dtype == torch.float64
    with pytest.raises(KeyError, match="action"):
        t.inv(TensorDict({"other": torch.ones(1)}))


# ---------------------------------------------------------------------------- shapes
def test_flatten_observation_values_and_dims():
    x = torch.arange(24.0).reshape(2, 3, 4)
    td = TensorDict({"pixels": x.clone()}, batch_size=[2])
    out = FlattenObservation(-2, -1, in_keys=["pixels"])(td)["pixels"]
    torch.testing.assert_close(out, x.reshape(2, 12))
    # non-negative dims count from the first non-batch dim
    td = TensorDict({"pixels": x.clone()}, batch_size=[2])
    torch.testing.assert_close(
        FlattenObservation(0, 1, in_keys=["pixels"])(td)["pixels"], x.reshape(2, 12)
    )
    with pytest.raises(ValueError, match="out of range"):
        FlattenObservation(0, 2, in_keys=["pixels"])(TensorDict({"pixels": x}, batch_size=[2]))


def test_flatten_in_env(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), pixels=True, hw=(4, 3)),
        Compose(ToTensorImage(), FlattenObservation(-3, -1, in_keys=["pixels"])),
    )
    assert env.observation_spec["pixels"].shape == (2, 36)
    assert env.reset()["pixels"].shape == (2, 36)
    check_env_specs(env)


def test_unsqueeze_forward_inverse_and_spec(counting_env):
    base = counting_env()
    env = TransformedEnv(
        base, UnsqueezeTransform(-1, in_keys=["observation"], in_keys_inv=["action"])
    )
    assert env.observation_spec["observation"].shape == (3, 1)
    assert env.action_spec.shape == (1, 1)
    td = env.reset()
    assert td["observation"].shape == (3, 1)
    td["action"] = torch.full((1, 1), 0.5)
    env.step(td)
    assert base.last_action.shape == (1,)
    check_env_specs(env)
    with pytest.raises(ValueError, match="allow_positive_dim"):
        UnsqueezeTransform(0, in_keys=["x"])
    t = UnsqueezeTransform(0, allow_positive_dim=True, in_keys=["x"])
    out = t(TensorDict({"x": torch.zeros(5, 2)}, batch_size=[5]))["x"]
    assert out.shape == (5, 1, 2)
    with pytest.raises(ValueError, match="in_keys"):
        UnsqueezeTransform(-1)
    with pytest.raises(ValueError, match="size 1"):
        UnsqueezeTransform(-1, in_keys_inv=["a"]).inv(TensorDict({"a": torch.zeros(2)}))


# ---------------------------------------------------------------------------- keys
def test_rename_outputs_and_actions(counting_env):
    base = counting_env()
    env = TransformedEnv(
        base,
        RenameTransform(["observation"], ["obs"], in_keys_inv=["action"], out_keys_inv=["act"]),
    )
    assert set(env.observation_spec.keys()) == {"obs"}
    assert env.full_action_spec.keys() == ["act"]
    td = env.reset()
    assert "obs" in td.keys() and "observation" not in td.keys()
    td["act"] = torch.tensor([0.25])
    env.step(td)
    torch.testing.assert_close(base.last_action, torch.tensor([0.25]))
    assert "act" in td.keys() and ("next", "obs") in td.keys(True)
    keep = RenameTransform(["a"], ["b"], create_copy=True)(TensorDict({"a": torch.ones(1)}))
    assert set(keep.keys()) == {"a", "b"}
    with pytest.raises(KeyError, match="'a'"):
        RenameTransform(["a"], ["b"])(TensorDict({"c": torch.ones(1)}))


def test_rename_rollout(counting_env):
    env = TransformedEnv(
        counting_env(), RenameTransform(["observation"], ["obs"], ["action"], ["act"])
    )
    roll = env.rollout(3)
    assert ("next", "obs") in roll.keys(True) and "act" in roll.keys()
    check_env_specs(env)


def test_exclude_transform(counting_env):
    env = TransformedEnv(counting_env(pixels=True), ExcludeTransform("pixels"))
    assert "pixels" not in env.observation_spec.keys()
    td = env.rollout(2)
    assert "pixels" not in td.keys() and ("next", "pixels") not in td.keys(True)
    check_env_specs(env)
    data = TensorDict({"a": torch.ones(1), "n": {"b": torch.ones(1), "c": torch.ones(1)}})
    out = ExcludeTransform(("n", "b"))(data)
    assert set(out.keys(True, True)) == {"a", ("n", "c")}
    with pytest.raises(ValueError, match="at least one"):
        ExcludeTransform()
    with pytest.raises(ValueError, match="done flags"):
        ExcludeTransform("truncated")


def test_select_transform(counting_env):
    env = TransformedEnv(counting_env(pixels=True), SelectTransform("pixels"))
    assert set(env.observation_spec.keys()) == {"pixels"}
    td = env.rollout(2)
    assert set(td["next"].keys()) == {"pixels", "reward", "done", "terminated", "truncated"}
    check_env_specs(env)
    data = TensorDict({"a": torch.ones(1), "reward": torch.ones(1), "n": {"b": torch.ones(1)}})
    assert set(SelectTransform("n")(data.clone()).keys(True, True)) == {("n", "b"), "reward"}
    no_r = SelectTransform("a", keep_rewards=False)(data.clone())
    assert set(no_r.keys()) == {"a"}


# ---------------------------------------------------------------------------- NoopResetEnv
def test_noop_reset_takes_exactly_noops_steps(counting_env):
    base = counting_env(max_count=100)
    env = TransformedEnv(base, NoopResetEnv(noops=4, random=False))
    td = env.reset()
    assert td["observation"].tolist() == [4.0, 4.0, 4.0]
    assert base.count.item() == 4
    assert set(td.keys()) == {"observation", "done", "terminated", "truncated"}


def test_noop_reset_random_count_in_range(counting_env):
    base = counting_env(max_count=100)
    env = TransformedEnv(base, NoopResetEnv(noops=3, random=True))
    torch.manual_seed(0)
    seen = {int(env.reset()["observation"][0].item()) for _ in range(40)}
    assert seen == {1, 2, 3}


def test_noop_reset_restarts_when_episode_ends(counting_env):
    base = counting_env(max_count=3)
    env = TransformedEnv(base, NoopResetEnv(noops=3, random=False))
    # 3 no-ops always end the episode: retried, then a clear error
    with pytest.raises(RuntimeError, match="lower noops"):
        env.reset()
    env2 = TransformedEnv(counting_env(max_count=3), NoopResetEnv(noops=2, random=False))
    assert env2.reset()["observation"][0].item() == 2.0


def test_noop_reset_sees_earlier_transforms(counting_env):
    env = TransformedEnv(
        counting_env(max_count=100), Compose(StepCounter(), NoopResetEnv(2, random=False))
    )
    td = env.reset()
    assert td["step_count"].item() == 2  # the no-op steps went through StepCounter


def test_noop_reset_batched_partial_reset_is_refused(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), max_count=100), NoopResetEnv(2, random=False)
    )
    td = env.reset()
    assert td["observation"][:, 0].tolist() == [2.0, 2.0]
    td["_reset"] = torch.tensor([[True], [False]])
    with pytest.raises(ValueError, match="inside each sub-env"):
        env.reset(td)
    with pytest.raises(ValueError, match="noops"):
        NoopResetEnv(-1)


# ---------------------------------------------------------------------------- outside an env
def test_transform_on_replay_buffer_samples(counting_env):
    from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer

    env = counting_env(pixels=True, hw=(4, 4), max_count=100)
    data = env.rollout(6)
    t = Compose(
        ToTensorImage(in_keys=["pixels", ("next", "pixels")]),
        FlattenObservation(-3, -1, in_keys=["pixels", ("next", "pixels")]),
    )
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=4, transform=t)
    rb.extend(data)
    sample = rb.sample()
    assert sample["pixels"].shape == (4, 48) and sample["pixels"].dtype == torch.float32
    # the red channel (first 16 values) holds the counter / 255; next is one step later
    counters = sample["pixels"][:, 0] * 255
    torch.testing.assert_close(sample["next", "pixels"][:, 0] * 255, counters + 1)
    # the stored data is untouched: sampling again transforms raw frames again
    assert rb.sample()["pixels"].shape == (4, 48)
    assert data["pixels"].dtype == torch.uint8


# ---------------------------------------------------------------------------- reprs
@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (NoopResetEnv(3), "NoopResetEnv(noops=3, random=True)"),
        (ToTensorImage(), "ToTensorImage(keys=['pixels'])"),
        (
            StepCounter(5),
            "StepCounter(max_steps=5, step_count_key='step_count', truncated_key='truncated')",
        ),
        (
            FlattenObservation(-2, -1, ["pixels"]),
            "FlattenObservation(first_dim=-2, last_dim=-1, keys=['pixels'])",
        ),
        (
            RenameTransform(["a"], [("b", "c")]),
            "RenameTransform(in_keys=['a'], out_keys=[('b', 'c')])",
        ),
        (SelectTransform("a", "b"), "SelectTransform(keys=['a', 'b'])"),
        (DoubleToFloat(), "DoubleToFloat(in_keys=all, in_keys_inv=[])"),
    ],
)
def test_reprs(transform, expected):
    assert repr(transform) == expected


def test_every_transform_has_an_informative_repr():
    from streamrl.envs import transforms as T

    made = [
        T.CatFrames(4, -3),
        T.CenterCrop(8),
        T.GrayScale(),
        T.InitTracker(),
        T.ObservationNorm(),
        T.Resize(84),
        T.RewardClipping(-1, 1),
        T.RewardScaling(0.0, 2.0),
        T.RewardSum(),
        T.UnsqueezeTransform(-1, in_keys=["x"]),
        T.VecNorm(),
        T.DTypeCastTransform(torch.float32, torch.float16, in_keys=["x"]),
        T.ExcludeTransform("x"),
    ]
    for t in made:
        text = repr(t)
        assert text.startswith(type(t).__name__ + "(") and text.endswith(")")
    assert "N=4" in repr(made[0]) and "w=84" in repr(made[5]) and "episode_reward" in repr(made[8])
