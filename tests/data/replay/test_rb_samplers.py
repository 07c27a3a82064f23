"""Samplers: statistical acceptance tests and edge cases."""

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    PrioritizedSampler,
    RandomSampler,
    ReplayBuffer,
    SamplerWithoutReplacement,
    SliceSampler,
    TensorDictPrioritizedReplayBuffer,
)


def _storage(n, cap=None, **extra):
    s = LazyTensorStorage(cap or n)
    rb = ReplayBuffer(storage=s)
    td = TensorDict({"x": torch.arange(n), **extra}, [n])
    rb.extend(td)
    return rb


def test_prioritized_frequencies_match_p_alpha():
    n, alpha = 10, 0.7
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=alpha, beta=0.5, eps=0.0, storage=LazyTensorStorage(16)
    )
    rb.extend(TensorDict({"x": torch.arange(n)}, [n]))
    prio = torch.linspace(0.1, 3.0, n, dtype=torch.float64)
    rb.update_priority(torch.arange(n), prio)
    rb.sampler.manual_seed(0)
    draws = 200_000
    counts = torch.zeros(n)
    for _ in range(draws // 10_000):
        idx = rb.sample(10_000)["index"]
        counts += torch.bincount(idx, minlength=n)[:n]
    expected = prio**alpha / (prio**alpha).sum()
    freq = counts / draws
    # binomial std at most sqrt(0.25 / 2e5) ~ 0.0011: 5 sigma
    assert torch.allclose(freq.double(), expected, atol=0.0056)
    # chi-square goodness of fit, 9 dof: 99.9% quantile is 27.9
    chi2 = ((counts.double() - draws * expected) ** 2 / (draws * expected)).sum()
    assert chi2 < 27.9


def test_importance_weights_formula():
    n, alpha, beta = 8, 0.6, 0.4
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=alpha, beta=beta, eps=0.0, storage=LazyTensorStorage(32)
    )
    rb.extend(TensorDict({"x": torch.arange(n)}, [n]))
    prio = torch.tensor([0.5, 1.0, 2.0, 4.0, 0.25, 3.0, 1.5, 0.75], dtype=torch.float64)
    rb.update_priority(torch.arange(n), prio)
    s = rb.sample(512)
    p = prio**alpha
    P = p / p.sum()
    w_all = (n * P) ** (-beta)
    want = (w_all / w_all.max())[s["index"]]
    assert torch.allclose(s["_weight"].double(), want, rtol=1e-5)
    assert s["_weight"].dtype == torch.float32
    assert s["_weight"].max() <= 1.0 + 1e-6


def test_new_items_get_max_priority_and_unwritten_never_sampled():
    sampler = PrioritizedSampler(100, alpha=1.0, beta=1.0, eps=0.0)
    rb = ReplayBuffer(storage=LazyTensorStorage(100), sampler=sampler)
    rb.extend(torch.arange(5))
    rb.update_priority(torch.arange(5), torch.tensor([1.0, 2.0, 7.0, 3.0, 0.5]))
    rb.extend(torch.arange(2))
    assert sampler._sum_tree[5] == 7.0 and sampler._sum_tree[6] == 7.0
    idx = rb.sample(5000, return_info=True)[1]["index"]
    assert idx.max() < 7


def test_priority_bad_input():
    rb = TensorDictPrioritizedReplayBuffer(alpha=0.5, beta=0.5, storage=LazyTensorStorage(4))
    rb.extend(TensorDict({"x": torch.arange(3)}, [3]))
    with pytest.raises(ValueError, match="NaN"):
        rb.update_priority(0, float("nan"))
    with pytest.raises(ValueError, match=">= 0"):
        rb.update_priority(torch.tensor([0, 1]), torch.tensor([1.0, -1.0]))
    with pytest.raises(IndexError, match="index 4 out of range"):
        rb.update_priority(4, 1.0)
    with pytest.raises(IndexError):
        rb.update_priority(-1, 1.0)
    with pytest.raises(ValueError, match="one value per index"):
        rb.update_priority(torch.tensor([0, 1]), torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="alpha"):
        PrioritizedSampler(4, alpha=-1, beta=0)
    with pytest.raises(ValueError, match="max_capacity"):
        PrioritizedSampler(0, alpha=1, beta=0)
    # nothing changed by the failed calls
    assert list(rb.sampler._sum_tree)[:3] == [1.0, 1.0, 1.0]


def test_empty_buffer_errors():
    for sampler in (RandomSampler(), SamplerWithoutReplacement(), PrioritizedSampler(4, 1, 1)):
        rb = ReplayBuffer(storage=LazyTensorStorage(4), sampler=sampler)
        with pytest.raises(RuntimeError, match="empty"):
            rb.sample(2)
    rb = ReplayBuffer()
    rb.add(1)
    with pytest.raises(ValueError, match="batch_size"):
        rb.sample(0)
    with pytest.raises(ValueError, match="no batch_size"):
        rb.sample()


@pytest.mark.parametrize("drop_last", [False, True])
def test_without_replacement_visits_each_index_once_per_epoch(drop_last):
    n, b = 23, 5
    rb = ReplayBuffer(
        storage=LazyTensorStorage(32),
        sampler=SamplerWithoutReplacement(drop_last=drop_last),
        batch_size=b,
    )
    rb.extend(torch.arange(n))
    for _ in range(3):
        seen = torch.cat(list(rb))  # iteration stops at the end of the epoch
        if drop_last:
            assert seen.numel() == (n // b) * b
            assert seen.unique().numel() == seen.numel()
        else:
            assert sorted(seen.tolist()) == list(range(n))
    # sequential order without shuffle
    rb2 = ReplayBuffer(
        storage=LazyTensorStorage(8), sampler=SamplerWithoutReplacement(shuffle=False)
    )
    rb2.extend(torch.arange(5))
    assert rb2.sample(3).tolist() == [0, 1, 2]
    assert rb2.sample(3).tolist() == [3, 4]
    assert rb2.sampler.ran_out
    assert rb2.sample(3).tolist() == [0, 1, 2]
    rb3 = ReplayBuffer(
        storage=LazyTensorStorage(8), sampler=SamplerWithoutReplacement(drop_last=True),
        batch_size=3,
    )
    rb3.extend(torch.arange(2))
    with pytest.raises(ValueError, match="drop_last"):
        rb3.sample(3)


def _traj_buffer(lengths, cap, traj=True):
    rb = ReplayBuffer(storage=LazyTensorStorage(cap))
    ids, steps, dones = [], [], []
    for t, n in enumerate(lengths):
        ids += [t] * n
        steps += list(range(n))
        dones += [False] * (n - 1) + [True]
    total = len(ids)
    td = TensorDict(
        {
            "traj": torch.tensor(ids),
            "step": torch.tensor(steps),
            "next": {"done": torch.tensor(dones).unsqueeze(-1)},
        },
        [total],
    )
    rb.extend(td)
    return rb


@pytest.mark.parametrize("by", ["traj_key", "end_key"])
def test_slice_sampler_never_crosses_a_trajectory_end(by):
    lengths = [3, 10, 1, 7, 4, 12, 5, 2, 9]
    rb = _traj_buffer(lengths, cap=64)
    kwargs = {"traj_key": "traj"} if by == "traj_key" else {}
    sampler = SliceSampler(slice_len=4, **kwargs)
    rb._sampler = sampler
    starts = set()
    for _ in range(200):
        s = rb.sample(32).reshape(8, 4)
        assert (s["traj"] == s["traj"][:, :1]).all()
        assert (s["step"][:, 1:] - s["step"][:, :-1] == 1).all()
        starts.update(zip(s["traj"][:, 0].tolist(), s["step"][:, 0].tolist()))
    # every valid window start was drawn
    valid = {(t, k) for t, n in enumerate(lengths) for k in range(n - 4 + 1)}
    assert starts == valid


def test_slice_sampler_wrapped_storage_and_errors():
    # 40 steps into 32 slots: the write head splits old and new data
    rb = _traj_buffer([20, 20], cap=32)
    rb._sampler = SliceSampler(num_slices=4, traj_key="traj")
    for _ in range(50):
        s = rb.sample(20).reshape(4, 5)
        assert (s["traj"] == s["traj"][:, :1]).all()
        assert (s["step"][:, 1:] - s["step"][:, :-1] == 1).all()
    with pytest.raises(ValueError, match="multiple"):
        rb.sample(10 + 1)
    rb2 = _traj_buffer([2, 3], cap=8)
    rb2._sampler = SliceSampler(slice_len=4)
    with pytest.raises(RuntimeError, match=r"no trajectory.*longest: 3"):
        rb2.sample(8)
    with pytest.raises(ValueError, match="exactly one"):
        SliceSampler()
    with pytest.raises(TypeError, match="tensor storage"):
        r = ReplayBuffer(sampler=SliceSampler(slice_len=2))
        r.extend([1, 2, 3])
        r.sample(2)


def test_random_sampler_uniform_and_seeded():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), sampler=RandomSampler(seed=3))
    rb.extend(torch.arange(10))
    a = rb.sample(50_000)
    freq = torch.bincount(a, minlength=10).double() / a.numel()
    assert torch.allclose(freq, torch.full((10,), 0.1, dtype=torch.float64), atol=0.01)
    rb.sampler.manual_seed(7)
    x = rb.sample(20)
    rb.sampler.manual_seed(7)
    assert torch.equal(x, rb.sample(20))
    np.testing.assert_array_equal(x.numpy(), x.numpy())


@pytest.mark.parametrize("reduction,expected", [("max", 3.0), ("min", 1.0), ("mean", 2.0),
                                                ("median", 2.0), ("sum", 6.0)])
def test_prioritized_sampler_reduces_several_priorities_per_index(reduction, expected):
    from streamrl.data import PrioritizedSampler

    s = PrioritizedSampler(4, alpha=1.0, beta=1.0, eps=0.0, reduction=reduction)
    s.update_priority(torch.tensor([0, 1]), torch.tensor([[1.0, 3.0, 2.0], [0.5, 0.5, 0.5]]))
    leaves = s.state_dict()["leaves"]
    assert leaves[0].item() == pytest.approx(expected)
    assert leaves[1].item() == pytest.approx({"sum": 1.5}.get(reduction, 0.5))
    with pytest.raises(ValueError, match="reduction must be one of"):
        PrioritizedSampler(4, alpha=1.0, beta=1.0, reduction="mode")


def test_tensordict_buffer_median_reduction():
    from tensordict import TensorDict

    from streamrl.data import PrioritizedSampler, TensorDictReplayBuffer

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(4), reduction="median",
                                sampler=PrioritizedSampler(4, alpha=1.0, beta=1.0, eps=0.0))
    rb.extend(TensorDict({"x": torch.zeros(2, 3),
                          "td_error": torch.tensor([[1.0, 5.0, 2.0], [3.0, 3.0, 9.0]])}, [2]))
    assert rb.sampler.state_dict()["leaves"][:2].tolist() == [2.0, 3.0]
