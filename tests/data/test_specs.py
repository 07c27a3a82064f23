"""Specs: sampling, membership, projection, shape algebra, equality, reprs, gym spaces."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    Binary,
    Bounded,
    BoundedTensorSpec,
    Categorical,
    Composite,
    CompositeSpec,
    DiscreteTensorSpec,
    MultiCategorical,
    MultiOneHot,
    OneHot,
    OneHotDiscreteTensorSpec,
    Unbounded,
    UnboundedContinuousTensorSpec,
    UnboundedDiscreteTensorSpec,
    spec_from_gym_space,
)

LEAVES = [
    lambda: Bounded(-2.0, 2.0, (3,)),
    lambda: Bounded(torch.tensor([0, -5]), torch.tensor([3, 5]), dtype=torch.int64),
    lambda: Unbounded((2,)),
    lambda: Unbounded((2,), dtype=torch.int32),
    lambda: Categorical(4),
    lambda: Categorical(4, shape=(2,)),
    lambda: OneHot(5),
    lambda: Binary(3),
    lambda: MultiCategorical([2, 3, 4]),
    lambda: MultiOneHot([2, 3]),
]


@pytest.mark.parametrize("make", LEAVES)
def test_rand_zero_in_spec_with_leading_dims(make):
    spec = make()
    torch.manual_seed(0)
    for lead in [(), (7,), (2, 3)]:
        val = spec.rand(lead)
        assert val.shape == (*lead, *spec.shape)
        assert val.dtype == spec.dtype
        assert spec.is_in(val)
        assert spec.is_in(spec.project(val))
        assert torch.equal(spec.project(val), val)
    assert spec.zero().shape == spec.shape


@pytest.mark.parametrize("make", LEAVES)
def test_expand_index_clone_eq(make):
    spec = make()
    big = spec.expand(4, *spec.shape)
    assert big.shape == (4, *spec.shape)
    assert big.is_in(big.rand())
    assert big[0] == spec
    assert big[1:3].shape == (2, *spec.shape)
    assert spec.clone() == spec and spec.clone() is not spec
    assert spec.to("cpu") == spec
    assert spec.unsqueeze(0).shape == (1, *spec.shape)
    assert spec != big
    if spec.ndim:
        with pytest.raises(ValueError):
            spec.expand(4, *spec.shape[:-1], 99)


def test_bounded_membership_projection_and_errors():
    spec = Bounded(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 10.0]))
    assert spec.shape == (2,) and spec.dtype == torch.float32 and spec.domain == "continuous"
    assert spec.is_in(torch.tensor([0.5, 9.0]))
    assert not spec.is_in(torch.tensor([1.5, 9.0]))
    assert not spec.is_in(torch.tensor([0.5, 9.0], dtype=torch.float64))
    assert not spec.is_in(torch.tensor([0.5]))
    assert not spec.is_in(torch.tensor([float("nan"), 1.0]))
    assert torch.equal(spec.project(torch.tensor([5.0, -3.0])), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="outside"):
        spec.check(torch.tensor([5.0, 0.0]), "action")
    with pytest.raises(TypeError, match="float64"):
        spec.check(torch.tensor([0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="low must be <= high"):
        Bounded(1.0, 0.0, (1,))
    with pytest.raises(ValueError, match="broadcast"):
        Bounded(torch.zeros(3), torch.ones(3), shape=(2,))
    with pytest.raises(TypeError, match="dtype"):
        Bounded(0, 1, (1,), dtype="complex128")


def test_bounded_infinite_bounds_sample_finite_values():
    spec = Bounded(torch.tensor([-np.inf, 0.0]), torch.tensor([np.inf, 1.0]))
    torch.manual_seed(0)
    val = spec.rand((100,))
    assert torch.isfinite(val).all() and spec.is_in(val)


def test_integer_bounded_rand_covers_range():
    spec = Bounded(0, 2, (1,), dtype=torch.int64)
    torch.manual_seed(0)
    vals = spec.rand((300,))
    assert set(vals.flatten().tolist()) == {0, 1, 2}
    assert spec.domain == "discrete"
    assert torch.equal(spec.project(torch.tensor([2.7])), torch.tensor([2]))


def test_discrete_specs_values():
    cat = Categorical(3)
    assert cat.shape == () and cat.dtype == torch.int64
    assert not cat.is_in(torch.tensor(3)) and not cat.is_in(torch.tensor(-1))
    assert cat.project(torch.tensor(7)).item() == 2
    assert cat.to_one_hot(torch.tensor(1)).tolist() == [0, 1, 0]
    oh = OneHot(3, dtype=torch.int64)
    assert not oh.is_in(torch.tensor([1, 1, 0])) and oh.is_in(torch.tensor([0, 0, 1]))
    assert oh.project(torch.tensor([0.2, 3.0, 1.0])).tolist() == [0, 1, 0]
    assert oh.to_categorical(torch.tensor([0, 0, 1])).item() == 2
    with pytest.raises(ValueError, match="end with n=3"):
        OneHot(3, shape=(4,))
    mc = MultiCategorical([2, 3])
    assert mc.is_in(torch.tensor([1, 2])) and not mc.is_in(torch.tensor([2, 0]))
    assert mc.project(torch.tensor([5, -1])).tolist() == [1, 0]
    moh = MultiOneHot([2, 3], dtype=torch.int64)
    assert moh.shape == (5,)
    assert moh.is_in(torch.tensor([0, 1, 0, 0, 1]))
    assert not moh.is_in(torch.tensor([1, 1, 0, 0, 1]))
    assert moh.to_categorical(torch.tensor([0, 1, 0, 0, 1])).tolist() == [1, 2]
    b = Binary(4)
    assert b.dtype == torch.int8 and not b.is_in(torch.tensor([0, 2, 0, 0], dtype=torch.int8))
    with pytest.raises(ValueError, match="positive int"):
        Categorical(0)


def test_composite_nested_keys_rand_is_in_project():
    spec = Composite(
        observation=Unbounded((3,)),
        nested={"action": Bounded(-1.0, 1.0, (2,))},
    )
    assert spec.keys() == ["observation", "nested"]
    assert spec.keys(True, True) == ["observation", ("nested", "action")]
    assert ("nested", "action") in spec and "missing" not in spec
    td = spec.rand((4,))
    assert td.batch_size == (4,) and td["nested", "action"].shape == (4, 2)
    assert spec.is_in(td)
    td["nested", "action"] = torch.full((4, 2), 3.0)
    assert not spec.is_in(td)
    spec.project(td)
    assert (td["nested", "action"] == 1.0).all()
    with pytest.raises(KeyError, match="missing"):
        spec["missing"]
    spec["a", "b"] = Categorical(2)
    assert spec["a", "b"] == Categorical(2)
    del spec["a", "b"]
    assert ("a", "b") not in spec
    assert spec.select("observation").keys() == ["observation"]
    assert "observation" not in spec.exclude("observation")


@pytest.mark.parametrize("leaf", [
    lambda: Bounded(-1.0, 1.0, (3, 5)),
    lambda: Bounded(torch.zeros(3, 5), torch.ones(3, 5)),
    lambda: OneHot(5, shape=(3, 5)),
    lambda: Categorical(4, shape=(3, 5)),
])
def test_projecting_a_value_of_another_shape_names_both_shapes(leaf):
    spec = leaf()
    # leading batch dims are allowed
    assert spec.project(spec.rand((7,)).to(torch.float32)).shape[-2:] == (3, 5)
    spec.project(torch.zeros(3, 5))
    for bad in (torch.zeros(3, 4), torch.zeros(2, 3, 4)):
        if isinstance(spec, Categorical):  # indices: projected as they are (clamped)
            assert spec.project(bad).shape == bad.shape  # EnvBase.step names the shapes
            continue
        with pytest.raises(ValueError, match=r"expected a value of shape \(3, 5\) \(after any "
                                             rf"batch dims\), found \({', '.join(map(str, bad.shape))}\)"):
            spec.project(bad)


def test_a_composite_names_the_entry_it_cannot_project():
    spec = Composite(agents={"action": Bounded(-1.0, 1.0, (3, 5))})
    td = TensorDict({"agents": {"action": torch.zeros(3, 4)}})
    with pytest.raises(ValueError, match=r"'agents': 'action': project: expected a value of "
                                         r"shape \(3, 5\).*found \(3, 4\)"):
        spec.project(td)
    assert td["agents", "action"].shape == (3, 4)  # left as it was


def test_composite_shape_rules_expand_index():
    spec = Composite(obs=Unbounded((4, 3)), shape=(4,))
    with pytest.raises(ValueError, match="does not start with"):
        spec["bad"] = Unbounded((3,))
    with pytest.raises(TypeError, match="TensorSpec or Composite"):
        spec["bad"] = 3
    big = spec.expand(2, 4)
    assert big.shape == (2, 4) and big["obs"].shape == (2, 4, 3)
    assert big[0] == spec
    assert spec[1:3].shape == (2,) and spec[1:3]["obs"].shape == (2, 3)
    assert spec.zero().batch_size == (4,)
    assert spec.clone() == spec and spec != big
    with pytest.raises(ValueError, match="cannot expand"):
        spec.expand(2, 5)


def test_legacy_names_are_the_new_classes():
    assert BoundedTensorSpec is Bounded and CompositeSpec is Composite
    assert DiscreteTensorSpec is Categorical and OneHotDiscreteTensorSpec is OneHot
    assert isinstance(UnboundedContinuousTensorSpec((1,)), Unbounded)
    assert UnboundedDiscreteTensorSpec((1,)).dtype == torch.int64


def test_repr_matches_seed_layout():
    spec = Bounded(-2.0, 2.0, (1,)).expand(4, 1)
    assert repr(spec) == (
        "BoundedContinuous(\n"
        "    shape=torch.Size([4, 1]),\n"
        "    space=ContinuousBox(\n"
        "        low=Tensor(shape=torch.Size([4, 1]), device=cpu, dtype=torch.float32, "
        "contiguous=True),\n"
        "        high=Tensor(shape=torch.Size([4, 1]), device=cpu, dtype=torch.float32, "
        "contiguous=True)),\n"
        "    device=cpu,\n"
        "    dtype=torch.float32,\n"
        "    domain=continuous)"
    )
    assert "obs: UnboundedContinuous(" in repr(Composite(obs=Unbounded((1,))))


def test_gym_space_conversion():
    box = spec_from_gym_space(gym.spaces.Box(-1.0, 2.0, (2,), np.float32))
    assert isinstance(box, Bounded) and box.shape == (2,)
    assert torch.equal(box.high, torch.full((2,), 2.0))
    inf = spec_from_gym_space(gym.spaces.Box(-np.inf, np.inf, (3,), np.float64))
    assert isinstance(inf, Unbounded) and inf.dtype == torch.float64
    # one-hot by default (TorchRL's default), indices on request
    oh = spec_from_gym_space(gym.spaces.Discrete(4))
    assert isinstance(oh, OneHot) and oh.shape == (4,)
    cat = spec_from_gym_space(gym.spaces.Discrete(4), categorical_action_encoding=True)
    assert isinstance(cat, Categorical)
    md = spec_from_gym_space(gym.spaces.MultiDiscrete([2, 5]), True)
    assert isinstance(md, MultiCategorical) and md.nvec.tolist() == [2, 5]
    assert isinstance(spec_from_gym_space(gym.spaces.MultiDiscrete([2, 5])), MultiOneHot)
    mb = spec_from_gym_space(gym.spaces.MultiBinary(3))
    assert isinstance(mb, Binary) and mb.shape == (3,)
    d = spec_from_gym_space(
        gym.spaces.Dict(
            pos=gym.spaces.Box(0, 1, (2,)), t=gym.spaces.Tuple([gym.spaces.Discrete(2)])
        )
    )
    assert isinstance(d, Composite) and d.keys(True, True) == ["pos", ("t", "0")]
    assert d.is_in(d.rand())
    with pytest.raises(TypeError, match="Text"):
        spec_from_gym_space(gym.spaces.Text(5))


def test_categorical_and_onehot_masks():
    torch.manual_seed(0)
    cat = Categorical(4, mask=torch.tensor([True, False, True, False]))
    vals = cat.rand((200,))
    assert set(vals.tolist()) == {0, 2}
    assert cat.is_in(torch.tensor(2)) and not cat.is_in(torch.tensor(1))
    assert cat.project(torch.tensor([1, 3, 2])).tolist() == [0, 0, 2]
    assert cat != Categorical(4)
    batched = cat.expand(3)
    assert batched.mask.shape == (3, 4) and batched[1] == cat
    per_env = Categorical(
        3, shape=(2,), mask=torch.tensor([[True, False, False], [False, True, True]])
    )
    draws = per_env.rand((100,))
    assert (draws[:, 0] == 0).all() and (draws[:, 1] > 0).all()
    cat.update_mask(None)
    assert cat.is_in(torch.tensor(1))
    oh = OneHot(3, mask=torch.tensor([False, True, True]))
    assert not oh.is_in(torch.tensor([True, False, False]))
    assert oh.is_in(torch.tensor([False, False, True]))
    assert oh.project(torch.tensor([5.0, 1.0, 2.0])).tolist() == [0, 0, 1]
    assert (oh.rand((50,))[:, 0] == 0).all()
    with pytest.raises(ValueError, match="at least one"):
        Categorical(2, mask=torch.tensor([False, False]))
    with pytest.raises(TypeError, match="bool"):
        Categorical(2, mask=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="broadcast"):
        Categorical(2, mask=torch.tensor([True, False, True]))


@pytest.mark.parametrize("rows", [1, 3, 40])  # 40 x 3 values: over the small-action path
@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.float32])
def test_one_hot_membership_is_the_same_for_few_and_many_values(rows, dtype):
    oh = OneHot(3, shape=(rows, 3), dtype=dtype)
    good = oh.rand()
    assert oh.is_in(good)
    bad = [good.clone() for _ in range(3)]
    bad[0][-1] = torch.ones(3, dtype=dtype)  # a row of ones
    bad[1][0] = torch.zeros(3, dtype=dtype)  # no one
    if dtype is torch.bool:
        bad = bad[:2]
    else:
        bad[2][0] = torch.tensor([2, -1, 0], dtype=dtype)  # sums to 1, not binary
    for value in bad:
        assert not oh.is_in(value)
    if dtype is torch.float32:
        half = good.clone()
        half[0] = torch.tensor([0.5, 0.5, 0.0])
        nan = good.clone()
        nan[0, 0] = float("nan")
        assert not oh.is_in(half) and not oh.is_in(nan)
