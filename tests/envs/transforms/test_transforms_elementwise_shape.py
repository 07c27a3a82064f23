"""ClipTransform, SignTransform, PermuteTransform, SqueezeTransform and CatTensors: values,
specs, the action path, bad input, and the transform contract."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.data.specs import Bounded, Unbounded
from streamrl.envs.transforms import (
    CatTensors,
    ClipTransform,
    Compose,
    PermuteTransform,
    SignTransform,
    SqueezeTransform,
    StepCounter,
    TransformedEnv,
    UnsqueezeTransform,
)


# ---------------------------------------------------------------------------- ClipTransform
def test_clip_values_and_specs(counting_env):
    env = TransformedEnv(
        counting_env(max_count=9),
        ClipTransform(["observation", "reward"], low=0.5, high=2.0),
    )
    spec = env.observation_spec["observation"]
    assert isinstance(spec, Bounded)
    assert spec.low.min().item() == 0.5 and spec.high.max().item() == 2.0
    assert isinstance(env.full_reward_spec["reward"], Bounded)
    roll = env.rollout(4)
    assert roll["next", "observation"][:, 0].tolist() == [1.0, 2.0, 2.0, 2.0]
    assert roll["observation"][0, 0].item() == 0.5  # reset obs 0 clipped up
    assert roll["next", "reward"].squeeze(-1).tolist() == [1.0, 2.0, 2.0, 2.0]


def test_clip_action_path_and_one_sided(counting_env):
    base = counting_env()
    env = TransformedEnv(base, ClipTransform(in_keys_inv=["action"], low=-0.25, high=0.5))
    spec = env.action_spec
    assert spec.low.item() == -0.25 and spec.high.item() == 0.5
    td = env.reset()
    td["action"] = torch.tensor([0.9])
    env.step(td)
    assert base.last_action.item() == 0.5
    one = ClipTransform(in_keys=["x"], high=1.0)
    assert one(TensorDict({"x": torch.tensor([-5.0, 3.0])}))["x"].tolist() == [-5.0, 1.0]
    out = one._transform_spec(Unbounded((2,)))
    assert isinstance(out, Unbounded) and out.shape == (2,)  # still unbounded below


def test_clip_bad_args():
    # TorchRL's error types and messages
    with pytest.raises(TypeError, match="one or both of `high` and `low` must be provided"):
        ClipTransform(["x"])
    with pytest.raises(ValueError, match="`low` must be strictly lower than `high`"):
        ClipTransform(["x"], low=1, high=0)
    with pytest.raises(ValueError, match="strictly lower"):
        ClipTransform(["x"], low=1, high=1)
    with pytest.raises(TypeError, match="low must be a number"):
        ClipTransform(["x"], low="0")
    with pytest.raises(TypeError, match="must be scalars or None, found low a tensor"):
        ClipTransform(["x"], low=torch.zeros(2))


# ---------------------------------------------------------------------------- SignTransform
def test_sign_observation_reward_and_action(counting_env):
    base = counting_env()
    env = TransformedEnv(
        base, SignTransform(in_keys=["observation", "reward"], in_keys_inv=["action"])
    )
    assert isinstance(env.observation_spec["observation"], Bounded)
    td = env.reset()
    assert td["observation"].tolist() == [0.0, 0.0, 0.0]
    td["action"] = torch.tensor([-0.3])
    out = env.step(td)
    assert base.last_action.item() == -1.0
    assert out["next", "observation"].tolist() == [1.0, 1.0, 1.0]
    assert out["next", "reward"].item() == 1.0
    ints = SignTransform(in_keys=["i"])(TensorDict({"i": torch.tensor([-4, 0, 7])}))["i"]
    assert ints.dtype == torch.int64 and ints.tolist() == [-1, 0, 1]


# ---------------------------------------------------------------------------- Permute
def test_permute_values_inverse_and_spec(counting_env):
    t = PermuteTransform([-1, -3, -2], in_keys=["pixels"])
    env = TransformedEnv(counting_env(batch_size=(2,), pixels=True, hw=(8, 6)), t)
    assert env.observation_spec["pixels"].shape == (2, 3, 8, 6)
    td = env.reset()
    assert td["pixels"].shape == (2, 3, 8, 6)
    nxt = env.rand_step(td)["next", "pixels"]
    assert nxt[:, :, 0, 0].tolist() == [[1, 2, 3], [1, 2, 3]]
    x = torch.arange(24.0).reshape(2, 3, 4)
    p = PermuteTransform([-1, -2], in_keys_inv=["a"])
    back = p.inv(TensorDict({"a": x.transpose(-1, -2)}, [2]))["a"]
    assert torch.equal(back, x)
    three = PermuteTransform([-2, -1, -3], in_keys=["a"], in_keys_inv=["b"])
    y = three(TensorDict({"a": x.clone()}))["a"]
    assert torch.equal(three.inv(TensorDict({"b": y}))["b"], x)


def test_permute_bad_args():
    with pytest.raises(ValueError, match="reordering"):
        PermuteTransform([0, 1], in_keys=["x"])
    with pytest.raises(ValueError, match="reordering"):
        PermuteTransform([-1, -1], in_keys=["x"])
    with pytest.raises(TypeError, match="list of ints"):
        PermuteTransform(-1, in_keys=["x"])
    with pytest.raises(ValueError, match="in_keys, in_keys_inv"):
        PermuteTransform([-1])
    t = PermuteTransform([-2, -3, -1], in_keys=["x"])
    with pytest.raises(ValueError, match="fewer than 3"):
        t(TensorDict({"x": torch.zeros(4, 2)}, [4]))


# ---------------------------------------------------------------------------- Squeeze
def test_squeeze_is_the_mirror_of_unsqueeze(counting_env):
    base = counting_env(batch_size=(2,))
    env = TransformedEnv(
        base,
        Compose(
            UnsqueezeTransform(-2, in_keys=["observation"]),
            SqueezeTransform(-2, in_keys=["observation"]),
            SqueezeTransform(-1, in_keys_inv=["action"]),
        ),
    )
    assert env.observation_spec["observation"].shape == (2, 3)
    assert env.action_spec.shape == (2,)
    td = env.reset()
    td["action"] = torch.tensor([0.25, -0.5])
    env.step(td)
    assert base.last_action.tolist() == [[0.25], [-0.5]]
    with pytest.raises(ValueError, match="size 1 at dim"):
        SqueezeTransform(-1, in_keys=["x"])(TensorDict({"x": torch.zeros(3)}))
    with pytest.raises(ValueError, match="in_keys, in_keys_inv"):
        SqueezeTransform(-1)


# ---------------------------------------------------------------------------- CatTensors
def test_cat_tensors_plain_data_order_and_oor():
    td = TensorDict({"b": torch.ones(2, 1), "a": torch.zeros(2, 2)}, [2])
    out = CatTensors(["b", "a"], "v", del_keys=False)(td.clone())
    assert out["v"].tolist() == [[0.0, 0.0, 1.0]] * 2  # sorted: a then b
    assert "a" in out.keys()
    out = CatTensors(["b", "a"], "v", sort=False)(td.clone())
    assert out["v"].tolist() == [[1.0, 0.0, 0.0]] * 2 and set(out.keys()) == {"v"}
    flat = TensorDict({"x": torch.zeros(3), "y": torch.ones(3)}, [3])
    with pytest.raises(ValueError, match="unsqueeze_if_oor"):
        CatTensors(["x", "y"])(flat.clone())
    assert CatTensors(["x", "y"], unsqueeze_if_oor=True)(flat)["observation_vector"].shape == (
        3,
        2,
    )


def test_cat_tensors_in_env_learns_keys_and_specs(counting_env):
    base = counting_env(batch_size=(2,))
    # del_keys=False: StepCounter reads its previous count back from the step input
    env = TransformedEnv(base, Compose(StepCounter(), CatTensors(out_key="obs", del_keys=False)))
    spec = env.observation_spec
    assert set(spec.keys()) == {"obs", "observation", "step_count"}
    assert spec["obs"].shape == (2, 4) and spec["obs"].dtype == torch.float32
    roll = env.rollout(2)
    assert roll["next", "obs"][0].tolist() == [[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]
    assert env.transform[1].in_keys == ["observation", "step_count"]
    only = TransformedEnv(counting_env(), CatTensors())
    assert set(only.observation_spec.keys()) == {"observation_vector"}
    assert only.rand_step(only.reset())["next", "observation_vector"].tolist() == [1.0] * 3


def test_cat_tensors_bounded_inputs_stay_bounded(counting_env):
    env = TransformedEnv(
        counting_env(),
        Compose(
            ClipTransform(["observation"], low=0.0, high=2.0),
            StepCounter(max_steps=5),
            CatTensors(["observation", "step_count"], "v"),
        ),
    )
    spec = env.observation_spec["v"]
    assert isinstance(spec, Bounded)
    assert spec.high.tolist() == [2.0, 2.0, 2.0, 5.0]


def test_cat_tensors_bad_input():
    with pytest.raises(ValueError, match="negative"):
        CatTensors(["a"], dim=0)
    with pytest.raises(ValueError, match="at least one"):
        CatTensors([])
    with pytest.raises(ValueError, match="one key"):
        CatTensors(["a"], out_key=["x", "y"])
    with pytest.raises(ValueError, match="learns them from its parent"):
        CatTensors()(TensorDict({"a": torch.zeros(1)}))


def test_cat_tensors_unknown_or_mismatched_keys(counting_env):
    env = TransformedEnv(counting_env(pixels=True), CatTensors(["observation", "nope"]))
    with pytest.raises(KeyError, match="nope"):
        _ = env.observation_spec
    env = TransformedEnv(counting_env(pixels=True), CatTensors(["observation", "pixels"]))
    with pytest.raises(ValueError, match="cannot be concatenated"):
        _ = env.observation_spec


# ---------------------------------------------------------------------------- contract
class TestClipContract(TransformContractTests):
    def make_transform(self):
        return ClipTransform(["observation", "reward"], in_keys_inv=["action"], low=0, high=2)


class TestSignContract(TransformContractTests):
    def make_transform(self):
        return SignTransform(["observation", "reward"], in_keys_inv=["action"])


class TestPermuteContract(TransformContractTests):
    base_kwargs = {"pixels": True, "hw": (4, 2)}

    def make_transform(self):
        return Compose(
            PermuteTransform([-1, -3, -2], in_keys=["pixels"]),
            UnsqueezeTransform(-1, in_keys_inv=["action"]),
            PermuteTransform([-1, -2], in_keys_inv=["action"]),
        )


class TestSqueezeContract(TransformContractTests):
    def make_transform(self):
        return Compose(
            UnsqueezeTransform(-1, in_keys=["observation"]),
            SqueezeTransform(-1, in_keys=["observation"], in_keys_inv=["action"]),
        )


class TestCatTensorsContract(TransformContractTests):
    def make_transform(self):
        return Compose(StepCounter(), CatTensors(out_key="obs", del_keys=False))
