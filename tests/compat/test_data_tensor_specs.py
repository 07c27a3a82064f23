"""Compatibility with TorchRL 0.14's ``torchrl.data.tensor_specs``: every documented public
name importable from ``streamrl.data.tensor_specs``, built with its documented constructor
arguments and defaults, and its main methods exercised.

Names left out on purpose (see docs/torchrl_differences.md): ``NO_DEFAULT_RL``, ``T``,
``get_binary_env_var``, ``invertible_dict`` (module internals, not specs).
"""

import numpy as np
import pytest
import torch
from tensordict import NonTensorData, TensorDict

from streamrl.data import tensor_specs as ts
from streamrl.data.tensor_specs import (
    Binary,
    BinaryBox,
    Bounded,
    BoundedContinuous,
    BoundedDiscrete,
    Box,
    BoxList,
    Categorical,
    CategoricalBox,
    Choice,
    Composite,
    ContinuousBox,
    DiscreteBox,
    MultiCategorical,
    MultiOneHot,
    NonTensor,
    OneHot,
    Stacked,
    StackedComposite,
    TensorSpec,
    Unbounded,
    UnboundedContinuous,
    UnboundedDiscrete,
)

SURFACE = [
    "Binary", "BinaryBox", "Bounded", "BoundedContinuous", "BoundedDiscrete", "Box", "BoxList",
    "Categorical", "CategoricalBox", "Choice", "Composite", "ContinuousBox", "DiscreteBox",
    "MultiCategorical", "MultiOneHot", "NonTensor", "OneHot", "Stacked", "StackedComposite",
    "TensorSpec", "Unbounded", "UnboundedContinuous", "UnboundedDiscrete",
]  # fmt: skip


@pytest.mark.parametrize("name", SURFACE)
def test_name_exported(name):
    assert name in ts.__all__ and getattr(ts, name) is not None


def _roundtrip(spec, lead=(2,), zero_in=True):
    val = spec.rand()
    assert spec.is_in(val)
    # as in TorchRL, a one-hot spec's zero() is all zeros, which is not a valid one-hot value
    assert spec.is_in(spec.zero()) is zero_in
    assert spec.rand(lead).shape == (*lead, *spec.shape)
    assert spec.is_in(spec.project(val))
    assert spec.expand(3, *spec.shape).shape == (3, *spec.shape)
    assert spec.unsqueeze(0).squeeze(0) == spec
    assert isinstance(spec.to_numpy(val), np.ndarray)
    return val


def test_bounded_family():
    spec = Bounded(low=-1.0, high=1.0, shape=(2,))
    _roundtrip(spec)
    assert not spec.is_in(torch.tensor([0.0, 2.0]))
    assert spec.project(torch.tensor([0.0, 2.0])).tolist() == [0.0, 1.0]
    cont = BoundedContinuous(0.0, 1.0, shape=(2,))
    assert isinstance(cont, Bounded) and cont.domain == "continuous" and cont.dtype == torch.float32
    assert type(_roundtrip(cont) is not None) and type(cont[0]) is BoundedContinuous
    disc = BoundedDiscrete(0, 3, shape=(2,))
    assert disc.domain == "discrete" and disc.dtype == torch.int64
    _roundtrip(disc)
    assert type(disc.expand(4, 2)) is BoundedDiscrete
    assert disc.project(torch.tensor([-1.2, 2.6])).tolist() == [0, 3]
    with pytest.raises(ValueError, match="float dtype"):
        BoundedContinuous(0, 1, (1,), dtype=torch.int64)
    with pytest.raises(ValueError, match="integer dtype"):
        BoundedDiscrete(0, 1, (1,), dtype=torch.float32)
    with pytest.raises(ValueError, match="low must be <= high"):
        Bounded(1.0, 0.0, (1,))


def test_unbounded_family():
    spec = Unbounded(shape=(3,))
    _roundtrip(spec)
    assert UnboundedContinuous(shape=(3,)).dtype == torch.float32
    disc = UnboundedDiscrete(shape=(3,))
    assert disc.dtype == torch.int64 and disc.domain == "discrete"
    _roundtrip(disc)


def test_categorical_and_one_hot():
    cat = Categorical(n=4, shape=(2,))
    _roundtrip(cat)
    assert not cat.is_in(torch.tensor([0, 4]))
    masked = Categorical(4, mask=torch.tensor([False, True, False, False]))
    assert all(masked.rand().item() == 1 for _ in range(5))
    assert isinstance(cat.to_one_hot_spec(), OneHot)
    oh = OneHot(n=4)
    _roundtrip(oh, zero_in=False)
    assert oh.to_categorical(oh.rand()).shape == ()
    assert oh.index(oh.to_one_hot(torch.tensor([0, 0, 1, 0])), torch.arange(4)).item() == 2
    assert isinstance(oh.to_categorical_spec(), Categorical)


def test_multi_and_binary():
    mc = MultiCategorical(nvec=[2, 3])
    _roundtrip(mc)
    assert not mc.is_in(torch.tensor([2, 0]))
    mo = MultiOneHot(nvec=[2, 3])
    val = _roundtrip(mo, zero_in=False)
    assert mo.to_categorical(val).shape == (2,)
    b = Binary(n=3)
    assert b.dtype == torch.int8
    _roundtrip(b)
    assert Binary(shape=(2, 3)).shape == (2, 3)


def test_composite():
    spec = Composite(obs=Unbounded((2, 3)), act=Categorical(3, (2,)), info=None, shape=(2,))
    td = spec.rand()
    assert isinstance(td, TensorDict) and spec.is_in(td) and td.batch_size == (2,)
    assert spec.keys() == ["obs", "act", "info"] and spec["info"] is None
    assert ("obs",) in spec.keys()
    assert spec.expand(5, 2).shape == (5, 2) and spec.unsqueeze(0).squeeze(0) == spec
    assert len(spec.unbind(0)) == 2 and sorted(spec.to_numpy(td)) == ["act", "obs"]
    assert spec.project(td) is td
    with pytest.raises(ValueError, match="does not start with"):
        spec["bad"] = Unbounded((3,))


def test_stacked_and_stacked_composite():
    spec = Stacked(Bounded(0.0, 1.0, (2,)), Bounded(0.0, 2.0, (2,)), dim=0)
    assert spec.shape == (2, 2) and spec.is_in(spec.rand())
    assert torch.stack(list(spec.unbind(0))) == spec
    comp = StackedComposite(Composite(a=Unbounded((1,))), Composite(a=Unbounded((2,))), dim=0)
    assert comp.is_in(comp.rand()) and comp.shape == (2,)


def test_non_tensor():
    spec = NonTensor()
    assert spec.shape == (1,) and spec.dtype is None
    val = spec.rand()
    assert isinstance(val, NonTensorData) and val.data is None and spec.is_in(val)
    spec = NonTensor(shape=(), example_data="hello")
    assert spec.zero().data == "hello" and spec.rand((3,)).batch_size == (3,)
    assert spec.is_in(NonTensorData("other")) and not spec.is_in(torch.zeros(()))
    assert spec.expand(4).shape == (4,) and spec.unsqueeze(0).shape == (1,)
    assert spec.encode("x").data == "x" and spec.to_numpy(val) is val
    with pytest.raises(TypeError, match="expected NonTensorData"):
        spec.check("plain string")
    with pytest.raises(TypeError, match="dtype"):
        NonTensor(dtype="str")
    assert Composite(text=NonTensor(shape=())).rand()["text"] is None  # data of a NonTensor


def test_choice():
    spec = Choice([Bounded(0.0, 1.0, (1,)), Bounded(10.0, 11.0, (1,))])
    torch.manual_seed(0)
    draws = {int(spec.rand().item() >= 10) for _ in range(20)}
    assert draws == {0, 1}
    assert spec.is_in(torch.tensor([10.5])) and not spec.is_in(torch.tensor([5.0]))
    assert spec.zero().tolist() == [0.0] and spec.rand((2,)).shape == (2, 1)
    assert spec.expand(3, 1).shape == (3, 1) and spec.unsqueeze(0).shape == (1, 1)
    assert spec.project(torch.tensor([5.0])).tolist() == [1.0]
    words = Choice([NonTensorData(w) for w in ["a", "b", "c"]])
    assert {words.rand().data for _ in range(40)} == {"a", "b", "c"}
    assert words.is_in(NonTensorData("b")) and not words.is_in(NonTensorData("z"))
    assert words.zero().data == "a"
    with pytest.raises(TypeError, match="must be the same type"):
        Choice([Bounded(0.0, 1.0, (1,)), Unbounded((1,))])
    with pytest.raises(ValueError, match="at least one"):
        Choice([])
    with pytest.raises(TypeError, match="TensorSpec, NonTensorData"):
        Choice([1, 2])


def test_boxes():
    assert isinstance(CategoricalBox(3), Box) and CategoricalBox(3) == CategoricalBox(3)
    assert CategoricalBox(3) != CategoricalBox(4)
    assert isinstance(DiscreteBox(3), Box)
    box = BinaryBox(n=4)
    assert box.n == 4 and box.clone() == box and box.to("cpu") == box
    boxes = BoxList([CategoricalBox(2), CategoricalBox(3)])
    assert len(boxes) == 2 and boxes == BoxList.from_nvec([2, 3])
    nested = BoxList.from_nvec(torch.tensor([[2, 3], [4, 5]]))
    assert [[b.n for b in row] for row in nested] == [[2, 3], [4, 5]]
    cont = Bounded(0.0, 1.0, (2,)).space
    assert isinstance(cont, ContinuousBox) and isinstance(cont, Box)
    assert cont.to(torch.float64).low.dtype == torch.float64
    with pytest.raises(ValueError, match="positive int"):
        CategoricalBox(0)
    with pytest.raises(TypeError, match="holds boxes"):
        BoxList([3])


def test_tensor_spec_is_the_base():
    for spec in [Bounded(0.0, 1.0, (1,)), Unbounded(()), Categorical(2), NonTensor(), Binary(2)]:
        assert isinstance(spec, TensorSpec)


def test_torchrl_014_spec_methods():
    # memoize_encode / erase_memoize_cache, encode(ignore_device=), _project under project
    spec = Bounded(low=0.0, high=1.0, shape=(2,))
    spec.memoize_encode(mode=True)
    assert spec.encode(np.array([0.5, 0.25]), ignore_device=True).tolist() == [0.5, 0.25]
    spec.erase_memoize_cache()
    assert spec._project(torch.tensor([2.0, -1.0])).tolist() == [1.0, 0.0]
    # torch.index_select of a spec, cardinality of Binary / Choice
    assert torch.index_select(Bounded(0, 1, (5, 4)), dim=0, index=torch.tensor([0, 2])).shape == (
        2,
        4,
    )
    assert Binary(n=3).cardinality() == 8
    assert Choice([Categorical(10), Categorical(20)]).cardinality() == 30
    # MultiCategorical / MultiOneHot mask= (one-hot layout)
    mask = torch.tensor([True, False, True, True, True])
    assert MultiCategorical(nvec=[2, 3], mask=mask).rand()[0].item() == 0
    assert MultiOneHot(nvec=[2, 3], mask=mask).rand()[:2].tolist() == [True, False]
    # Composite: names=, refine_names, clear_device_, type_check, locked, settable shape
    comp = Composite({"obs": Unbounded((4, 3))}, shape=(4,), device="cpu", names=["batch"])
    assert comp.names == ["batch"] and comp.refine_names("batch").names == ["batch"]
    comp.type_check(comp.rand())
    assert comp.clear_device_().device is None and not comp.locked
    comp.shape = ()
    assert comp.shape == ()
