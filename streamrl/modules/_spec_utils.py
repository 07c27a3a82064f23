"""Matching specs to output keys and projecting outputs into them."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import unravel_key

from streamrl._warnings import StreamRLWarning
from streamrl.data.specs import Composite, TensorSpec


def spec_map(spec: Any, out_keys: list, owner: str) -> dict:
    """``{out_key: leaf spec}``; a leaf spec belongs to the first out key; a Composite's
    entries at ``"_"`` (an output that is not written) or at keys that are no out key are
    dropped with a warning."""
    if spec is None:
        return {}
    if isinstance(spec, TensorSpec):
        if not out_keys:
            raise ValueError(f"{owner} got a spec but has no out_keys to apply it to")
        return {out_keys[0]: spec}
    if isinstance(spec, Composite):
        out = {}
        unknown = []
        for key in spec.keys(include_nested=True, leaves_only=True):
            key = unravel_key(key)
            if key == "_":  # the output at "_" is not written, so it has nothing to check
                warnings.warn(
                    f'{owner} got a spec with key "_": the "_" out key is not written, so '
                    "its spec is ignored", StreamRLWarning, stacklevel=4)
                continue
            if key in out_keys:
                out[key] = spec[key]
            else:
                unknown.append(key)
        if unknown:
            # TorchRL keeps such entries (they check nothing): warn, as a typo is likely
            warnings.warn(
                f"{owner}: spec keys {unknown} are not among the out_keys {out_keys}; those "
                "entries are ignored", StreamRLWarning, stacklevel=4)
        return out
    raise TypeError(f"{owner}: spec must be a TensorSpec or Composite, got {type(spec).__name__}")


def as_composite(specs: dict) -> Composite:
    comp = Composite()
    for key, leaf in specs.items():
        comp[key] = leaf
    return comp


def check_shape(key, value, spec: TensorSpec, owner: str) -> None:
    n = len(spec.shape)
    if value.ndim < n or (n and tuple(value.shape[-n:]) != tuple(spec.shape)):
        raise ValueError(
            f"{owner}: output {key!r} has shape {tuple(value.shape)}, which does not end with "
            f"the spec's shape {tuple(spec.shape)}"
        )


def project_outputs(tensordict: TensorDictBase, specs: dict, owner: str) -> None:
    """Project each spec'd output that lies outside its spec (values inside are untouched)."""
    for key, spec in specs.items():
        value = tensordict.get(key, None)
        if value is None:
            continue
        projected = project_value(key, value, spec, owner)
        if projected is not value:
            tensordict.set(key, projected)


def project_value(key: Any, value: torch.Tensor, spec: Any, owner: str) -> torch.Tensor:
    """``value`` (at ``key``) projected into ``spec``; ``value`` itself when it lies inside."""
    check_shape(key, value, spec, owner)
    # projecting a value already inside is a no-op, so skip the is_in test where it cannot
    # run (vmap) or would synchronise an accelerator
    cheap = value.device.type == "cpu" and not torch._C._functorch.is_batchedtensor(value)
    if not cheap or not spec.is_in(value):
        return spec.project(value)
    return value


class ProjectStep:
    """A tensor-plan step (``streamrl._utils.tensor_plan``) projecting the values at
    ``specs``' keys, as :func:`project_outputs` does in a TensorDict."""

    def __init__(self, specs: dict, owner: str) -> None:
        self.items = list(specs.items())
        self.owner = owner

    def __call__(self, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(project_value(key, value, spec, self.owner)
                     for (key, spec), value in zip(self.items, values))


def safe_specs(spec: Any, out_keys: list, safe: bool, owner: str) -> dict:
    """The out-key -> spec map of a safe module; ``safe=True`` needs a spec (a
    ``RuntimeError``, TorchRL's type for this configuration error)."""
    specs = spec_map(spec, out_keys, owner)
    if safe and not specs:
        raise RuntimeError(
            f"{owner}(safe=True) without a spec is not a valid configuration as the tensor "
            "specs are not specified: safe=True projects the outputs into the spec; pass "
            "spec=... or safe=False"
        )
    return specs


def check_outputs(tensordict: Any, specs: dict, safe: bool, owner: str) -> None:
    """A safe module's outputs: projected into their specs (``safe``), else shape-checked."""
    if not specs or not isinstance(tensordict, TensorDictBase):
        return
    if safe:
        project_outputs(tensordict, specs, owner)
        return
    for key, spec in specs.items():
        value = tensordict.get(key, None)
        if value is not None:
            check_shape(key, value, spec, owner)
