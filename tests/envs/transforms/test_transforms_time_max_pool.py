"""TimeMaxPool: max over the last T steps, restart at reset, partial resets, bad input,
contract."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests

from streamrl.envs.transforms import TimeMaxPool, TransformedEnv


def test_max_over_last_steps(counting_env):
    env = TransformedEnv(counting_env(max_count=5), TimeMaxPool(["observation"], ["pooled"], T=2))
    assert "pooled" in env.observation_spec.keys()
    roll = env.rollout(4)
    pooled = roll["next", "pooled"][:, 0].tolist()
    assert pooled == [1.0, 2.0, 3.0, 4.0]  # increasing: the max is the latest value
    neg = TimeMaxPool(["x"], T=3)
    neg._reset(None, TensorDict({"x": torch.tensor([0.0])}))
    outs = [
        neg._step(None, TensorDict({"x": torch.tensor([-v])}))["x"].item()
        for v in (1.0, 2.0, 3.0, 4.0)
    ]
    assert outs == [0.0, 0.0, -1.0, -2.0]


def test_restart_at_reset_and_partial_reset():
    t = TimeMaxPool(["x"], T=3)
    t._reset(None, TensorDict({"x": torch.tensor([[5.0], [5.0]])}, [2]))
    t._step(None, TensorDict({"x": torch.tensor([[1.0], [1.0]])}, [2]))
    td = TensorDict({"_reset": torch.tensor([[True], [False]])}, [2])
    out = t._reset(td, TensorDict({"x": torch.tensor([[0.0], [0.0]])}, [2]))
    assert out["x"].squeeze(-1).tolist() == [0.0, 5.0]  # row 1 keeps its window
    custom = TimeMaxPool(["x"], T=2, reset_key="mask")
    custom._reset(None, TensorDict({"x": torch.tensor([[3.0], [3.0]])}, [2]))
    td = TensorDict({"mask": torch.tensor([[False], [True]])}, [2])
    out = custom._reset(td, TensorDict({"x": torch.tensor([[0.0], [0.0]])}, [2]))
    assert out["x"].squeeze(-1).tolist() == [3.0, 0.0]


def test_bad_input():
    with pytest.raises(ValueError, match="positive int"):
        TimeMaxPool(T=0)
    with pytest.raises(ValueError, match="TransformedEnv"):
        TimeMaxPool()(TensorDict({"observation": torch.zeros(3)}))


class TestTimeMaxPoolContract(TransformContractTests):
    def make_transform(self):
        return TimeMaxPool(["observation"], T=3)
