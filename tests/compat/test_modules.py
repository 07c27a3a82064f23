"""Compatibility with TorchRL 0.14's top-level ``torchrl.modules`` names that live nowhere
deeper: the value normalisers and value transforms, imported from ``streamrl.modules``,
built with the documented arguments and run on the documented examples."""

import inspect

import pytest
import torch

import streamrl.modules as modules

NORMS = ["PercentileValueNorm", "PopArtValueNorm", "RunningValueNorm", "ValueNorm"]
TRANSFORMS = ["ComposeValueTransform", "IdentityValueTransform",
              "SignedHyperbolicValueTransform", "SymLogValueTransform", "ValueTransform"]


@pytest.mark.parametrize("name", NORMS + TRANSFORMS)
def test_names_are_exported_and_documented(name):
    assert name in modules.__all__ and getattr(modules, name).__doc__


def _defaults(cls):
    return {n: p.default for n, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


def test_value_norm_documented_defaults_and_examples():
    assert _defaults(modules.PopArtValueNorm) == {"shape": 1, "beta": 0.99999, "epsilon": 1e-5,
                                                  "device": None}
    assert _defaults(modules.PercentileValueNorm) == {
        "shape": 1, "quantiles": (0.05, 0.95), "rate": 0.01, "min_scale": 1.0, "center": False,
        "epsilon": 1e-5, "device": None}
    vn = modules.PopArtValueNorm(shape=1)
    target = torch.randn(64, 1) * 5.0 + 2.0
    for _ in range(100):
        vn.update(target)
    torch.testing.assert_close(vn.denormalize(vn.normalize(target)), target)
    running = modules.RunningValueNorm(shape=1)
    for _ in range(10):
        running.update(torch.randn(64, 1) * 3.0 + 1.0)
    assert running.normalize(torch.randn(8, 1)).shape == (8, 1)
    pct = modules.PercentileValueNorm(shape=1, rate=1.0)
    pct.update(torch.linspace(0.0, 100.0, steps=101).unsqueeze(-1))
    torch.testing.assert_close(pct.scale(), torch.tensor([90.0]))
    torch.testing.assert_close(pct.normalize(torch.tensor([45.0])), torch.tensor([0.5]))


def test_value_transform_documented_examples():
    value = torch.tensor([-100.0, 0.0, 100.0])
    sh = modules.SignedHyperbolicValueTransform(epsilon=1e-3)
    torch.testing.assert_close(sh(value), torch.tensor([-9.1499, 0.0, 9.1499]), atol=1e-4,
                               rtol=0)
    composed = modules.ComposeValueTransform(modules.SignedHyperbolicValueTransform(),
                                             modules.SymLogValueTransform())
    torch.testing.assert_close(composed(value), torch.tensor([-2.3175, 0.0, 2.3175]), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(composed.inverse(composed(value)), value, atol=1e-3, rtol=1e-4)
    identity = modules.IdentityValueTransform()
    assert torch.equal(identity.inverse(identity(value)), value)


def test_modules_utils_path_primers_and_mappings():
    from streamrl.modules import GRUModule, get_primers_from_module
    from streamrl.modules.utils import (
        biased_softplus,
        get_env_transforms_from_module,
        inv_softplus,
        mappings,
    )
    from streamrl.modules.utils import get_primers_from_module as from_utils

    assert from_utils is get_primers_from_module
    gru = GRUModule(input_size=10, hidden_size=10, num_layers=1,
                    in_keys=["input", "recurrent_state", "is_init"],
                    out_keys=["features", ("next", "recurrent_state")])
    primer = get_primers_from_module(gru)
    assert primer.primers["recurrent_state"].shape == (1, 10)
    assert [type(t).__name__ for t in get_env_transforms_from_module(gru)] == [
        "InitTracker", "TensorDictPrimer"]
    assert torch.allclose(mappings("biased_softplus_2.0")(torch.zeros(1)), torch.tensor([2.0]))
    assert torch.allclose(biased_softplus(2.0)(torch.zeros(1)), torch.tensor([2.0]))
    assert abs(torch.nn.functional.softplus(torch.tensor(inv_softplus(2.0))).item() - 2.0) < 1e-6
