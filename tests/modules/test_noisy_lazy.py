"""NoisyLazyLinear and NoisyLinear's TorchRL argument order."""

from __future__ import annotations

import torch
from torch import nn

from streamrl.modules import NoisyLazyLinear, NoisyLinear, reset_noise


def test_materializes_on_first_call_into_a_noisy_linear():
    layer = NoisyLazyLinear(3, bias=True, std_init=0.2)
    assert layer.has_uninitialized_params()
    out = layer(torch.randn(4, 6))
    assert out.shape == (4, 3)
    assert type(layer) is NoisyLinear and layer.in_features == 6
    assert layer.weight_mu.shape == layer.weight_epsilon.shape == (3, 6)
    torch.testing.assert_close(layer.weight_sigma, torch.full((3, 6), 0.2 / 6**0.5))
    assert layer.weight_epsilon.abs().sum() > 0  # noise drawn at materialization
    before = layer.weight_epsilon.clone()
    reset_noise(layer)
    assert not torch.equal(before, layer.weight_epsilon)
    layer.eval()
    torch.testing.assert_close(layer(torch.ones(1, 6)),
                               torch.ones(1, 6) @ layer.weight_mu.T + layer.bias_mu)


def test_no_bias_and_reset_noise_before_materialization():
    layer = NoisyLazyLinear(2, bias=False)
    reset_noise(nn.Sequential(layer))  # nothing to draw yet: no error
    assert layer(torch.randn(5, 4)).shape == (5, 2) and layer.bias is None


def test_noisy_linear_torchrl_argument_order():
    layer = NoisyLinear(3, 2, True, "cpu", torch.float64, 0.1)
    assert layer.weight_mu.dtype == torch.float64 and layer.std_init == 0.1
