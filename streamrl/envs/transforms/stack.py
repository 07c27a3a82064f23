"""Stack: stack several entries (tensors or TensorDicts) into one along a new dim.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import Stack
>>> td = TensorDict({"a": torch.zeros(3), "b": torch.ones(3)})
>>> out = Stack(in_keys=["a", "b"], out_key="ab", dim=-2)(td)
>>> out["ab"].shape, "a" in out.keys()
(torch.Size([2, 3]), False)
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.envs.transforms._spec_utils import INPUT_PARTS, OUTPUT_PARTS
from streamrl.envs.transforms.expand_as import _one_key
from streamrl.envs.transforms.shape import _abs_dim, _int
from streamrl.envs.transforms.transform import Transform, as_keys, keys_repr

__all__ = ["Stack"]


def _batch_dims(value: Any) -> int:
    return value.batch_dims if isinstance(value, TensorDictBase) else value.ndim


class Stack(Transform):
    """Stack the ``in_keys`` entries (all of one shape) into ``out_key`` along a new dim
    ``dim``; the action path unstacks ``in_key_inv`` into ``out_keys_inv``.

    Entries may be tensors or TensorDicts (e.g. one sub-TensorDict per agent, stacked into
    one ``"agents"`` TensorDict whose batch gets the new dim). ``dim`` counts from the end
    when negative and, with ``allow_positive_dim=True``, from the first non-batch dim when
    non-negative (so one transform fits any batch size).

    Args:
        in_keys: the entries to stack (one or more).
        out_key: the stacked entry.
        in_key_inv: the stacked action entry users write (action path); default None.
        out_keys_inv: the entries the base env reads, unstacked from ``in_key_inv``.
        dim: the new dim. Default ``-1``.
        allow_positive_dim: accept a non-negative ``dim``. Default ``False``.

    Keyword Args:
        del_keys: delete the ``in_keys`` entries (and their specs) once stacked, and the
            ``out_keys_inv`` specs from the action spec users see. Default ``True``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> agents = {"a0": {"obs": torch.zeros(4)}, "a1": {"obs": torch.ones(4)}}
    >>> td = Stack(["a0", "a1"], "agents")(TensorDict(agents))
    >>> td["agents"].batch_size, td["agents", "obs"][:, 0]
    (torch.Size([2]), tensor([0., 1.]))
    """

    _per_step = True

    def __init__(
        self,
        in_keys: Any,
        out_key: NestedKey,
        in_key_inv: NestedKey | None = None,
        out_keys_inv: Any = None,
        dim: int = -1,
        allow_positive_dim: bool = False,
        *,
        del_keys: bool = True,
    ) -> None:
        super().__init__()
        in_keys = as_keys(in_keys, "in_keys")
        if not in_keys:
            raise ValueError("Stack needs at least one in_keys entry, found none")
        self.in_keys = in_keys
        self.out_keys = [_one_key(out_key, "out_key")]
        if (in_key_inv is None) != (out_keys_inv is None):
            raise ValueError(
                "in_key_inv and out_keys_inv go together (both or neither), found "
                f"in_key_inv={in_key_inv!r} and out_keys_inv={out_keys_inv!r}"
            )
        self.in_keys_inv = [] if in_key_inv is None else [_one_key(in_key_inv, "in_key_inv")]
        self.out_keys_inv = as_keys(out_keys_inv, "out_keys_inv")
        if self.in_keys_inv and not self.out_keys_inv:
            raise ValueError("out_keys_inv must name at least one entry")
        self.dim = _int(dim, "dim")
        if self.dim >= 0 and not allow_positive_dim:
            raise ValueError(f"dim must be negative unless allow_positive_dim=True, found {dim}")
        self.allow_positive_dim = bool(allow_positive_dim)
        self.del_keys = bool(del_keys)

    @property
    def out_key(self) -> NestedKey:
        """The stacked entry."""
        return self.out_keys[0]

    # ------------------------------------------------------------------ data
    def _stack_dim(self, value: Any, batch_dims: int) -> int:
        return _abs_dim(self.dim, _batch_dims(value), batch_dims, "dim", extra=1)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        present = [k for k in self.in_keys if k in td.keys(True)]
        if not present:
            return td  # e.g. rewards in a reset output
        values = [self._get(td, k) for k in self.in_keys]
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(
                f"Stack: the entries {self.in_keys} must share one shape, found {shapes}"
            )
        td.set(self.out_key, torch.stack(values, self._stack_dim(values[0], td.batch_dims)))
        if self.del_keys:
            for key in self.in_keys:
                if key != self.out_key:
                    td.del_(key)
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._call(td_reset)

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        if not self.in_keys_inv:
            return td
        value = self._get(td, self.in_keys_inv[0])
        d = _abs_dim(self.dim, _batch_dims(value), td.batch_dims, "dim")
        parts = value.unbind(d)
        if len(parts) != len(self.out_keys_inv):
            raise ValueError(
                f"Stack: {self.in_keys_inv[0]!r} has {len(parts)} entries along dim {self.dim}, "
                f"expected {len(self.out_keys_inv)} (one per out_keys_inv entry)"
            )
        for key, part in zip(self.out_keys_inv, parts):
            td.set(key, part)
        return td

    # ------------------------------------------------------------------ specs
    def _stack_specs(self, composite: Any, src: list, dst: NestedKey) -> Any:
        keys = composite.keys(True, True) + composite.keys(True)
        if not all(k in keys for k in src):
            return composite
        specs = [composite[k] for k in src]
        d = _abs_dim(self.dim, len(specs[0].shape), len(composite.shape), "dim", extra=1)
        stacked = torch.stack(specs, d)
        if self.del_keys:
            for key in src:
                del composite[key]
        composite[dst] = stacked
        return composite

    def transform_output_spec(self, output_spec: Any) -> Any:
        """The ``in_keys`` specs replaced by their stack, in the spec that holds them."""
        for part in OUTPUT_PARTS:
            output_spec[part] = self._stack_specs(output_spec[part], self.in_keys, self.out_key)
        return output_spec

    def transform_input_spec(self, input_spec: Any) -> Any:
        """The ``out_keys_inv`` specs stacked into the ``in_key_inv`` one users see."""
        if self.in_keys_inv:
            for part in INPUT_PARTS:
                input_spec[part] = self._stack_specs(
                    input_spec[part], self.out_keys_inv, self.in_keys_inv[0]
                )
        return input_spec

    def __repr__(self) -> str:
        return (
            f"Stack(in_keys={keys_repr(self.in_keys)}, out_key={self.out_key!r}, "
            f"dim={self.dim}, del_keys={self.del_keys})"
        )
