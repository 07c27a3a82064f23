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


def test_ordinal_documented_arguments():
    from streamrl.modules import OneHotOrdinal as TopOneHotOrdinal
    from streamrl.modules import Ordinal as TopOrdinal
    from streamrl.modules.distributions import OneHotOrdinal, Ordinal

    assert TopOrdinal is Ordinal and TopOneHotOrdinal is OneHotOrdinal
    logits = torch.ones(5, requires_grad=True)
    sampler = Ordinal(scores=logits)
    samples = sampler.sample((20,))
    loss = torch.mean((samples - 2.0) ** 2 * sampler.log_prob(samples))
    loss.backward()
    assert logits.grad is not None and samples.shape == (20,)
    assert OneHotOrdinal(scores=torch.randn(3, 5)).sample().shape == (3, 5)


def test_has_analytic_helpers_documented_examples():
    from torch import distributions as d

    from streamrl.modules.distributions import has_analytic_entropy, has_analytic_kl
    from streamrl.modules.distributions.utils import has_analytic_entropy as by_path

    assert by_path is has_analytic_entropy
    assert has_analytic_entropy(d.Normal(torch.zeros(2), torch.ones(2)))
    assert has_analytic_entropy(d.Independent(d.Normal(torch.zeros(2), torch.ones(2)), 1))
    loc, scale = torch.zeros(2), torch.ones(2)
    assert has_analytic_kl(d.Normal(loc, scale), d.Normal(loc, scale))
