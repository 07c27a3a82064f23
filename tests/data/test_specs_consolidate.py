"""consolidate_spec / check_no_exclusive_keys: exclusive keys of lazily stacked Composites."""

import pytest
import torch

from streamrl.data import check_no_exclusive_keys, consolidate_spec
from streamrl.data.specs import Bounded, Composite, StackedComposite, Unbounded


def _hetero(bs=()):
    shared = Unbounded(shape=(*bs, 5, 5, 5))
    lazy = torch.stack([Unbounded(shape=(*bs, 5, i, 7)) for i in (6, 7, 8, 8)], dim=len(bs))
    return torch.stack(
        [
            Composite({"shared": shared, "lazy": lazy}, shape=bs),
            Composite({"shared": shared, "nested": Composite(x=Bounded(0.0, 1.0, bs))}, shape=bs),
            Composite({}, shape=bs),
        ],
        dim=0,
    )


@pytest.mark.parametrize("bs", [(), (2,), (2, 1)])
def test_consolidate_fills_missing_keys_with_empty_specs(bs):
    spec = _hetero(bs)
    assert not check_no_exclusive_keys(spec)
    out = consolidate_spec(spec)
    assert check_no_exclusive_keys(out, recurse=True) and isinstance(out, StackedComposite)
    assert out["shared"].shape == (3, *bs, -1, -1, -1)
    assert out["lazy"].shape == (3, *bs, 4, 5, -1, 7)
    assert out[2]["nested", "x"].shape == bs
    assert out[2]["shared"].rand().numel() == 0
    assert not check_no_exclusive_keys(spec)  # the input is left as it was


def test_recursion_flags():
    inner = torch.stack([Composite(a=Unbounded()), Composite(b=Unbounded())])
    spec = Composite(n=inner, shape=())
    assert check_no_exclusive_keys(spec, recurse=False)
    assert not check_no_exclusive_keys(spec)
    assert not check_no_exclusive_keys(consolidate_spec(spec, recurse_through_entries=False))
    assert check_no_exclusive_keys(consolidate_spec(spec))
    nested = torch.stack([Composite(n=Composite(a=Unbounded())), Composite(n=Composite())])
    out = consolidate_spec(nested, recurse_through_entries=False)
    assert check_no_exclusive_keys(out, recurse=False) and not check_no_exclusive_keys(out)
    assert check_no_exclusive_keys(consolidate_spec(nested))


def test_leaves_and_bad_input():
    assert check_no_exclusive_keys(Unbounded())
    assert consolidate_spec(Unbounded((2,))) == Unbounded((2,))
    with pytest.raises(TypeError, match="takes a spec"):
        consolidate_spec({"a": 1})
