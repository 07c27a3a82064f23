"""TD0Estimate / TD1Estimate / TDLambdaEstimate: warn when built, then match their
replacements on the same data."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl import StreamRLWarning
from streamrl.objectives.value import (
    TD0Estimate,
    TD0Estimator,
    TD1Estimate,
    TD1Estimator,
    TDLambdaEstimate,
    TDLambdaEstimator,
)


def _data():
    g = torch.Generator().manual_seed(0)
    done = torch.zeros(2, 5, 1, dtype=torch.bool)
    done[0, 2] = True
    return TensorDict({
        "obs": torch.randn(2, 5, 3, generator=g),
        "next": {"obs": torch.randn(2, 5, 3, generator=g),
                 "reward": torch.randn(2, 5, 1, generator=g), "done": done,
                 "terminated": done.clone()},
    }, [2, 5])


@pytest.mark.parametrize("old, new, kwargs", [
    (TD0Estimate, TD0Estimator, {}),
    (TD1Estimate, TD1Estimator, {}),
    (TDLambdaEstimate, TDLambdaEstimator, {"lmbda": 0.7}),
])
def test_deprecated_name_warns_and_matches_replacement(old, new, kwargs):
    torch.manual_seed(0)
    value = TensorDictModule(nn.Linear(3, 1), ["obs"], ["state_value"])
    with pytest.warns(StreamRLWarning, match=new.__name__):
        legacy = old(gamma=0.9, value_network=value, **kwargs)
    current = new(gamma=0.9, value_network=value, **kwargs)
    a, b = legacy(_data()), current(_data())
    torch.testing.assert_close(a["advantage"], b["advantage"])
    torch.testing.assert_close(a["value_target"], b["value_target"])
    assert isinstance(legacy, new)


def test_td0_estimate_hand_computed():
    td = TensorDict({"state_value": torch.tensor([[2.0], [0.0]]), "next": {
        "reward": torch.tensor([[1.0], [3.0]]), "done": torch.tensor([[False], [True]]),
        "state_value": torch.tensor([[4.0], [5.0]])}}, [2])
    with pytest.warns(StreamRLWarning):
        est = TD0Estimate(gamma=0.5)
    out = est(td)
    # targets: 1 + 0.5 * 4 = 3 and 3 (terminal); advantages: 3 - 2 and 3 - 0
    torch.testing.assert_close(out["value_target"], torch.tensor([[3.0], [3.0]]))
    torch.testing.assert_close(out["advantage"], torch.tensor([[1.0], [3.0]]))


def test_deprecated_names_check_arguments_like_their_replacements():
    with pytest.warns(StreamRLWarning), pytest.raises(ValueError, match="lmbda"):
        TDLambdaEstimate(gamma=0.9, lmbda=2.0)
    with pytest.warns(StreamRLWarning), pytest.raises(TypeError):
        TD0Estimate(gamma=0.9, lmbda=0.5)
