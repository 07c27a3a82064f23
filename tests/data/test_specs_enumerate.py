"""Specs: enumerate/cardinality of discrete specs and TorchRL's alias spellings."""

import pytest
import torch

from streamrl.data import (
    Bounded,
    Categorical,
    Choice,
    Composite,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    Stacked,
    Unbounded,
)


@pytest.mark.parametrize(
    "make, card",
    [
        (lambda: Categorical(3, shape=(2,)), 3),
        (lambda: OneHot(4), 4),
        (lambda: MultiCategorical([2, 3]), 6),
        (lambda: MultiOneHot([2, 3]), 6),
    ],
)
def test_enumerate_lists_every_value_once(make, card):
    spec = make()
    vals = spec.enumerate()
    assert spec.cardinality() == card and vals.shape == (card, *spec.shape)
    assert all(spec.is_in(v) for v in vals)
    assert len({tuple(v.reshape(-1).tolist()) for v in vals}) == card


def test_enumerate_with_mask():
    spec = Categorical(4, mask=torch.tensor([True, False, True, False]))
    assert spec.enumerate().tolist() == [0, 1, 2, 3]
    assert spec.enumerate(use_mask=True).tolist() == [0, 2]
    oh = OneHot(3, mask=torch.tensor([False, True, True]))
    assert oh.enumerate(use_mask=True).long().argmax(-1).tolist() == [1, 2]
    uneven = Categorical(2, shape=(2,), mask=torch.tensor([[True, False], [True, True]]))
    with pytest.raises(ValueError, match="same mask"):
        uneven.enumerate(use_mask=True)


def test_enumerate_batched_multi_specs_repeat_over_positions():
    mc = MultiCategorical([2, 3], shape=(4, 2))
    vals = mc.enumerate()
    assert vals.shape == (6, 4, 2) and mc.cardinality() == 6
    assert (vals == vals[:, :1]).all() and all(mc.is_in(v) for v in vals)
    moh = MultiOneHot([2, 1], shape=(3, 3))
    assert moh.enumerate().shape == (2, 3, 3) and moh.cardinality() == 2
    with pytest.raises(ValueError, match="same nvec"):
        MultiCategorical(torch.tensor([[2, 3], [3, 3]])).enumerate()


def test_composite_enumerate_is_the_product():
    spec = Composite(a=Categorical(2), b=Composite(c=OneHot(3)))
    td = spec.enumerate()
    assert spec.cardinality() == 6 and td.batch_size == (6,)
    pairs = {(int(a), int(c)) for a, c in zip(td["a"], td["b", "c"].long().argmax(-1), strict=True)}
    assert pairs == {(a, c) for a in range(2) for c in range(3)}
    with pytest.raises(TypeError, match="cannot be enumerated"):
        Composite(a=Categorical(2), x=Unbounded(())).enumerate()
    with pytest.raises(ValueError, match="empty"):
        Composite().enumerate()


def test_alias_spellings():
    spec = Bounded(0.0, 1.0, (2,))
    assert spec.sample((3,)).shape == (3, 2) and spec.contains(spec.zeros())
    assert spec.ones().tolist() == [1.0, 1.0] and spec.ndimension() == 1
    spec.type_check(torch.zeros(2))
    with pytest.raises(TypeError, match="at key 'x'"):
        spec.type_check(torch.zeros(2, dtype=torch.float64), "x")
    comp = Composite(a=spec, shape=())
    assert comp.sample()["a"].shape == (2,) and comp.contains(comp.zeros())
    assert comp.ones()["a"].tolist() == [1.0, 1.0]
    assert comp.batch_size == comp.shape and comp.ndimension() == 0
    stacked = Stacked(spec, Bounded(0.0, 2.0, (2,)), dim=0)
    assert stacked.stack_dim == 0
    assert Choice([spec, Bounded(1.0, 2.0, (2,))]).num_choices == 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: Bounded(torch.arange(6.0).reshape(2, 3), 10.0, (2, 3)),
        lambda: Unbounded((2, 3)),
        lambda: Categorical(3, shape=(2, 3), mask=torch.rand(2, 3, 3) > -1),
        lambda: MultiCategorical(torch.tensor([[[2, 3, 4]] * 2] * 2)),
        lambda: OneHot(3, shape=(2, 2, 3)),
    ],
)
def test_reshape_flatten_unflatten(make):
    spec = make()
    flat = spec.flatten(0, 1) if spec.ndim == 3 else spec.reshape(-1)
    assert flat.shape.numel() == spec.shape.numel()
    assert spec.is_in(flat.rand().reshape(spec.shape))
    back = flat.unflatten(0, (2, 2) if spec.ndim == 3 else (2, 3))
    assert back == spec and spec.view(spec.shape) == spec


def test_reshape_keeps_bounds_in_place():
    spec = Bounded(torch.arange(6.0).reshape(2, 3), 10.0, (2, 3))
    assert spec.reshape(3, 2).low.tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]


def test_reshape_errors():
    with pytest.raises(ValueError, match="feature dim"):
        OneHot(3, shape=(2, 3)).reshape(3, 2)
    with pytest.raises(ValueError, match="cannot reshape"):
        Unbounded((2, 3)).reshape(4)
    with pytest.raises(ValueError, match="cannot unflatten"):
        Unbounded((6,)).unflatten(0, (4, 2))


def test_composite_reshape_and_squeeze_all():
    spec = Composite(a=Unbounded((2, 3, 4)), b=None, shape=(2, 3))
    flat = spec.reshape(6)
    assert flat.shape == (6,) and flat["a"].shape == (6, 4) and flat["b"] is None
    assert flat.view(2, 3) == spec
    with pytest.raises(ValueError, match="cannot reshape"):
        spec.reshape(5)
    ones = Composite(a=Unbounded((1, 2, 1, 4)), shape=(1, 2, 1))
    sq = ones.squeeze()
    assert sq.shape == (2,) and sq["a"].shape == (2, 4)
    assert spec.squeeze() == spec


def test_composite_lock():
    spec = Composite(a=Unbounded(), nested=Composite(b=Unbounded()))
    assert not spec.is_locked
    assert spec.lock_() is spec and spec.is_locked and spec["nested"].is_locked
    with pytest.raises(RuntimeError, match="locked"):
        spec["c"] = Unbounded()
    with pytest.raises(RuntimeError, match="locked"):
        spec["nested", "c"] = Unbounded()
    with pytest.raises(RuntimeError, match="locked"):
        del spec["a"]
    spec.unlock_()
    spec["c"] = Unbounded()
    del spec["a"]
    assert spec.keys() == ["nested", "c"]
    spec.lock_(recurse=False)
    spec["nested", "d"] = Unbounded()  # the nested one stays unlocked
    assert ("nested", "d") in spec.keys(True)
