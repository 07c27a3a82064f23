"""spec_from_dm_env: dm_env's Array / BoundedArray / dicts of them become specs."""

from collections import OrderedDict

import numpy as np
import pytest
import torch

from streamrl.data.specs import Bounded, Composite, Unbounded, spec_from_dm_env

specs = pytest.importorskip("dm_env.specs")


def test_bounded_array_keeps_bounds_and_dtype():
    spec = spec_from_dm_env(specs.BoundedArray((3,), np.float64, [-1.0, 0.0, -2.0], 1.0))
    assert isinstance(spec, Bounded) and spec.dtype == torch.float64 and spec.shape == (3,)
    assert torch.equal(spec.low, torch.tensor([-1.0, 0.0, -2.0], dtype=torch.float64))
    assert torch.equal(spec.high, torch.ones(3, dtype=torch.float64))
    assert spec.is_in(torch.tensor([0.5, 0.5, -1.5], dtype=torch.float64))
    assert not spec.is_in(torch.tensor([0.5, -0.5, 0.0], dtype=torch.float64))


def test_array_is_unbounded_and_scalars_get_a_feature_dim():
    spec = spec_from_dm_env(specs.Array((), np.float32))
    assert isinstance(spec, Unbounded) and spec.shape == (1,) and spec.dtype == torch.float32
    bounded = spec_from_dm_env(specs.BoundedArray((), np.float64, 0.0, 1.0))
    assert bounded.shape == (1,) and bounded.low.shape == (1,)


def test_discrete_array_is_a_bounded_integer_spec():
    spec = spec_from_dm_env(specs.DiscreteArray(4))
    assert isinstance(spec, Bounded) and spec.dtype == torch.int32 and spec.shape == (1,)
    assert spec.low.item() == 0 and spec.high.item() == 3


def test_dicts_become_composites_in_order():
    spec = spec_from_dm_env(OrderedDict(b=specs.Array((2,), np.float64),
                                        a=specs.Array((), np.float64)))
    assert isinstance(spec, Composite) and list(spec.keys()) == ["b", "a"]
    assert spec["a"].shape == (1,) and spec.shape == ()


def test_other_values_are_refused():
    with pytest.raises(TypeError, match="expected a dm_env Array"):
        spec_from_dm_env(np.zeros(3))
