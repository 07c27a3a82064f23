"""ExpandAs: expand one entry to the right to the shape of a reference entry.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import ExpandAs
>>> td = TensorDict({"done": torch.tensor([True]), "r": torch.zeros(1, 3)})
>>> ExpandAs("done", "r")(td)["done"]
tensor([[True, True, True]])
"""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from tensordict.utils import NestedKey, expand_as_right

from streamrl.envs.transforms._spec_utils import OUTPUT_PARTS
from streamrl.envs.transforms.transform import Transform, as_keys

__all__ = ["ExpandAs"]


def _one_key(key: Any, name: str) -> NestedKey:
    keys = as_keys(key, name)
    if len(keys) != 1:
        raise TypeError(f"{name} must be one key, found {key!r}")
    return keys[0]


class ExpandAs(Transform):
    """Expand ``in_key`` to the right (adding and broadcasting trailing dims) to the shape
    of ``ref_key``, writing ``out_key`` (``in_key`` by default).

    In an env, ``in_key`` and ``ref_key`` may live in different specs (a ``done`` flag
    expanded to a per-agent reward); the output spec is the input spec expanded to the
    reference spec's shape and goes where the input's spec is. Data lacking either entry
    (a reset output lacks the reward) passes through.

    Args:
        in_key: the entry to expand.
        ref_key: the entry whose shape is the target.
        out_key: where the expanded entry goes; defaults to ``in_key``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"x": torch.tensor([1, 2]), "ref": torch.zeros(2, 3)}, [2])
    >>> ExpandAs("x", "ref", "y")(td)["y"]
    tensor([[1, 1, 1],
            [2, 2, 2]])
    """

    _per_step = True

    def __init__(self, in_key: NestedKey, ref_key: NestedKey, out_key: NestedKey | None = None):
        in_key = _one_key(in_key, "in_key")
        self.ref_key = _one_key(ref_key, "ref_key")
        out_key = in_key if out_key is None else _one_key(out_key, "out_key")
        super().__init__([in_key], [out_key])

    @property
    def in_key(self) -> NestedKey:
        """The entry expanded."""
        return self.in_keys[0]

    @property
    def out_key(self) -> NestedKey:
        """Where the expanded entry goes."""
        return self.out_keys[0]

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        value, ref = td.get(self.in_key, None), td.get(self.ref_key, None)
        if value is None or ref is None:
            return td
        if value.ndim > ref.ndim or not all(a in (b, 1) for a, b in zip(value.shape, ref.shape)):
            raise ValueError(
                f"ExpandAs: {self.in_key!r} of shape {tuple(value.shape)} cannot be "
                f"expanded to {self.ref_key!r} of shape {tuple(ref.shape)}"
            )
        td.set(self.out_key, expand_as_right(value, ref).clone())
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._call(td_reset)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """The ``out_key`` spec: the ``in_key`` spec expanded to the ``ref_key`` one."""
        src = ref = None
        for part in OUTPUT_PARTS:
            keys = output_spec[part].keys(True, True)
            if self.in_key in keys:
                src = part
            if self.ref_key in keys:
                ref = output_spec[part][self.ref_key]
        if src is None or ref is None:
            return output_spec
        spec = output_spec[src][self.in_key].clone()
        extra = len(ref.shape) - len(spec.shape)
        if extra < 0:
            raise ValueError(
                f"ExpandAs: the spec of {self.in_key!r} has shape {tuple(spec.shape)}, more "
                f"dims than the spec of {self.ref_key!r} ({tuple(ref.shape)})"
            )
        for _ in range(extra):
            spec = spec.unsqueeze(-1)
        output_spec[src][self.out_key] = spec.expand(ref.shape)
        return output_spec

    def __repr__(self) -> str:
        return (
            f"ExpandAs(in_key={self.in_key!r}, ref_key={self.ref_key!r}, out_key={self.out_key!r})"
        )
