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
    assert oh.enumerate(use_mask=True).argmax(-1).tolist() == [1, 2]
    uneven = Categorical(2, shape=(2,), mask=torch.tensor([[True, False], [True, True]]))
    with pytest.raises(ValueError, match="same mask"):
        uneven.enumerate(use_mask=True)


def test_enumerate_bad_shapes():
    with pytest.raises(ValueError, match="1-dim"):
        MultiCategorical([2, 3], shape=(2, 2)).enumerate()
    with pytest.raises(ValueError, match="1-dim"):
        MultiOneHot([2], shape=(3, 2)).enumerate()


def test_composite_enumerate_is_the_product():
    spec = Composite(a=Categorical(2), b=Composite(c=OneHot(3)))
    td = spec.enumerate()
    assert spec.cardinality() == 6 and td.batch_size == (6,)
    pairs = {(int(a), int(c)) for a, c in zip(td["a"], td["b", "c"].argmax(-1), strict=True)}
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
