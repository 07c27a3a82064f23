"""make_composite_from_td: a Composite of Unbounded specs describing a TensorDict."""

import pytest
import torch
from tensordict import NonTensorData, TensorDict

from streamrl.data import Composite, NonTensor, Unbounded
from streamrl.envs.utils import make_composite_from_td


def test_batched_nested_leaves_keep_shape_dtype_and_batch():
    td = TensorDict({
        "a": torch.zeros(2), "b": torch.ones(2, 3, dtype=torch.int64),
        "n": {"c": torch.zeros(2, 1, dtype=torch.bool)},
    }, [2])
    spec = make_composite_from_td(td)
    assert spec.shape == (2,) and spec["n"].shape == (2,)
    assert spec["a"].shape == (2,)  # only 0-d tensors are unsqueezed
    assert (spec["b"].shape, spec["b"].dtype) == ((2, 3), torch.int64)
    assert isinstance(spec["n", "c"], Unbounded) and spec["n", "c"].dtype == torch.bool
    assert spec.is_in(td)
    assert (spec.zero() == td.zero_()).all()


def test_dynamic_shape_makes_the_last_dim_any_size():
    spec = make_composite_from_td(TensorDict({"x": torch.zeros(2, 4)}, [2]), dynamic_shape=True)
    assert spec["x"].shape == (2, -1)
    with pytest.raises(ValueError, match=r"'a'.*no dim past the batch dims"):
        make_composite_from_td(TensorDict({"a": torch.zeros(2)}, [2]), dynamic_shape=True)


def test_non_tensor_entries_get_a_non_tensor_spec():
    spec = make_composite_from_td(TensorDict({"t": NonTensorData("hi"), "u": torch.zeros(1)}, []))
    assert isinstance(spec["t"], NonTensor) and isinstance(spec["u"], Unbounded)


def test_empty_and_bad_input():
    assert isinstance(make_composite_from_td(TensorDict({}, [3])), Composite)
    assert make_composite_from_td(TensorDict({}, [3])).shape == (3,)
    with pytest.raises(TypeError, match="expects a TensorDict, found dict"):
        make_composite_from_td({"a": torch.zeros(1)})
