"""RemoveEmptySpecs: drop empty Composite specs and empty sub-TensorDicts from an env.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import RemoveEmptySpecs
>>> td = TensorDict({"x": torch.ones(1), "info": {"nested": {}}})
>>> list(RemoveEmptySpecs()(td).keys())
['x']
"""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase

from streamrl.data.specs import Composite
from streamrl.envs.transforms._spec_utils import INPUT_PARTS, OUTPUT_PARTS
from streamrl.envs.transforms.transform import Transform

__all__ = ["RemoveEmptySpecs"]


def _prune_spec(spec: Composite) -> Composite:
    """Delete (recursively) the sub-Composites left with no leaf."""
    for key in list(spec.keys()):
        sub = spec[key]
        if isinstance(sub, Composite):
            _prune_spec(sub)
            if sub.is_empty():
                del spec[key]
    return spec


def _prune_td(td: TensorDictBase) -> TensorDictBase:
    for key in list(td.keys()):
        sub = td.get(key)
        if isinstance(sub, TensorDictBase) and not _is_non_tensor(sub):
            _prune_td(sub)
            if sub.is_empty():
                td.del_(key)
    return td


def _is_non_tensor(td: TensorDictBase) -> bool:
    return bool(getattr(td, "_is_non_tensor", False))


class RemoveEmptySpecs(Transform):
    """Remove the empty Composite specs (and the empty sub-TensorDicts they describe) from
    an env's outputs and inputs, nested ones first (a Composite holding only empty
    Composites goes too).

    The constructor takes the usual key arguments for signature compatibility; the
    transform acts on every empty entry whatever the keys.

    >>> from streamrl.data.specs import Composite, Unbounded
    >>> from streamrl.envs.transforms.remove_empty_specs import _prune_spec
    >>> spec = Composite(x=Unbounded(1), info=Composite(nested=Composite()))
    >>> list(_prune_spec(spec).keys())
    ['x']
    """

    _per_step = True

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return _prune_td(td)

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return _prune_td(td_reset)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Every part of the output spec without its empty Composites."""
        for part in OUTPUT_PARTS:
            output_spec[part] = _prune_spec(output_spec[part])
        return output_spec

    def transform_input_spec(self, input_spec: Any) -> Any:
        """Every part of the input spec without its empty Composites."""
        for part in INPUT_PARTS:
            input_spec[part] = _prune_spec(input_spec[part])
        return input_spec

    def __repr__(self) -> str:
        return "RemoveEmptySpecs()"
