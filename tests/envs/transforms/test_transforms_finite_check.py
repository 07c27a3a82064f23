"""FiniteTensorDictCheck: passes finite data, raises on NaN/inf at reset and step, contract."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.transforms import Compose, FiniteTensorDictCheck, RewardScaling, TransformedEnv


def test_raises_on_non_finite_step_and_reset(counting_env):
    env = TransformedEnv(
        counting_env(), Compose(RewardScaling(0.0, float("inf")), FiniteTensorDictCheck())
    )
    env.reset()
    with pytest.raises(ValueError, match="reward"):
        env.rand_step(env.reset())
    t = FiniteTensorDictCheck()
    ints = TensorDict({"i": torch.tensor([1, 2]), "n": {"x": torch.tensor([float("-inf")])}})
    with pytest.raises(ValueError, match=r"\('n', 'x'\)"):
        t(ints)
    with pytest.raises(ValueError, match="observation"):
        t._reset(None, TensorDict({"observation": torch.tensor([float("nan")])}))


class TestFiniteCheckContract(TransformContractTests):
    def make_transform(self):
        return FiniteTensorDictCheck()
