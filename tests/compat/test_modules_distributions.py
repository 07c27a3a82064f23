"""Compatibility with TorchRL 0.14's ``torchrl.modules.distributions`` for the discrete
distributions: the names import from the same path under ``streamrl`` and the documented
constructor keywords and main methods work. The rest of the path is listed in
docs/torchrl_differences.md."""

import pytest
import torch
from torch import nn

from streamrl.modules.distributions import (
    MaskedCategorical,
    MaskedOneHotCategorical,
    NormalParamWrapper,
    OneHotCategorical,
    ReparamGradientStrategy,
)


def test_one_hot_categorical_documented_arguments():
    dist = OneHotCategorical(logits=torch.randn(4), probs=None,
                             grad_method=ReparamGradientStrategy.PassThrough)
    sample = dist.rsample((3,))
    assert sample.shape == (3, 4) and torch.equal(sample.detach().sum(-1), torch.ones(3))


def test_masked_categorical_documented_example():
    logits = torch.randn(4) / 100
    mask = torch.tensor([True, False, True, True])
    dist = MaskedCategorical(logits=logits, mask=mask)
    sample = dist.sample((10,))
    assert (sample != 1).all()
    assert torch.isinf(dist.log_prob(torch.ones_like(sample))).all()
    prob = torch.ones(10) / 10
    dist = MaskedCategorical(probs=prob, mask=torch.tensor([False] + 9 * [True]))
    lp = dist.log_prob(torch.arange(10))
    assert torch.isinf(lp[0]) and torch.allclose(lp[1:], torch.tensor(1 / 9).log())
    by_index = MaskedOneHotCategorical(logits=torch.zeros(4), indices=torch.tensor([1, 2]),
                                       neg_inf=float("-inf"))
    assert by_index.sample()[[0, 3]].sum() == 0


def test_normal_param_wrapper_points_to_the_extractor():
    with pytest.raises(RuntimeError, match="NormalParamExtractor"):
        NormalParamWrapper(nn.Linear(3, 4), scale_mapping="biased_softplus_1.0", scale_lb=1e-4)
