"""MultiCategorical / MultiOneHot ``mask=``: sampling, membership, projection, shape algebra."""

import pytest
import torch

from streamrl.data.specs import MultiCategorical, MultiOneHot


def _mask():
    # two positions; variables of 2 and 3 choices, laid out one after another
    return torch.tensor([[True, False, False, True, True], [False, True, True, False, False]])


def test_multicategorical_mask_restricts_rand_and_is_in():
    spec = MultiCategorical([2, 3], shape=(2, 2), mask=_mask())
    vals = spec.rand((200,))
    assert spec.is_in(vals)
    assert (vals[:, 0, 0] == 0).all() and (vals[:, 1, 0] == 1).all() and (vals[:, 1, 1] == 0).all()
    assert set(vals[:, 0, 1].tolist()) <= {1, 2}
    assert not spec.is_in(torch.tensor([[1, 1], [1, 0]]))
    assert spec.is_in(torch.tensor([[0, 1], [1, 0]]))


def test_multicategorical_mask_project_moves_to_an_allowed_value():
    spec = MultiCategorical([2, 3], shape=(2, 2), mask=_mask())
    out = spec.project(torch.tensor([[1.2, 0.1], [0.0, 2.0]]))
    assert spec.is_in(out) and out.tolist() == [[0, 1], [1, 0]]


def test_multionehot_mask_restricts_rand_is_in_and_project():
    spec = MultiOneHot([2, 3], shape=(2, 5), mask=_mask())
    vals = spec.rand((100,))
    assert spec.is_in(vals) and not (vals & ~_mask()).any()
    spec.update_mask(~_mask())
    assert not spec.is_in(vals[0])
    out = spec.project(vals)
    assert spec.is_in(out) and (out.sum(-1) == 2).all()


def test_mask_follows_reshapes_indexing_and_conversions():
    spec = MultiCategorical([2, 3], shape=(2, 2), mask=_mask())
    assert torch.equal(spec[1].mask, _mask()[1])
    assert spec.unsqueeze(0).squeeze(0) == spec
    assert spec.expand(4, 2, 2).mask.shape == (4, 2, 5)
    assert torch.equal(spec.to_one_hot_spec().mask, _mask())
    assert torch.equal(spec.to_one_hot_spec().to_categorical_spec().mask, _mask())
    assert spec != MultiCategorical([2, 3], shape=(2, 2))
    assert spec.clone() == spec


def test_mask_errors():
    with pytest.raises(TypeError, match="bool tensor"):
        MultiCategorical([2, 3], mask=torch.ones(5))
    with pytest.raises(ValueError, match="does not broadcast"):
        MultiOneHot([2, 3], mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one choice"):
        MultiCategorical([2, 3], mask=torch.tensor([False, False, True, True, True]))
    spec = MultiCategorical([2, 3], mask=torch.ones(5, dtype=torch.bool))
    spec.update_mask(None)
    assert spec.mask is None
