"""Leaf specs: project/_project, (memoized) encode, index checks, index_select, cardinality."""

import numpy as np
import pytest
import torch

from streamrl.data.specs import (
    Binary,
    Bounded,
    Categorical,
    Choice,
    Composite,
    MultiOneHot,
    NonTensor,
    OneHot,
    Unbounded,
)


@pytest.mark.parametrize(
    "spec",
    [Bounded(-1.0, 1.0, (3,)), Categorical(4, (2,)), OneHot(3), Binary(3), Unbounded((2,))],
)
def test_project_keeps_values_in_the_spec_and_maps_others_in(spec):
    val = spec.rand((5,))
    assert torch.equal(spec.project(val), val) and torch.equal(spec._project(val), val)
    out = spec.project(torch.randn(5, *spec.shape) * 10)
    assert spec.is_in(out)


def test_encode_reshapes_equal_sizes_and_refuses_others():
    spec = Unbounded((2, 2))
    assert spec.encode([1, 2, 3, 4]).shape == (2, 2)
    with pytest.raises(RuntimeError, match=r"Shape mismatch.*size 6"):
        spec.encode(np.zeros(6))


def test_encode_ignore_device_keeps_the_value_device():
    spec = Unbounded((2,), device="meta")
    assert spec.encode(torch.zeros(2), ignore_device=True).device.type == "cpu"
    assert spec.encode(torch.zeros(2)).device.type == "meta"


def test_one_hot_encode_takes_indices_and_to_numpy_gives_them():
    spec = OneHot(4)
    val = spec.rand()
    idx = spec.to_numpy(val)
    assert idx.shape == () and torch.equal(spec.encode(idx), val)
    assert spec.encode(2).tolist() == [False, False, True, False]
    multi = MultiOneHot([2, 3])
    val = multi.rand()
    assert multi.to_numpy(val).shape == (2,)
    assert torch.equal(multi.encode(multi.to_numpy(val)), val)
    with pytest.raises(RuntimeError, match="is invalid for input of size"):
        multi.encode(np.zeros((3, 2), dtype=np.int64))


@pytest.mark.parametrize("raw", [np.arange(3.0), [0, 1, 2], torch.arange(3)])
def test_memoized_encode_matches_the_plain_one(raw):
    spec = Bounded(0.0, 5.0, (3,))
    plain = spec.encode(raw)
    spec.memoize_encode()
    assert torch.equal(spec.encode(raw), plain) and torch.equal(spec.encode(raw), plain)
    assert len(spec._encode_memo) == 1
    spec.erase_memoize_cache()
    assert spec._encode_memo == {}
    spec.memoize_encode(False)
    assert spec._encode_memo is None and torch.equal(spec.encode(raw), plain)


def test_memoized_encoder_is_not_shared_by_clones():
    spec = Unbounded((2,), dtype=torch.float32)
    spec.memoize_encode()
    spec.encode(np.zeros(2))
    cast = spec.to(torch.float64)
    assert cast.encode(np.zeros(2)).dtype == torch.float64


def test_composite_memoize_encode_reaches_the_leaves():
    spec = Composite(a=Unbounded((2,)), b=Composite(c=Categorical(3)))
    spec.memoize_encode()
    td = spec.encode({"a": np.ones(2), "b": {"c": np.array(2)}})
    assert td["b", "c"].item() == 2 and spec["b", "c"]._encode_memo
    spec.erase_memoize_cache()
    assert spec["a"]._encode_memo == {}
    with pytest.raises(KeyError, match="has no spec for key 'z'"):
        spec.encode({"z": 1})


def test_dtype_none_is_the_default_dtype():
    assert Unbounded(dtype=None).dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    "index", [5, (0, 1), range(10), np.array([[2, 10]]), (1, ..., 2, ...), torch.tensor([10, 2])]
)
def test_bad_indices_raise_index_error(index):
    with pytest.raises(IndexError):
        OneHot(4, (3, 4))[index]
    with pytest.raises(IndexError):
        Composite(k=Unbounded((3, 4)), shape=(3,))[index]


def test_valid_indices_follow_tensor_indexing():
    spec = Unbounded((5, 3))
    assert spec[10:1:-1].shape == (3, 3)
    assert spec[[[0, 1], [0, 1]]].shape == (2, 2, 3)
    assert Unbounded((5, 3, 4))[(0, 1), (0, 1)].shape == (2, 4)
    assert spec[None, :2].shape == (1, 2, 3) and spec[1, ...].shape == (3,)


def test_index_select_on_leaves_and_composites():
    spec = Bounded(0.0, 1.0, (5, 4))
    assert torch.index_select(spec, 1, torch.tensor([1, 3])).shape == (5, 2)
    assert spec.index_select(0, torch.tensor([], dtype=torch.long)).shape == (0, 4)
    with pytest.raises(IndexError):
        spec.index_select(0, torch.tensor([10]))
    with pytest.raises(ValueError, match="Cannot index_select along the last dimension"):
        torch.index_select(OneHot(3, (5, 3)), -1, torch.tensor([0]))
    mask = torch.rand(5, 3) > 0.3
    mask[:, 0] = True
    cat = Categorical(3, (5,), mask=mask)
    picked = torch.index_select(cat, 0, torch.tensor([1, 3]))
    assert torch.equal(picked.mask, mask[[1, 3]])
    comp = Composite(obs=Bounded(0.0, 1.0, (5, 3)), act=OneHot(4, (5, 4)), shape=(5,))
    out = torch.index_select(comp, 0, torch.tensor([0, 2, 4]))
    assert out.shape == (3,) and out["act"].shape == (3, 4) and out.rand()["obs"].shape == (3, 3)


def test_dynamic_dims_take_any_size():
    assert Unbounded((-1, 1, 2)).is_in(torch.randn(3, 1, 2))
    assert not Unbounded((-1, 1, 2)).is_in(torch.randn(3, 2, 2))


def test_cardinalities():
    assert Binary(3).cardinality() == 8 == len(Binary(3).enumerate())
    vals = Binary(2, (4, 2)).enumerate()
    assert vals.shape == (4, 4, 2) and len({tuple(v[0].tolist()) for v in vals}) == 4
    assert Choice([Categorical(10), Categorical(20)]).cardinality() == 30
    assert Choice([Bounded(0.0, 1.0, ()), Bounded(2.0, 3.0, ())]).cardinality() == float("inf")
    assert Bounded(0, 2, (2,), dtype=torch.int64).cardinality() == 9
    assert Unbounded().cardinality() == float("inf")
    with pytest.raises(RuntimeError, match="Cannot enumerate a NonTensor"):
        NonTensor().cardinality()


def test_unbounded_space_is_the_dtype_range():
    assert torch.isinf(Unbounded((2,)).space.low).all()
    space = Unbounded((2,), dtype=torch.int8).space
    assert space.low.tolist() == [-128, -128] and space.high.tolist() == [127, 127]
    assert Unbounded((2,)).space != Bounded(0.0, 1.0, (2,)).space


def test_choice_errors():
    with pytest.raises(TypeError, match="must be a list"):
        Choice("abc")
    with pytest.raises(TypeError, match="TensorSpec, NonTensorData, or NonTensorStack"):
        Choice(["abc"])
    with pytest.raises(TypeError, match="must be the same type"):
        Choice([Bounded(0, 1, (1,)), Categorical(10, (1,))])
    with pytest.raises(ValueError, match="must have the same shape"):
        Choice([Categorical(10, (1,)), Categorical(10, (2,))])
    with pytest.raises(ValueError, match="must have the same dtype"):
        Choice([Categorical(10, (2,)), Categorical(10, (2,), dtype=torch.int32)])
