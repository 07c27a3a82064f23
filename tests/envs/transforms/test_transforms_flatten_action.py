"""FlattenAction: flat actions for users, the original shape for the base env."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.transforms import (
    Compose,
    FlattenAction,
    FlattenObservation,
    TransformedEnv,
    UnsqueezeTransform,
)
from streamrl.envs.utils import check_env_specs


def _two_dim_action():
    # users of this stack write (1, 1) actions; the base env reads (1,)
    return UnsqueezeTransform(-1, in_keys=[], in_keys_inv=["action"])


class TestFlattenActionContract(TransformContractTests):
    def make_transform(self):
        return Compose(_two_dim_action(), FlattenAction(-2, -1))


def test_flatten_action_spec_and_inverse_from_env(counting_env):
    base = counting_env(batch_size=(2,))
    env = TransformedEnv(
        base,
        Compose(
            UnsqueezeTransform(-1, in_keys=[], in_keys_inv=["action"]),
            UnsqueezeTransform(-1, in_keys=[], in_keys_inv=["action"]),
            FlattenAction(-3, -1),
        ),
    )
    assert env.action_spec.shape == (2, 1)
    env.step(TensorDict({"action": torch.tensor([[0.25], [-0.5]])}, [2]))
    assert base.last_action.tolist() == [[0.25], [-0.5]]
    check_env_specs(env)


def test_flatten_action_with_action_shape_round_trip():
    t = FlattenAction(-2, -1, action_shape=(2, 3))
    x = torch.arange(12.0).reshape(2, 2, 3)
    flat = t(TensorDict({"action": x.clone()}, [2]))["action"]
    assert flat.shape == (2, 6)
    back = t.inv(TensorDict({"action": flat}, [2]))["action"]
    assert torch.equal(back, x)


def test_flatten_action_distinct_user_key_and_positive_dims():
    t = FlattenAction(
        0,
        1,
        in_keys_inv=["a"],
        out_keys_inv=["flat_a"],
        allow_positive_dim=True,
        action_shape=[2, 2],
    )
    out = t.inv(TensorDict({"flat_a": torch.arange(8.0).reshape(2, 4)}, [2]))
    assert out["a"].shape == (2, 2, 2) and out["a"][1, 1].tolist() == [6.0, 7.0]


def test_flatten_action_shares_the_observation_flatten():
    x = torch.arange(24.0).reshape(2, 3, 4)
    by_obs = FlattenObservation(-2, -1, in_keys=["v"])(TensorDict({"v": x.clone()}, [2]))["v"]
    by_act = FlattenAction(-2, -1, in_keys_inv=["v"])(TensorDict({"v": x.clone()}, [2]))["v"]
    assert torch.equal(by_obs, by_act)


def test_flatten_action_bad_input():
    with pytest.raises(ValueError, match="negative"):
        FlattenAction(0, 1)
    with pytest.raises(ValueError, match="first_dim must be <= last_dim"):
        FlattenAction(-1, -2)
    with pytest.raises(ValueError, match="must have 2 dims"):
        FlattenAction(-2, -1, action_shape=(6,))
    with pytest.raises(TypeError, match="action_shape"):
        FlattenAction(action_shape=(2, 0))
    with pytest.raises(RuntimeError, match="action_shape"):
        FlattenAction().inv(TensorDict({"action": torch.zeros(6)}))
    with pytest.raises(ValueError, match="expected 6"):
        FlattenAction(action_shape=(2, 3)).inv(TensorDict({"action": torch.zeros(5)}))
