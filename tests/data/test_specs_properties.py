"""Property tests of the specs: for random shapes and bounds, samples are members, projection
lands inside and is idempotent, and expand/index agree with indexing the values."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrl.data import Bounded, Categorical, MultiCategorical, MultiOneHot, OneHot

shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)
leads = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@st.composite
def bounded(draw):
    shape = draw(shapes)
    lo = draw(st.floats(-100, 100, allow_nan=False))
    width = draw(st.floats(0, 50, allow_nan=False))
    integer = draw(st.booleans())
    dtype = torch.int64 if integer else torch.float32
    if integer:
        lo, width = int(lo), int(width)
    return Bounded(lo, lo + width, shape, dtype=dtype)


@st.composite
def discrete(draw):
    kind = draw(st.sampled_from(["cat", "onehot", "multicat", "multioh"]))
    if kind == "cat":
        return Categorical(draw(st.integers(1, 6)), shape=draw(shapes))
    if kind == "onehot":
        return OneHot(draw(st.integers(1, 6)))
    nvec = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    return MultiCategorical(nvec) if kind == "multicat" else MultiOneHot(nvec)


specs = st.one_of(bounded(), discrete())


@settings(max_examples=60, deadline=None)
@given(spec=specs, lead=leads, seed=st.integers(0, 2**16))
def test_samples_are_members_and_projection_is_idempotent(spec, lead, seed):
    torch.manual_seed(seed)
    val = spec.rand(lead)
    assert val.shape == (*lead, *spec.shape) and spec.is_in(val)
    noisy = val.double() * 3 - 1.5 if spec.domain == "continuous" else val * 2 - 1
    projected = spec.project(noisy)
    assert spec.is_in(projected)
    assert torch.equal(spec.project(projected), projected)


@settings(max_examples=40, deadline=None)
@given(spec=specs, n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_expand_then_index_gives_back_the_spec(spec, n, seed):
    big = spec.expand(n, *spec.shape)
    assert big.shape == (n, *spec.shape)
    torch.manual_seed(seed)
    val = big.rand()
    assert big.is_in(val)
    for i in range(n):
        assert big[i] == spec
        assert spec.is_in(val[i])
