"""Composite: names, settable shape, nested shapes, merging update, clear_device_, type_check,
forbidden keys, lock errors; StackedComposite item assignment and deletion."""

import pytest
import torch

from streamrl.data.specs import Bounded, Composite, StackedComposite, Unbounded


def _obs(*shape):
    return Bounded(-1.0, 1.0, shape)


def test_names_constructor_setter_and_validation():
    spec = Composite({"obs": _obs(10, 5, 3)}, shape=(10, 5), names=["batch", "time"])
    assert spec.names == ["batch", "time"] and spec._has_names()
    spec.names = None
    assert spec.names == [None, None] and not spec._has_names()
    with pytest.raises(ValueError, match="Expected 2 names, but got 3 names"):
        spec.names = ["a", "b", "c"]
    with pytest.raises(ValueError, match="unique"):
        spec.names = ["a", "a"]
    assert Composite({}, shape=(10,), names=["b"]).names == ["b"]


def test_names_follow_shape_algebra():
    spec = Composite({"obs": _obs(10, 1, 5, 3)}, shape=(10, 1, 5), names=["b", "d", "t"])
    assert spec.squeeze(1).names == ["b", "t"]
    assert spec.unsqueeze(1).names == ["b", None, "d", "t"]
    assert spec.expand(2, 10, 1, 5).names == [None, "b", "d", "t"]
    assert spec[0].names == ["d", "t"] and spec[0:5].names == ["b", "d", "t"]
    assert spec.unbind(2)[0].names == ["b", "d"]
    assert spec.clone().names == spec.to("cpu").names == ["b", "d", "t"]
    ones = Composite({"obs": _obs(1, 1, 3)}, shape=(1, 1), names=["x", "y"])
    assert ones.squeeze().names == []
    # names do not take part in equality
    assert spec == Composite({"obs": _obs(10, 1, 5, 3)}, shape=(10, 1, 5))


def test_refine_names_and_nested_propagation():
    spec = Composite(
        {"outer": Composite({"inner": _obs(10, 3, 2)}, shape=(10, 3))}, shape=(10,), names=["b"]
    )
    assert spec["outer"].names == ["b", None]
    spec = Composite({"obs": _obs(10, 5, 3, 4)}, shape=(10, 5, 3))
    assert spec.refine_names(None, None, "f").names == [None, None, "f"]
    assert spec.refine_names("b", ...).names == ["b", None, "f"]
    with pytest.raises(RuntimeError, match="cannot coerce Composite names"):
        spec.refine_names("x", ...)


def test_shape_setter_checks_entries_and_fits_nested_composites():
    spec = Composite(a=Unbounded((3, 2)), nested=Composite(leaf=Unbounded((3,))))
    spec.shape = (3,)
    assert spec.shape == (3,) and spec["nested"].shape == (3,)
    with pytest.raises(ValueError, match="does not start with"):
        spec.shape = (4,)
    assert spec.shape == (3,)
    spec.shape = ()
    assert spec["nested"].shape == (3,)


def test_nested_composite_with_fewer_dims_takes_the_parent_shape():
    inner = Composite(b=Composite(c=Unbounded((2, 3))))
    spec = Composite(a=inner, shape=(2, 3))
    assert spec["a"].shape == spec["a", "b"].shape == (2, 3)
    assert inner.shape == ()  # the caller's Composite is left as it was
    trials = Composite(shape=(2, 3))
    trials["a", "b", "c"] = Unbounded((2, 3))
    assert trials == spec
    with pytest.raises(ValueError, match="does not start with"):
        Composite(a=Composite(b=Unbounded((4,))), shape=(2,))


def test_update_merges_nested_composites():
    spec = Composite(obs=Unbounded(), nested=Composite(obs=Unbounded(), act=Unbounded()))
    spec.update(Composite(nested=Composite(new=None)))
    assert set(spec.keys(True)) == {"obs", "nested", ("nested", "obs"), ("nested", "act"),
                                    ("nested", "new")}  # fmt: skip
    spec.update(Composite(nested=Composite(act=None)))
    assert spec["nested", "act"] is None
    spec.update({"obs": None})
    assert spec["obs"] is None


def test_clear_device_type_check_and_forbidden_keys():
    spec = Composite(a=Unbounded(), n=Composite(b=Unbounded(), device="cpu"), device="cpu")
    assert spec.clear_device_() is spec and spec.device is None and spec["n"].device is None
    td = spec.rand()
    spec.type_check(td)
    spec.type_check(td["a"], "a")
    with pytest.raises(TypeError, match="expected dtype"):
        spec.type_check(td["a"].double(), "a")
    with pytest.raises(ValueError, match="needs its key"):
        spec.type_check(td["a"])
    for key in ("shape", "device", "dtype", "space"):
        with pytest.raises(AttributeError, match="cannot be set"):
            spec[key] = Unbounded()
    with pytest.raises(TypeError, match="must be a TensorSpec"):
        Composite(names_like_entry=3)


def test_locked_message_and_alias():
    spec = Composite(a=Composite(b=Unbounded()))
    assert not spec.locked
    spec.lock_()
    assert spec.locked and spec["a"].locked
    with pytest.raises(RuntimeError, match=r"Cannot modify a locked Composite\."):
        spec["a", "c"] = Unbounded()


def test_keys_find_nested_tuples():
    spec = Composite(a=Composite(b=Composite(c=Unbounded())))
    assert ("a", ("b", ("c",))) in spec.keys(True, True)


def _stacked():
    return torch.stack(
        [Composite(shared=Unbounded((2,)), x=Unbounded((i + 1,))) for i in range(3)], 0
    )


def test_stacked_composite_set_delete_update_and_type_check():
    spec = _stacked()
    new = torch.stack([Unbounded((i,)) for i in range(3)], 0)
    spec["new"] = new
    assert spec["new"] == new
    spec["other", "key"] = new
    assert isinstance(spec["other"], StackedComposite)
    with pytest.raises(RuntimeError, match="key should be a Sequence<NestedKey>"):
        spec[0] = new
    with pytest.raises(ValueError, match="stack dim"):
        spec["bad"] = torch.stack([Unbounded((1,))] * 2, 0)
    del spec["x"]
    assert "x" not in spec._specs[0]
    with pytest.raises(KeyError):
        del spec["x"]
    other = _stacked()
    other["shared"] = torch.stack([Bounded(0.0, 1.0, (2,))] * 3, 0)
    spec.update(other)
    assert isinstance(spec[0]["shared"], Bounded) and spec[1]["x"].shape == (2,)
    td = spec.rand()
    spec.type_check(td)
    spec.type_check(td["shared"], "shared")
    assert spec.unsqueeze(0).squeeze() == spec
