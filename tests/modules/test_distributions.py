"""Distributions: log-probs against torch references, bounds, point values, masks."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import ProbabilisticTensorDictModule
from torch import distributions as D

from streamrl.modules import (
    Categorical,
    Delta,
    ExplorationType,
    IndependentNormal,
    MaskedCategorical,
    MaskedOneHotCategorical,
    NormalParamExtractor,
    OneHotCategorical,
    ReparamGradientStrategy,
    TanhDelta,
    TanhNormal,
    TruncatedNormal,
    set_exploration_type,
)
from streamrl.modules.distributions import biased_softplus, scale_mapping


def _tanh_reference(loc, scale, low, high):
    transforms = [D.TanhTransform()]
    if not (low == -1 and high == 1):
        transforms.append(D.AffineTransform((high + low) / 2, (high - low) / 2))
    return D.Independent(D.TransformedDistribution(D.Normal(loc, scale), transforms), 1)


class TestTanhNormal:
    @pytest.mark.parametrize("bounds", [(-1.0, 1.0), (-3.0, 0.5)])
    def test_log_prob_matches_torch(self, bounds):
        torch.manual_seed(0)
        low, high = bounds
        loc = torch.randn(5, 3, dtype=torch.float64)
        scale = torch.rand(5, 3, dtype=torch.float64) + 0.2
        dist = TanhNormal(loc, scale, low=low, high=high)
        ref = _tanh_reference(loc, scale, low, high)
        value = ref.sample()
        torch.testing.assert_close(dist.log_prob(value), ref.log_prob(value))
        sample, lp = dist.rsample_and_log_prob()
        torch.testing.assert_close(lp, ref.log_prob(sample), rtol=1e-6, atol=1e-6)
        assert (sample > low).all() and (sample < high).all()

    @pytest.mark.parametrize("bounds,event_dims,shape", [
        ((-1.0, 1.0), 1, (4, 3)),
        ((torch.zeros(3), torch.full((3,), 2.0)), 1, (4, 3)),
        ((-2.0, 2.0), 2, (5, 4, 3)),
        ((-1.0, 1.0), 0, (4,)),
    ])
    def test_rsample_and_log_prob_is_the_distribution_stack_s(self, bounds, event_dims, shape):
        # the fused draw-and-score equals Normal.rsample squashed, scored by the Gaussian's
        # log_prob minus the tanh's log-det, with the same gradients
        low, high = bounds
        loc = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        scale = (torch.rand(shape, dtype=torch.float64) + 0.1).requires_grad_()
        dist = TanhNormal(loc, scale, low=low, high=high, event_dims=event_dims)
        torch.manual_seed(1)
        value, lp = dist.rsample_and_log_prob((2,))
        torch.manual_seed(1)
        pre = dist.base.rsample((2,))
        ref = dist.base.log_prob(pre) - dist._log_det(pre)
        assert torch.equal(value, dist._squash(pre)) and lp.shape == ref.shape
        torch.testing.assert_close(lp, ref)
        grads = torch.autograd.grad(lp.sum() + 3 * value.sum(), (loc, scale))
        refs = torch.autograd.grad(ref.sum() + 3 * dist._squash(pre).sum(), (loc, scale))
        for got, want in zip(grads, refs, strict=True):
            torch.testing.assert_close(got, want)

    def test_tensor_bounds_and_event_dims(self):
        low, high = torch.tensor([0.0, -2.0]), torch.tensor([1.0, 2.0])
        dist = TanhNormal(torch.zeros(4, 2), torch.ones(4, 2), low=low, high=high)
        value = dist.sample((1000,))
        assert ((value >= low) & (value <= high)).all()
        assert dist.log_prob(value).shape == (1000, 4)
        dist0 = TanhNormal(torch.zeros(4, 2), torch.ones(4, 2), event_dims=0)
        assert dist0.log_prob(torch.zeros(4, 2)).shape == (4, 2)
        assert dist0.batch_shape == (4, 2) and dist.event_shape == (2,)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_no_nan_or_inf_at_bounds(self, dtype):
        low, high = -2.0, 3.0
        loc = torch.tensor([[0.0, 5.0, -5.0]], dtype=dtype, requires_grad=True)
        scale = torch.tensor([[1.0, 0.1, 2.0]], dtype=dtype, requires_grad=True)
        dist = TanhNormal(loc, scale, low=low, high=high)
        for value in (low, high):
            lp = dist.log_prob(torch.full((1, 3), value, dtype=dtype))
            assert torch.isfinite(lp).all()
            lp.sum().backward()
            assert torch.isfinite(loc.grad).all() and torch.isfinite(scale.grad).all()
        # saturated draws (huge loc) are scored from their pre-tanh value
        far = TanhNormal(torch.full((2, 3), 50.0, dtype=dtype), torch.ones(2, 3, dtype=dtype))
        sample, lp = far.rsample_and_log_prob()
        assert torch.isfinite(sample).all() and torch.isfinite(lp).all()
        assert torch.isfinite(far.log_prob(sample)).all()

    def test_gradient_through_safe_tanh(self):
        from streamrl.modules.distributions._squash import safe_atanh, safe_tanh

        loc = torch.zeros(2, 2, requires_grad=True)
        TanhNormal(loc, torch.ones(2, 2)).rsample().sum().backward()
        assert torch.isfinite(loc.grad).all() and (loc.grad > 0).all()
        # the gradient is 1 - y**2 of the clamped output: saturated values keep a small one
        x = torch.tensor([0.0, 0.5, -1.0, 30.0, -30.0, float("inf")], requires_grad=True)
        y = safe_tanh(x)
        assert (y.abs() < 1).all() and torch.equal(y.detach()[:3], torch.tanh(x.detach()[:3]))
        y.sum().backward()
        torch.testing.assert_close(x.grad, 1 - y.detach().pow(2))
        assert (x.grad[3:] > 0).all()
        assert type(y.grad_fn).__name__ == "_SafeTanhBackward"  # the name the tutorial prints
        # inside functorch transforms the same values and gradients come from plain ops
        finite = x.detach()[:5]
        torch.testing.assert_close(torch.func.grad(lambda v: safe_tanh(v).sum())(finite),
                                   x.grad[:5])
        # atanh of a value clamped inside (-1, 1): gradient 1 / (1 - x**2) of the clamped x
        u = torch.tensor([0.0, 0.5, 1.0, -1.0], requires_grad=True)
        z = safe_atanh(u)
        assert torch.isfinite(z).all()
        z.sum().backward()
        clamped = u.detach().clamp(-1 + 1e-6, 1 - 1e-6)
        torch.testing.assert_close(u.grad, 1 / (1 - clamped.pow(2)), rtol=1e-3, atol=0)
        torch.testing.assert_close(torch.func.grad(lambda v: safe_atanh(v).sum())(u.detach()),
                                   u.grad)
        # under vmap (an ensemble of actors) and without gradient
        torch.testing.assert_close(torch.vmap(safe_tanh)(torch.ones(3, 2)), torch.tanh(torch.ones(3, 2)))
        with torch.no_grad():
            assert safe_tanh(x).grad_fn is None

    def test_point_values(self):
        loc = torch.tensor([[0.3, -2.0]], dtype=torch.float64)
        scale = torch.tensor([[0.5, 1.5]], dtype=torch.float64)
        dist = TanhNormal(loc, scale, low=-2.0, high=2.0)
        expected_mode = 2 * torch.tanh(loc)
        torch.testing.assert_close(dist.mode, expected_mode)
        torch.testing.assert_close(dist.deterministic_sample, expected_mode)
        torch.testing.assert_close(dist.median, expected_mode)
        torch.manual_seed(0)
        mc = dist.sample((400_000,)).mean(0)
        torch.testing.assert_close(dist.mean, mc, atol=5e-3, rtol=0)
        with pytest.raises(NotImplementedError, match="entropy"):
            dist.entropy()

    def test_tanh_loc_and_bad_bounds(self):
        dist = TanhNormal(torch.full((1, 1), 100.0), torch.ones(1, 1), tanh_loc=True, upscale=5.0)
        assert dist.loc.item() == pytest.approx(5.0 * math.tanh(20.0))
        with pytest.raises(ValueError, match="low < high"):
            TanhNormal(torch.zeros(1, 2), torch.ones(1, 2), low=1.0, high=-1.0)
        with pytest.raises(ValueError, match="event_dims"):
            TanhNormal(torch.zeros(2), torch.ones(2), event_dims=3)

    def test_bound_tensors_are_checked_again_after_an_in_place_change(self):
        low, high = torch.tensor([-2.0]), torch.tensor([2.0])
        first = TanhNormal(torch.zeros(3, 1), torch.ones(3, 1), low=low, high=high)
        again = TanhNormal(torch.zeros(3, 1), torch.ones(3, 1), low=low, high=high)
        assert not first._unit and again.low is first.low  # checked once, then reused
        low.fill_(-1.0)
        high.fill_(1.0)
        assert TanhNormal(torch.zeros(3, 1), torch.ones(3, 1), low=low, high=high)._unit
        low.fill_(5.0)
        with pytest.raises(ValueError, match="low < high"):
            TanhNormal(torch.zeros(3, 1), torch.ones(3, 1), low=low, high=high)


def test_independent_normal_matches_torch():
    loc, scale = torch.randn(4, 3), torch.rand(4, 3) + 0.1
    dist = IndependentNormal(loc, scale)
    ref = D.Independent(D.Normal(loc, scale), 1)
    value = ref.sample()
    torch.testing.assert_close(dist.log_prob(value), ref.log_prob(value))
    torch.testing.assert_close(dist.entropy(), ref.entropy())
    for point in (dist.mode, dist.mean, dist.deterministic_sample, dist.median):
        torch.testing.assert_close(point, loc)
    assert dist.rsample().requires_grad is False


class TestTruncatedNormal:
    def test_log_prob_matches_renormalised_normal(self):
        loc = torch.tensor([[0.2, -0.5]], dtype=torch.float64)
        scale = torch.tensor([[0.7, 1.3]], dtype=torch.float64)
        dist = TruncatedNormal(loc, scale, low=-1.0, high=1.0)
        value = torch.tensor([[0.5, -0.9]], dtype=torch.float64)
        normal = D.Normal(loc, scale)
        mass = normal.cdf(torch.tensor(1.0)) - normal.cdf(torch.tensor(-1.0))
        ref = (normal.log_prob(value) - mass.log()).sum(-1)
        torch.testing.assert_close(dist.log_prob(value), ref)

    def test_bounds_and_point_values(self):
        loc = torch.tensor([[3.0, 0.2, -4.0]])
        dist = TruncatedNormal(loc, torch.ones(1, 3), low=-1.0, high=1.0)
        samples = dist.sample((2000,))
        assert ((samples >= -1) & (samples <= 1)).all()
        torch.testing.assert_close(dist.mode, torch.tensor([[1.0, 0.2, -1.0]]))
        torch.testing.assert_close(dist.deterministic_sample, dist.mode)
        assert torch.isfinite(dist.log_prob(torch.tensor([[1.0, -1.0, -1.0]]))).all()
        torch.testing.assert_close(dist.mean, samples.mean(0), atol=0.05, rtol=0)
        with pytest.raises(ValueError, match="low < high"):
            TruncatedNormal(torch.zeros(1, 1), torch.ones(1, 1), low=2.0, high=1.0)


class TestDiscrete:
    def test_categorical(self):
        logits = torch.randn(5, 4)
        dist = Categorical(logits=logits)
        ref = D.Categorical(logits=logits)
        value = ref.sample()
        torch.testing.assert_close(dist.log_prob(value), ref.log_prob(value))
        assert torch.equal(dist.mode, logits.argmax(-1))
        assert torch.equal(dist.deterministic_sample, logits.argmax(-1))
        torch.testing.assert_close(dist.mean, (ref.probs * torch.arange(4.0)).sum(-1))
        with pytest.raises(ValueError, match="exactly one"):
            Categorical()

    def test_one_hot(self):
        probs = torch.tensor([[0.1, 0.7, 0.2]])
        dist = OneHotCategorical(probs=probs)
        ref = D.OneHotCategorical(probs=probs)
        value = torch.tensor([[0.0, 0.0, 1.0]])
        torch.testing.assert_close(dist.log_prob(value), ref.log_prob(value))
        assert torch.equal(dist.mode, torch.tensor([[0.0, 1.0, 0.0]]))
        assert torch.equal(dist.deterministic_sample, dist.mode)
        torch.testing.assert_close(dist.mean, probs)

    @pytest.mark.parametrize("cls", [MaskedCategorical, MaskedOneHotCategorical])
    def test_masked_never_samples_masked(self, cls):
        torch.manual_seed(0)
        logits = torch.tensor([[5.0, 0.0, 0.0, 9.0], [0.0, 0.0, 0.0, 0.0]])
        mask = torch.tensor([[False, True, True, False], [True, False, False, False]])
        dist = cls(logits=logits, mask=mask)
        samples = dist.sample((2000,))
        index = samples.argmax(-1) if cls is MaskedOneHotCategorical else samples
        assert mask.gather(-1, index.T).all()
        mode = dist.mode.argmax(-1) if cls is MaskedOneHotCategorical else dist.mode
        assert mode.tolist() == [1, 0]
        ref = D.Categorical(logits=torch.tensor([[0.0, 0.0], [0.0, -1e9]]))
        torch.testing.assert_close(dist.entropy(), ref.entropy())
        assert torch.isfinite(dist.entropy()).all()

    def test_masked_log_prob(self):
        logits = torch.tensor([1.0, 2.0, 3.0])
        mask = torch.tensor([True, False, True])
        dist = MaskedCategorical(logits=logits, mask=mask)
        ref = D.Categorical(logits=torch.tensor([1.0, 3.0]))
        torch.testing.assert_close(dist.log_prob(torch.tensor(2)), ref.log_prob(torch.tensor(1)))
        assert dist.log_prob(torch.tensor(1)).item() == -math.inf
        # probs input, mask broadcast over the batch
        dist = MaskedCategorical(probs=torch.full((3, 3), 1 / 3), mask=mask)
        torch.testing.assert_close(dist.probs, torch.tensor([[0.5, 0.0, 0.5]] * 3))

    def test_masked_bad_input(self):
        with pytest.raises(ValueError, match="allows no action"):
            MaskedCategorical(logits=torch.zeros(2, 2), mask=torch.tensor([[True, False], [False, False]]))
        with pytest.raises(ValueError, match=r"mask shape \(3,\).*logits shape \(2, 2\)"):
            MaskedCategorical(logits=torch.zeros(2, 2), mask=torch.ones(3, dtype=torch.bool))
        with pytest.raises(TypeError, match="bool"):
            MaskedCategorical(logits=torch.zeros(2), mask=torch.ones(2))


def test_delta_and_tanh_delta():
    param = torch.tensor([[0.5, -0.5]], requires_grad=True)
    dist = Delta(param)
    sample = dist.rsample()
    sample.sum().backward()
    assert torch.equal(param.grad, torch.ones(1, 2))
    assert dist.log_prob(param.detach()).tolist() == [0.0]
    assert dist.log_prob(torch.tensor([[0.5, 0.0]])).tolist() == [-math.inf]
    for point in (dist.mode, dist.mean, dist.deterministic_sample):
        assert torch.equal(point, param)
    assert dist.rsample((3,)).shape == (3, 1, 2)
    td = TanhDelta(torch.tensor([[-100.0, 0.0, 100.0]]), low=0.0, high=4.0)
    assert td.mode[0, 1].item() == pytest.approx(2.0)
    assert ((td.mode >= 0) & (td.mode <= 4)).all() and torch.isfinite(td.mode).all()


def test_normal_param_extractor_and_mappings():
    loc, scale = NormalParamExtractor()(torch.tensor([[1.0, -2.0, 0.0, -50.0]]))
    assert loc.tolist() == [[1.0, -2.0]]
    assert scale[0, 0].item() == pytest.approx(1.0)
    assert scale[0, 1].item() == pytest.approx(1e-4)  # clamped at scale_lb
    _, scale = NormalParamExtractor("exp", scale_lb=0.0)(torch.zeros(2), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(scale, torch.tensor([1.0, math.e]))
    assert biased_softplus(3.0)(torch.zeros(1)).item() == pytest.approx(3.0)
    assert biased_softplus(2.0, 0.5)(torch.tensor([-100.0])).item() == pytest.approx(0.5)
    assert (scale_mapping("expln")(torch.linspace(-5, 5, 11)) > 0).all()
    with pytest.raises(ValueError, match="odd last dim"):
        NormalParamExtractor()(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="unknown scale mapping"):
        NormalParamExtractor("cube")


_PARAMS = {
    "tanh_normal": (TanhNormal, {"loc": torch.randn(3, 2), "scale": torch.rand(3, 2) + 0.1}),
    "normal": (IndependentNormal, {"loc": torch.randn(3, 2), "scale": torch.rand(3, 2) + 0.1}),
    "truncated": (TruncatedNormal, {"loc": torch.randn(3, 2), "scale": torch.rand(3, 2) + 0.1}),
    "categorical": (Categorical, {"logits": torch.randn(3, 4)}),
    "one_hot": (OneHotCategorical, {"logits": torch.randn(3, 4)}),
    "masked": (MaskedCategorical, {"logits": torch.randn(3, 4),
                                   "mask": torch.tensor([[True, False, True, True]] * 3)}),
    "delta": (Delta, {"param": torch.randn(3, 2)}),
    "tanh_delta": (TanhDelta, {"param": torch.randn(3, 2)}),
}


@pytest.mark.parametrize("name", sorted(_PARAMS))
@pytest.mark.parametrize(
    "kind", [ExplorationType.MODE, ExplorationType.MEAN, ExplorationType.DETERMINISTIC]
)
def test_every_distribution_has_deterministic_values(name, kind):
    """tensordict's module reads mode / mean / deterministic_sample: each must be defined,
    repeatable, finite and in the support."""
    cls, params = _PARAMS[name]
    module = ProbabilisticTensorDictModule(
        in_keys=list(params), out_keys=["action"], distribution_class=cls
    )
    td = TensorDict(params, [3])
    with set_exploration_type(kind):
        first = module(td.clone())["action"]
        second = module(td.clone())["action"]
    assert torch.equal(first, second)
    assert torch.isfinite(first.float()).all()
    dist = module.get_dist(td)
    if kind is not ExplorationType.MEAN or name not in ("categorical", "one_hot", "masked"):
        # discrete means are averages, not actions; everything else must be a valid value
        assert torch.isfinite(dist.log_prob(first)).all(), f"{name} {kind} out of support"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(loc=_floats, log_scale=st.floats(-6, 4, width=32), unit=st.floats(0.0, 1.0, width=32),
       low=st.floats(-5, 0, width=32), width=st.floats(0.125, 10, width=32))
def test_tanh_normal_log_prob_always_finite(loc, log_scale, unit, low, width):
    """Any value in [low, high] (bounds included) gets a finite log-prob and gradient."""
    high = low + width
    loc_t = torch.tensor([[loc]], requires_grad=True)
    scale_t = torch.tensor([[math.exp(log_scale)]], requires_grad=True)
    dist = TanhNormal(loc_t, scale_t, low=low, high=high)
    value = torch.tensor([[low + unit * width]]).clamp(low, high)
    lp = dist.log_prob(value)
    assert torch.isfinite(lp).all()
    lp.sum().backward()
    assert torch.isfinite(loc_t.grad).all() and torch.isfinite(scale_t.grad).all()
    sample, lp = dist.rsample_and_log_prob()
    assert torch.isfinite(lp).all() and (sample >= low).all() and (sample <= high).all()


@pytest.mark.parametrize("mapping", ["exp", "softplus", "biased_softplus_1.0", "none"])
def test_state_independent_scale(mapping):
    from streamrl.modules import AddStateIndependentNormalScale

    module = AddStateIndependentNormalScale((3,), scale_mapping=mapping, init_scale=0.7)
    loc = torch.randn(5, 3, requires_grad=True)
    out_loc, scale = module(loc)
    assert out_loc is loc
    torch.testing.assert_close(scale, torch.full((5, 3), 0.7))
    IndependentNormal(out_loc, scale).log_prob(torch.zeros(5, 3)).sum().backward()
    assert module.scale.grad is not None and module.scale.grad.shape == (3,)
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(3,\)"):
        module(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="init_scale"):
        AddStateIndependentNormalScale(3, init_scale=0.0)


class TestMaskedCategoricalTorchRLKeywords:
    def test_indices_equal_the_dense_mask(self):
        logits = torch.randn(2, 5)
        indices = torch.tensor([[0, 3], [1, 4]])
        mask = torch.zeros(2, 5, dtype=torch.bool).scatter(-1, indices, True)
        for cls in (MaskedCategorical, MaskedOneHotCategorical):
            by_index = cls(logits=logits, indices=indices)
            by_mask = cls(logits=logits, mask=mask)
            torch.testing.assert_close(by_index.probs, by_mask.probs)
            assert torch.equal(by_index.mask, mask)
        samples = MaskedCategorical(logits=logits, indices=indices).sample((50,))
        assert set(samples[:, 0].tolist()) <= {0, 3} and set(samples[:, 1].tolist()) <= {1, 4}

    def test_neg_inf_keeps_log_prob_finite(self):
        mask = torch.tensor([True, False, True])
        dist = MaskedCategorical(logits=torch.zeros(3, requires_grad=True), mask=mask,
                                 neg_inf=-1e9)
        lp = dist.log_prob(torch.tensor(1))
        assert torch.isfinite(lp) and lp < -1e8
        torch.testing.assert_close(dist.probs, torch.tensor([0.5, 0.0, 0.5]))

    def test_bad_indices(self):
        with pytest.raises(ValueError, match="not both"):
            MaskedCategorical(logits=torch.zeros(3), mask=torch.ones(3, dtype=torch.bool),
                              indices=torch.tensor([0]))
        with pytest.raises(ValueError, match=r"\[0, 3\)"):
            MaskedCategorical(logits=torch.zeros(3), indices=torch.tensor([3]))
        with pytest.raises(TypeError, match="integer"):
            MaskedCategorical(logits=torch.zeros(3), indices=torch.tensor([0.0]))


class TestOneHotRsample:
    @pytest.mark.parametrize("method", list(ReparamGradientStrategy))
    def test_one_hot_values_with_gradients(self, method):
        logits = torch.randn(5, 4, requires_grad=True)
        dist = OneHotCategorical(logits=logits, grad_method=method)
        sample = dist.rsample((3,))
        assert sample.shape == (3, 5, 4)
        assert torch.equal(sample.sum(-1), torch.ones(3, 5))
        assert set(sample.detach().unique().tolist()) <= {0.0, 1.0}
        (sample * torch.randn(4)).sum().backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0

    def test_bad_grad_method(self):
        with pytest.raises(TypeError, match="ReparamGradientStrategy"):
            OneHotCategorical(logits=torch.zeros(3), grad_method="pass")


@pytest.mark.parametrize("param", ["logits", "probs"])
@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
def test_categoricals_match_torch(param, shape):
    # our Categorical / OneHotCategorical build themselves without torch's checks and
    # normalise logits with log_softmax: the same values and gradients as torch's
    torch.manual_seed(0)
    raw = torch.randn(shape)
    if param == "probs":
        raw = raw.softmax(-1) * 3  # unnormalised on purpose
    ours_leaf, ref_leaf = raw.clone().requires_grad_(), raw.clone().requires_grad_()
    idx = torch.randint(0, shape[-1], shape[:-1])
    for ours_cls, ref_cls, value in ((Categorical, D.Categorical, idx),
                                     (OneHotCategorical, D.OneHotCategorical,
                                      torch.nn.functional.one_hot(idx, shape[-1]).float())):
        ours, ref = ours_cls(**{param: ours_leaf}), ref_cls(**{param: ref_leaf})
        assert ours.batch_shape == ref.batch_shape and ours.event_shape == ref.event_shape
        for name in ("logits", "probs"):
            torch.testing.assert_close(getattr(ours, name), getattr(ref, name))
        lp_ours, lp_ref = ours.log_prob(value), ref.log_prob(value)
        torch.testing.assert_close(lp_ours, lp_ref)
        torch.testing.assert_close(ours.entropy(), ref.entropy())
        (g_ours,) = torch.autograd.grad((lp_ours + ours.entropy()).sum(), ours_leaf)
        (g_ref,) = torch.autograd.grad((lp_ref + ref.entropy()).sum(), ref_leaf)
        torch.testing.assert_close(g_ours, g_ref)


def test_categoricals_refuse_a_scalar_parameter():
    for cls in (Categorical, OneHotCategorical):
        with pytest.raises(ValueError, match=r"logits must be at least one-dimensional, found "
                                             r"shape \(\)"):
            cls(logits=torch.tensor(1.0))
        with pytest.raises(ValueError, match="probs must be at least one-dimensional"):
            cls(probs=torch.tensor(1.0))
