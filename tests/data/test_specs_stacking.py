"""Specs as TorchRL users handle them: torch.stack of every spec type, lazy Stacked /
StackedComposite, Composite ``None`` entries and nested tuple keys, unbind, index."""

import pytest
import torch
from tensordict import LazyStackedTensorDict, TensorDict

from streamrl.data import (
    Binary,
    Bounded,
    BoundedContinuous,
    BoundedDiscrete,
    Categorical,
    Choice,
    Composite,
    MultiCategorical,
    MultiOneHot,
    NonTensor,
    OneHot,
    Stacked,
    StackedComposite,
    Unbounded,
    UnboundedDiscrete,
)

LEAVES = [
    lambda: Bounded(-2.0, 2.0, (3,)),
    lambda: BoundedContinuous(0.0, 1.0, (2,)),
    lambda: BoundedDiscrete(0, 4, (2,)),
    lambda: Unbounded((2,)),
    lambda: UnboundedDiscrete((2,)),
    lambda: Categorical(4),
    lambda: Categorical(4, shape=(2,), mask=torch.tensor([True, False, True, True])),
    lambda: OneHot(5),
    lambda: Binary(3),
    lambda: MultiCategorical([2, 3, 4]),
    lambda: MultiOneHot([2, 3]),
    lambda: NonTensor(example_data="x"),
    lambda: Choice([Bounded(0.0, 1.0, (1,)), Bounded(5.0, 6.0, (1,))]),
]


@pytest.mark.parametrize("make", LEAVES)
@pytest.mark.parametrize("dim", [0, -1])
def test_stack_equal_specs_gives_one_spec(make, dim):
    spec = make()
    if dim == -1:
        dim = -1 - spec.ndim  # a new leading dim, counted from the end
    out = torch.stack([spec, make()], dim)
    assert type(out) is type(spec)
    assert out.shape == (2, *spec.shape)
    val = out.rand()
    assert out.is_in(val)
    assert out[0] == spec


@pytest.mark.parametrize("make", LEAVES[:-2])
def test_unbind_inverts_stack(make):
    spec = make()
    stacked = torch.stack([spec, spec.clone(), spec.clone()])
    parts = stacked.unbind(0)
    assert len(parts) == 3 and all(p == spec for p in parts)


@pytest.mark.parametrize("make", [lambda: OneHot(3), lambda: Binary(2), lambda: MultiOneHot([2])])
def test_unbind_feature_dim_raises(make):
    with pytest.raises(ValueError, match="feature dims"):
        make().unbind(-1)


def test_unbind_bad_dim():
    with pytest.raises(ValueError, match="batch dims"):
        Unbounded((2,)).unbind(3)


def test_stack_different_leaves_is_lazy():
    a, b = Bounded(0.0, 1.0, (3,)), Bounded(0.0, 2.0, (3,))
    spec = torch.stack([a, b])
    assert isinstance(spec, Stacked) and spec.shape == (2, 3)
    val = spec.rand((4,))
    assert val.shape == (4, 2, 3) and spec.is_in(val)
    assert bool((val[:, 0] <= 1).all())
    assert not spec.is_in(torch.full((2, 3), 1.5))  # slice 0 out of [0, 1]
    assert spec.is_in(torch.stack([torch.full((3,), 0.5), torch.full((3,), 1.5)]))
    assert spec[1] == b and spec.unbind(0) == (a, b)
    assert spec[torch.tensor([1, 0])] == torch.stack([b, a])
    proj = spec.project(torch.full((2, 3), 5.0))
    assert proj[0].tolist() == [1.0] * 3 and proj[1].tolist() == [2.0] * 3
    assert spec.zero().shape == (2, 3) and spec.clone() == spec
    big = spec.expand(5, 2, 3)
    assert big.shape == (5, 2, 3) and big.rand().shape == (5, 2, 3)


def test_stacked_heterogeneous_shapes():
    spec = torch.stack([Unbounded((3,)), Unbounded((4,))], 0)
    assert spec.shape == (2, -1)
    with pytest.raises(ValueError, match="different shapes"):
        spec.rand()
    with pytest.raises(ValueError, match="stack dim"):
        spec.unbind(1)


def test_stacked_bad_input():
    with pytest.raises(TypeError, match="one kind"):
        torch.stack([Unbounded((3,)), Composite(a=Unbounded((3,)))])
    with pytest.raises(ValueError, match="same number of dims"):
        torch.stack([Unbounded((3,)), Unbounded((3, 1))])
    with pytest.raises(ValueError, match="share a dtype"):
        Stacked(Unbounded((3,)), Unbounded((3,), dtype=torch.float64), dim=0)
    with pytest.raises(TypeError, match="Composite"):
        StackedComposite(Unbounded((3,)), dim=0)
    with pytest.raises(ValueError, match="stack dim"):
        torch.stack([Unbounded((3,)), Unbounded((3,))], 3)
    with pytest.raises(ValueError, match="share a dtype"):
        torch.stack([Unbounded((3,)), Categorical(3, (3,))], 0)
    assert not torch.stack([Unbounded((3,)), Unbounded((2,))]).is_in(torch.zeros(3))


def test_stack_different_composites():
    a = Composite(obs=Unbounded((3,)), shared=Categorical(2))
    b = Composite(obs=Unbounded((4,)), shared=Categorical(2))
    spec = torch.stack([a, b])
    assert isinstance(spec, StackedComposite) and spec.shape == (2,)
    td = spec.rand()
    assert isinstance(td, LazyStackedTensorDict)
    assert td[0]["obs"].shape == (3,) and td[1]["obs"].shape == (4,)
    assert spec.is_in(td)
    assert spec["shared"].shape == (2,) and isinstance(spec["shared"], Categorical)
    assert isinstance(spec["obs"], Stacked)
    assert spec[0] == a and spec.unbind(0) == (a, b)
    assert spec.keys() == ["obs", "shared"] and "obs" in spec
    bad = LazyStackedTensorDict(
        TensorDict(obs=torch.zeros(3), shared=torch.tensor(5)),
        TensorDict(obs=torch.zeros(4), shared=torch.tensor(0)),
    )
    assert not spec.is_in(bad)


def test_stack_equal_composites():
    c = Composite(a=Unbounded((3,)), b=None)
    out = torch.stack([c, c.clone()])
    assert isinstance(out, Composite) and out.shape == (2,)
    assert out["a"].shape == (2, 3) and out["b"] is None and "b" in out.keys()


def test_composite_none_entry_kept_and_skipped():
    spec = Composite(a=Unbounded((3,)), b=None)
    assert spec.keys() == ["a", "b"] and spec["b"] is None and "b" in spec
    assert spec.keys(True, True) == ["a"]
    td = spec.rand()
    assert list(td.keys()) == ["a"] and spec.is_in(td)
    spec.check(td)
    assert spec.zero()["a"].shape == (3,)
    assert spec.expand(4).shape == (4,) and spec.expand(4)["b"] is None
    assert spec.clone() == spec and spec != Composite(a=Unbounded((3,)))
    assert spec.select("b")["b"] is None
    assert "b: None" in repr(spec)
    spec["b", "c"] = Unbounded()  # a nested key replaces the empty entry
    assert spec.keys(True, True) == ["a", ("b", "c")]


def test_composite_nested_tuple_keys():
    spec = Composite(next=Composite(obs=Unbounded((2,)), reward=Unbounded((1,))))
    assert ("next",) in spec.keys() and ("next", "obs") in spec.keys(True)
    assert ("next", "obs") not in spec.keys()
    assert spec.keys(include_nested=True, leaves_only=True) == [
        ("next", "obs"),
        ("next", "reward"),
    ]
    assert spec["next", "obs"] is spec["next"]["obs"]
    assert ("next", "obs") in spec and ("next", "nope") not in spec


def test_composite_unbind_and_to_numpy():
    spec = Composite(a=Unbounded((2, 3)), b=Categorical(4, (2,)), c=None, shape=(2,))
    parts = spec.unbind(0)
    assert len(parts) == 2 and parts[1]["a"].shape == (3,) and parts[0]["c"] is None
    td = spec.rand()
    arrs = spec.to_numpy(td, safe=True)
    assert sorted(arrs) == ["a", "b"] and arrs["a"].shape == (2, 3)
    with pytest.raises(ValueError, match="batch dim"):
        spec.unbind(1)
    td["b"] = torch.full((2,), 7)
    with pytest.raises(ValueError):
        spec.to_numpy(td, safe=True)


def test_leaf_to_numpy():
    spec = Bounded(0.0, 1.0, (2,))
    assert spec.to_numpy(torch.tensor([0.5, 1.0])).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="outside"):
        spec.to_numpy(torch.tensor([0.5, 3.0]), safe=True)


def test_index_categorical_and_one_hot():
    table = torch.arange(10).reshape(2, 5) * 10
    cat = Categorical(5, shape=(2,))
    assert cat.index(torch.tensor([2, 3]), table).tolist() == [20, 80]
    assert Categorical(5).index(torch.tensor(2), torch.arange(5)).item() == 2
    oh = OneHot(5)
    assert oh.index(torch.tensor([0, 0, 0, 1, 0]), torch.arange(5) * 2).item() == 6
    with pytest.raises(ValueError, match="last dim of size n=5"):
        cat.index(torch.tensor([1, 1]), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="do not match"):
        cat.index(torch.tensor([1, 1, 1]), torch.zeros(2, 5))
    with pytest.raises(TypeError, match="tensors"):
        cat.index([1, 1], table)


def test_one_hot_categorical_conversions():
    cat = Categorical(3, mask=torch.tensor([True, False, True]))
    oh = cat.to_one_hot_spec()
    assert isinstance(oh, OneHot) and oh.shape == (3,) and oh.dtype == torch.bool
    assert oh.mask.tolist() == [True, False, True]
    assert oh.to_categorical_spec() == cat.to(torch.int64)
    assert cat.to_one_hot(torch.tensor(2)).tolist() == [False, False, True]
    assert cat.to_categorical(torch.tensor(2)).item() == 2
    v = torch.tensor([False, True, False])
    assert oh.to_one_hot(v) is v and oh.to_categorical(v).item() == 1
    with pytest.raises(ValueError):
        cat.to_one_hot(torch.tensor(1), safe=True)  # masked out
    mc = MultiCategorical([2, 3])
    mo = mc.to_one_hot_spec()
    assert isinstance(mo, MultiOneHot) and mo.shape == (5,)
    enc = mc.to_one_hot(torch.tensor([1, 2]))
    assert enc.tolist() == [False, True, False, False, True] and mo.is_in(enc.to(mo.dtype))
    assert mo.to_categorical(enc).tolist() == [1, 2] and mo.to_one_hot(enc) is enc
    assert mo.to_categorical_spec() == mc
    assert mc.to_categorical_spec() == mc and mo.to_one_hot_spec() == mo


def test_multicategorical_one_hot_needs_one_nvec():
    mc = MultiCategorical(torch.tensor([[2, 3], [3, 3]]))
    with pytest.raises(ValueError, match="same nvec"):
        mc.to_one_hot(torch.zeros(2, 2, dtype=torch.long))


def test_stacked_squeeze_unsqueeze():
    spec = torch.stack([Unbounded((3,)), Unbounded((4,))], 0)
    up = spec.unsqueeze(0)
    assert up.shape == (1, 2, -1) and up.stack_dim == 1
    assert up.squeeze(0) == spec
    tail = spec.unsqueeze(-1)
    assert tail.shape == (2, -1, 1) and tail.stack_dim == 0 and tail.squeeze(2) == spec
    single = Stacked(Unbounded((3,)), dim=0)
    assert single.squeeze(0) == Unbounded((3,))
    with pytest.raises(ValueError, match="cannot squeeze"):
        spec.squeeze(0)
    with pytest.raises(ValueError, match="unsqueeze dim"):
        spec.unsqueeze(5)
    same = torch.stack([Bounded(0.0, 1.0, (2,)), Bounded(0.0, 2.0, (2,))])
    same.assert_is_in(torch.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="not in Stacked"):
        same.assert_is_in(torch.full((2, 2), 1.5))
    assert same.cpu() == same
