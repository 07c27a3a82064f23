"""RunningMeanStd: Welford/Chan running statistics."""

from __future__ import annotations

import pytest
import torch

from streamrl.envs.transforms import RunningMeanStd


def test_hand_checked_merge_of_two_batches():
    rms = RunningMeanStd(epsilon=0.0)
    rms.update(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert rms.mean.item() == pytest.approx(2.5) and rms.var.item() == pytest.approx(1.25)
    rms.update(torch.tensor(5.0))  # one sample of the scalar shape
    # the stream 1..5: mean 3, population variance 2
    assert rms.mean.item() == pytest.approx(3.0) and rms.var.item() == pytest.approx(2.0)
    assert rms.count.item() == 5.0


def test_matches_the_whole_stream_and_epsilon_prior():
    torch.manual_seed(0)
    data = torch.randn(50, 3) * 4 + 7
    rms = RunningMeanStd(shape=(3,), epsilon=0.0)
    for chunk in data.split([1, 7, 20, 22]):
        rms.update(chunk)
    torch.testing.assert_close(rms.mean, data.mean(0))
    torch.testing.assert_close(rms.var, data.var(0, unbiased=False))
    prior = RunningMeanStd(epsilon=1.0)  # one pseudo-sample of mean 0, var 1
    prior.update(torch.tensor([2.0]))
    assert prior.mean.item() == pytest.approx(1.0) and prior.var.item() == pytest.approx(1.5)


def test_normalize_state_dict_and_batch_dims():
    rms = RunningMeanStd(shape=(2,), epsilon=0.0)
    rms.update(torch.tensor([[[0.0, 10.0]], [[2.0, 10.0]]]))  # two leading batch dims
    out = rms.normalize(torch.tensor([[2.0, 10.0]]))
    assert out[0, 0].item() == pytest.approx(1.0) and out[0, 1].item() == 0.0
    other = RunningMeanStd(shape=(2,))
    other.load_state_dict(rms.state_dict())
    assert torch.equal(other.mean, rms.mean) and set(rms.state_dict()) == {"mean", "var", "count"}
    before = rms.count.clone()
    rms.update(torch.zeros(0, 2))  # an empty batch changes nothing
    assert torch.equal(rms.count, before)


def test_bad_input():
    with pytest.raises(ValueError, match="tracked shape"):
        RunningMeanStd(shape=(2,)).update(torch.ones(3))
    with pytest.raises(ValueError, match="tracked shape"):
        RunningMeanStd(shape=(2,)).normalize(torch.ones(4, 3))
    with pytest.raises(ValueError, match="epsilon"):
        RunningMeanStd(epsilon=-1.0)
    with pytest.raises(TypeError, match="shape"):
        RunningMeanStd(shape="ab")
    with pytest.raises(TypeError, match="tensor"):
        RunningMeanStd().update([1.0])
