"""Ordinal / OneHotOrdinal and has_analytic_entropy / has_analytic_kl."""

import math

import pytest
import torch
import torch.distributions as D

from streamrl.modules import (
    IndependentNormal,
    MaskedCategorical,
    OneHotCategorical,
    OneHotOrdinal,
    Ordinal,
    TanhNormal,
)
from streamrl.modules.distributions import has_analytic_entropy, has_analytic_kl


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_ordinal_probabilities_hand_computed():
    s = [0.5, -1.0]
    # atom 0: sig(s0) * (1 - sig(s1)); atom 1: sig(s0) * sig(s1), normalised
    unnorm = torch.tensor([_sig(s[0]) * (1 - _sig(s[1])), _sig(s[0]) * _sig(s[1])])
    torch.testing.assert_close(Ordinal(torch.tensor(s)).probs, unnorm / unnorm.sum())


def test_ordinal_batch_shapes_log_prob_and_gradient():
    scores = torch.randn(2, 5, requires_grad=True)
    dist = Ordinal(scores)
    sample = dist.sample((3,))
    assert sample.shape == (3, 2) and sample.dtype == torch.long
    assert ((sample >= 0) & (sample < 5)).all()
    dist.log_prob(sample).sum().backward()
    assert scores.grad is not None
    assert dist.mode.shape == (2,)


def test_one_hot_ordinal_matches_ordinal():
    scores = torch.randn(4, 6)
    one_hot, index = OneHotOrdinal(scores), Ordinal(scores)
    assert isinstance(one_hot, OneHotCategorical)
    torch.testing.assert_close(one_hot.probs, index.probs)
    sample = one_hot.sample()
    assert sample.shape == (4, 6) and torch.equal(sample.sum(-1), torch.ones(4))
    torch.testing.assert_close(one_hot.log_prob(sample), index.log_prob(sample.argmax(-1)))
    assert one_hot.rsample().shape == (4, 6)


def test_ordinal_bad_scores():
    with pytest.raises(ValueError, match=r"\[\.\.\., N\]"):
        Ordinal(torch.tensor(1.0))
    with pytest.raises(ValueError, match="scores"):
        OneHotOrdinal([0.0, 1.0])


def test_has_analytic_entropy():
    loc, scale = torch.zeros(2), torch.ones(2)
    assert has_analytic_entropy(D.Normal(loc, scale))
    assert has_analytic_entropy(IndependentNormal(loc, scale))
    assert has_analytic_entropy(Ordinal(torch.zeros(3)))
    assert has_analytic_entropy(MaskedCategorical(logits=loc, mask=torch.tensor([True, False])))
    assert not has_analytic_entropy(TanhNormal(loc, scale))
    tanh = TanhNormal(torch.zeros(3, 2), torch.ones(3, 2))
    assert not has_analytic_entropy(D.Independent(tanh, len(tanh.batch_shape)))
    exp_normal = D.TransformedDistribution(D.Normal(loc, scale), [D.transforms.ExpTransform()])
    assert not has_analytic_entropy(exp_normal)
    with pytest.raises(TypeError, match="Distribution"):
        has_analytic_entropy("normal")


def test_has_analytic_kl():
    loc, scale = torch.zeros(2), torch.ones(2)
    normal = D.Normal(loc, scale)
    assert has_analytic_kl(normal, normal)
    assert has_analytic_kl(D.Independent(normal, 1), D.Independent(normal, 1))
    assert not has_analytic_kl(D.Independent(normal, 1), normal)
    assert not has_analytic_kl(normal, D.Categorical(logits=loc))
    assert has_analytic_kl(Ordinal(torch.zeros(3)), Ordinal(torch.ones(3)))  # Categorical pair
    exp_normal = D.TransformedDistribution(normal, [D.transforms.ExpTransform()])
    sig_normal = D.TransformedDistribution(normal, [D.transforms.SigmoidTransform()])
    assert has_analytic_kl(exp_normal, exp_normal)
    assert not has_analytic_kl(exp_normal, sig_normal)
    # what it says agrees with kl_divergence on these pairs
    for p, q in [(normal, normal), (exp_normal, exp_normal)]:
        D.kl_divergence(p, q)
    with pytest.raises(NotImplementedError):
        D.kl_divergence(exp_normal, sig_normal)
    with pytest.raises(TypeError, match="q must be"):
        has_analytic_kl(normal, 1.0)
