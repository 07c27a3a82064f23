"""Value normalisers and value transforms, by hand."""

import pytest
import torch

from streamrl.modules import (
    ComposeValueTransform,
    IdentityValueTransform,
    PercentileValueNorm,
    PopArtValueNorm,
    RunningValueNorm,
    SignedHyperbolicValueTransform,
    SymLogValueTransform,
    ValueNorm,
)


def test_popart_debiased_moments_by_hand():
    vn = PopArtValueNorm(beta=0.5, epsilon=1e-8)
    vn.update(torch.tensor([[1.0], [3.0]]))
    # m = 0.5 * 2, s = 0.5 * 5, d = 0.5 -> mean 2, mean square 5, variance 1
    torch.testing.assert_close(vn.location(), torch.tensor([2.0]))
    torch.testing.assert_close(vn.scale(), torch.tensor([1.0]))
    vn.update(torch.tensor([[5.0], [5.0]]))
    # m = 3, s = 13.75, d = 0.75 -> mean 4, variance 18.333 - 16
    torch.testing.assert_close(vn.location(), torch.tensor([4.0]))
    torch.testing.assert_close(vn.scale(), torch.tensor([(55 / 3 - 16) ** 0.5]))


def test_running_norm_matches_the_sample_statistics():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(50, 2, generator=g) * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, -2.0])
    vn = RunningValueNorm(shape=2, epsilon=1e-8)
    for chunk in data.split([7, 20, 1, 22]):
        vn.update(chunk)
    torch.testing.assert_close(vn.location(), data.mean(0))
    torch.testing.assert_close(vn.scale(), data.var(0, unbiased=False).sqrt())
    x = torch.randn(4, 2, generator=g)
    torch.testing.assert_close(vn.denormalize(vn.normalize(x)), x)


def test_percentile_norm_by_hand():
    returns = torch.linspace(0.0, 100.0, steps=101).unsqueeze(-1)
    vn = PercentileValueNorm(rate=0.5)
    vn.update(returns)  # quantiles 5 and 95, halfway from 0
    torch.testing.assert_close(vn.scale(), torch.tensor([45.0]))
    torch.testing.assert_close(vn.normalize(torch.tensor([9.0])), torch.tensor([0.2]))
    centred = PercentileValueNorm(rate=1.0, center=True)
    centred.update(returns)
    torch.testing.assert_close(centred.normalize(torch.tensor([50.0])), torch.tensor([0.5]))
    torch.testing.assert_close(centred.denormalize(torch.tensor([0.5])), torch.tensor([50.0]))
    small = PercentileValueNorm(rate=1.0, min_scale=2.0)
    small.update(torch.tensor([[0.0], [0.1]]))
    torch.testing.assert_close(small.scale(), torch.tensor([2.0]))  # never amplifies


def test_value_norm_state_dict_round_trip():
    vn = PopArtValueNorm(beta=0.9)
    vn.update(torch.randn(10, 1) * 4)
    other = PopArtValueNorm(beta=0.9)
    other.load_state_dict(vn.state_dict())
    torch.testing.assert_close(other.scale(), vn.scale())


@pytest.mark.parametrize("build, match", [
    (lambda: PopArtValueNorm(beta=1.0), "beta"),
    (lambda: PopArtValueNorm(epsilon=0.0), "epsilon"),
    (lambda: RunningValueNorm(shape=0), "shape"),
    (lambda: PercentileValueNorm(quantiles=(0.9, 0.1)), "quantiles"),
    (lambda: PercentileValueNorm(rate=1.5), "rate"),
    (lambda: PercentileValueNorm(min_scale=0.0), "min_scale"),
    (lambda: SignedHyperbolicValueTransform(epsilon=-1.0), "epsilon"),
    (lambda: ComposeValueTransform(), "at least one"),
])
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_shapes_and_types():
    with pytest.raises(ValueError, match=r"trailing shape \(2,\)"):
        PopArtValueNorm().update(torch.randn(3, 2))
    with pytest.raises(TypeError, match="tensor"):
        RunningValueNorm().normalize([1.0])
    with pytest.raises(TypeError, match="ValueTransform"):
        ComposeValueTransform(torch.nn.Identity())
    assert issubclass(PopArtValueNorm, ValueNorm)


def test_transforms_by_hand_and_inverse():
    x = torch.tensor([-1e4, -3.0, 0.0, 0.5, 8.0, 1e4])
    torch.testing.assert_close(IdentityValueTransform()(x), x)
    sh = SignedHyperbolicValueTransform(epsilon=1e-3)
    torch.testing.assert_close(sh(torch.tensor([8.0])), torch.tensor([2.0 + 8e-3]))  # sqrt(9)-1
    torch.testing.assert_close(sh.inverse(sh(x)), x, rtol=1e-5, atol=1e-4)
    sl = SymLogValueTransform()
    torch.testing.assert_close(sl(torch.tensor([-3.0])), -torch.tensor([4.0]).log())
    composed = ComposeValueTransform(sh, sl)
    torch.testing.assert_close(composed(x), sl(sh(x)))
    torch.testing.assert_close(composed.inverse(composed(x)), x, rtol=1e-4, atol=1e-3)
