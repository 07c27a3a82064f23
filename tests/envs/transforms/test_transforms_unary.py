"""ObservationTransform (the base of observation transforms) and UnaryTransform."""

from __future__ import annotations

import pytest
import torch
from tensordict import NonTensorData, TensorDict
from transform_contract import TransformContractTests

from streamrl.data.specs import NonTensor, Unbounded
from streamrl.envs.transforms import (
    CatFrames,
    CenterCrop,
    Crop,
    FlattenObservation,
    GrayScale,
    ObservationNorm,
    ObservationTransform,
    Resize,
    RewardScaling,
    ToTensorImage,
    TransformedEnv,
    UnaryTransform,
)


def test_observation_transforms_derive_from_the_base():
    made = [
        CatFrames(N=2, dim=-1, in_keys=["observation"]),
        CenterCrop(2),
        Crop(2, 2),
        FlattenObservation(-2, -1),
        GrayScale(),
        ObservationNorm(0.0, 1.0),
        Resize(4),
        ToTensorImage(),
    ]
    assert all(isinstance(t, ObservationTransform) for t in made)
    assert not isinstance(RewardScaling(0.0, 1.0), ObservationTransform)


def test_observation_transform_subclass_maps_its_keys():
    class AddOne(ObservationTransform):
        def _apply_transform(self, value):
            return value + 1

    td = AddOne(in_keys=["observation"], out_keys=["o"])(TensorDict({"observation": torch.ones(2)}))
    assert td["o"].tolist() == [2.0, 2.0] and td["observation"].tolist() == [1.0, 1.0]


class TestUnaryContract(TransformContractTests):
    def make_transform(self):
        return UnaryTransform(["observation"], ["neg"], ["action"], fn=torch.neg)


def test_unary_values_and_specs(counting_env):
    env = TransformedEnv(
        counting_env(max_count=3),
        UnaryTransform(["observation"], ["s"], fn=lambda v: v.sum(-1, keepdim=True).long()),
    )
    spec = env.observation_spec["s"]
    assert isinstance(spec, Unbounded) and spec.shape == (1,) and spec.dtype == torch.int64
    roll = env.rollout(3)
    # observation [c, c, c] -> 3c
    assert roll["next", "s"].squeeze(-1).tolist() == [3, 6, 9]
    assert roll["s"].squeeze(-1).tolist() == [0, 3, 6]


def test_unary_inverse_uses_inv_fn_or_fn(counting_env):
    base = counting_env()
    env = TransformedEnv(base, UnaryTransform([], [], ["action"], fn=lambda a: a * 4))
    env.step(TensorDict({"action": torch.tensor([0.5])}))
    assert base.last_action.tolist() == [2.0]  # fn used both ways when inv_fn is None
    t = UnaryTransform([], [], ["action"], ["user_action"], fn=torch.neg, inv_fn=torch.abs)
    out = t.inv(TensorDict({"user_action": torch.tensor([-0.25])}))
    assert out["action"].tolist() == [0.25]


def test_unary_nontensor_unwrapped_or_raw():
    td = TensorDict({"s": NonTensorData("abc")})
    out = UnaryTransform(["s"], ["n"], fn=lambda s: torch.tensor(len(s)))(td)
    assert out["n"].item() == 3
    raw = UnaryTransform(["s"], ["t"], fn=lambda s: type(s).__name__, use_raw_nontensor=True)
    assert raw(td)["t"] == "NonTensorData"


def test_unary_nontensor_output_spec(counting_env):
    env = TransformedEnv(
        counting_env(), UnaryTransform(["observation"], ["txt"], fn=lambda v: str(v.tolist()))
    )
    assert isinstance(env.observation_spec["txt"], NonTensor)
    assert env.reset()["txt"] == "[0.0, 0.0, 0.0]"


def test_unary_bad_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        UnaryTransform(["a"], ["b"], fn=3)
    with pytest.raises(TypeError, match="inv_fn"):
        UnaryTransform(["a"], ["b"], fn=torch.neg, inv_fn="x")
    with pytest.raises(ValueError, match="same length"):
        UnaryTransform(["a"], ["b", "c"], fn=torch.neg)
    with pytest.raises(KeyError, match="'a'"):
        UnaryTransform(["a"], ["b"], fn=torch.neg)(TensorDict({"z": torch.ones(1)}))
