"""Sum and min trees against a naive reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrl.data import MinTree, SumTree


@pytest.mark.parametrize("capacity", [1, 2, 31, 32, 33, 1000, 1025, 40000])
@pytest.mark.parametrize("top_size", [1, 7, 4096])
def test_batch_updates_match_naive(capacity, top_size):
    rng = np.random.default_rng(capacity)
    tree = SumTree(capacity, branching=8, top_size=top_size)
    mtree = MinTree(capacity, branching=8, top_size=top_size)
    ref = np.zeros(capacity)
    mref = np.full(capacity, np.inf)
    for _ in range(20):
        idx = rng.integers(0, capacity, size=rng.integers(1, 300))
        val = rng.random(idx.size)
        tree.update(idx, val)
        mtree.update(idx, val)
        # last write wins on duplicates, as in numpy
        ref[idx] = val
        mref[idx] = val
        assert tree.total() == pytest.approx(ref.sum(), rel=1e-12)
        assert mtree.min() == mref.min()
    lo = int(rng.integers(0, capacity))
    hi = int(rng.integers(lo, capacity + 1))
    tree.update_range(lo, hi, 2.5)
    mtree.update_range(lo, hi, 2.5)
    ref[lo:hi] = 2.5
    mref[lo:hi] = 2.5
    assert tree.total() == pytest.approx(ref.sum(), rel=1e-12)
    assert mtree.min() == mref.min()
    np.testing.assert_array_equal(tree.leaves, ref)
    assert tree._verify() and mtree._verify()
    assert [tree[i] for i in range(capacity)] == list(tree)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 10), min_size=1, max_size=200),
    st.integers(2, 40),
    st.sampled_from([1, 3, 16]),
)
def test_find_prefix_matches_searchsorted(values, branching, top_size):
    values = np.asarray(values)
    tree = SumTree(len(values), branching=branching, top_size=top_size)
    tree.update(np.arange(len(values)), values)
    if tree.total() == 0:
        return
    cum = np.cumsum(values)
    mass = np.linspace(0, tree.total(), 57, endpoint=False)
    mass = mass[mass < cum[-1]]  # at or past the total: covered by the test below
    got = tree.find_prefix(mass)
    want = np.searchsorted(cum, mass, side="right")
    np.testing.assert_array_equal(got, want)
    assert (values[got] > 0).all()


def test_find_prefix_at_total_returns_last_positive_leaf():
    tree = SumTree(100)
    tree.update([3, 50, 70], [1.0, 2.0, 0.5])
    assert tree.find_prefix([tree.total(), tree.total() * 2]).tolist() == [70, 70]


def test_bad_arguments():
    with pytest.raises(ValueError, match="capacity"):
        SumTree(0)
    with pytest.raises(ValueError, match="branching"):
        SumTree(4, branching=1)
    tree = SumTree(4)
    with pytest.raises(IndexError, match="leaf index 4"):
        tree.update([4], [1.0])
    with pytest.raises(IndexError):
        tree.update_range(2, 5, 1.0)
    assert MinTree(3).min() == float("inf")
