"""Consistent dropout (Hausknecht & Wagener, 2022): reuse the rollout's dropout mask in the
update, so the policy that is trained is the one that acted."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import unravel_key
from torch import nn

from streamrl.data.specs import Composite, Unbounded
from streamrl.envs.transforms import TensorDictPrimer

__all__ = ["ConsistentDropout", "ConsistentDropoutModule"]


def _broadcasts_to(shape: torch.Size, target: torch.Size) -> bool:
    try:
        return torch.broadcast_shapes(shape, target) == target
    except RuntimeError:
        return False


class ConsistentDropout(nn.Module):
    """Dropout that returns its mask, and applies a mask it is given.

    In training mode ``forward(x)`` draws a mask (values 0 or ``1 / (1 - p)``) and returns
    ``(x * mask, mask)``; ``forward(x, mask)`` returns ``(x * mask, mask)`` with the given
    mask, so feeding the rollout's mask back reproduces the rollout's output. In eval mode it
    returns ``x`` unchanged (no tuple), like ``nn.Dropout``.

    Args:
        p: drop probability, in ``[0, 1)`` (default 0.5).

    >>> drop = ConsistentDropout(0.5)
    >>> out, mask = drop(torch.ones(2, 4))
    >>> bool(((mask == 0) | (mask == 2)).all()) and torch.equal(out, mask)
    True
    >>> torch.equal(drop(torch.full((2, 4), 3.0), mask)[0], 3.0 * mask)
    True
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p = p

    def make_mask(
        self, *, input: torch.Tensor | None = None, shape: torch.Size | None = None
    ) -> torch.Tensor:
        """A fresh scaled mask shaped like ``input`` (or of ``shape``)."""
        if (input is None) == (shape is None):
            raise ValueError("make_mask needs exactly one of input or shape")
        if input is not None:
            keep = torch.empty_like(input).bernoulli_(1.0 - self.p)
        else:
            keep = torch.empty(shape).bernoulli_(1.0 - self.p)
        return keep / (1.0 - self.p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        if not self.training:
            return x
        if mask is None:
            mask = self.make_mask(input=x)
        elif not _broadcasts_to(mask.shape, x.shape):
            raise ValueError(
                f"ConsistentDropout mask of shape {tuple(mask.shape)} does not match the "
                f"input of shape {tuple(x.shape)}"
            )
        return x * mask, mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ConsistentDropoutModule(TensorDictModuleBase):
    """:class:`ConsistentDropout` reading and writing its mask in the TensorDict.

    ``in_keys = [input_key, mask_key]``: when the TensorDict has no mask (collection), a new
    one is drawn and written at ``out_keys[1]``; when it has one (the update, replaying the
    collected data), that mask is reused. In eval mode only the input is copied to the
    output key.

    Args:
        p: drop probability.
        in_keys: ``[input_key, mask_key]``.
        out_keys: ``[output_key, mask_key]`` (default: ``in_keys``, i.e. in place).
        input_shape, input_dtype: the per-sample input shape and dtype (kept as attributes
            for building a primer for the mask key).

    >>> from tensordict import TensorDict
    >>> module = ConsistentDropoutModule(0.5, in_keys=["x", "mask"])
    >>> td = module(TensorDict({"x": torch.ones(3, 4)}, [3]))
    >>> replay = module(TensorDict({"x": torch.ones(3, 4), "mask": td["mask"]}, [3]))
    >>> torch.equal(replay["x"], td["x"])
    True
    """

    def __init__(
        self,
        p: float,
        in_keys: Any,
        out_keys: Any = None,
        input_shape: torch.Size | None = None,
        input_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        in_keys = [unravel_key(k) for k in (in_keys if isinstance(in_keys, list) else [in_keys])]
        out_keys = in_keys if out_keys is None else [
            unravel_key(k) for k in (out_keys if isinstance(out_keys, list) else [out_keys])
        ]
        if len(in_keys) != 2 or len(out_keys) != 2:
            raise ValueError(
                f"ConsistentDropoutModule needs in_keys and out_keys of length 2 "
                f"([value, mask]), got in_keys={in_keys}, out_keys={out_keys}"
            )
        self.in_keys, self.out_keys = in_keys, out_keys
        self.dropout = ConsistentDropout(p)
        self.input_shape = None if input_shape is None else torch.Size(input_shape)
        self.input_dtype = input_dtype

    def make_tensordict_primer(self) -> TensorDictPrimer:
        """A :class:`~streamrl.envs.TensorDictPrimer` drawing a fresh mask at the mask key at
        each reset, so a rollout acts with one mask per episode and the update replays it.

        Needs ``input_shape`` (the shape of the masked entry, the env's batch dims included
        for a batched env); ``input_dtype`` defaults to float32.

        >>> m = ConsistentDropoutModule(0.5, in_keys=["x", "mask"], input_shape=(4,))
        >>> m.make_tensordict_primer().primers["mask"].shape
        torch.Size([4])
        """
        if self.input_shape is None:
            raise ValueError(
                "ConsistentDropoutModule.make_tensordict_primer needs the module's input_shape "
                "(the shape of the masked entry), found None"
            )
        shape, dtype = self.input_shape, self.input_dtype or torch.float32
        key = self.out_keys[1]

        def draw() -> torch.Tensor:
            return self.dropout.make_mask(shape=shape).to(dtype)

        spec = Unbounded(shape=shape, dtype=dtype)
        return TensorDictPrimer(Composite({key: spec}), default_value={key: draw}, expand_specs=True)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        value = tensordict.get(self.in_keys[0], None)
        if value is None:
            raise KeyError(f"ConsistentDropoutModule needs {self.in_keys[0]!r} in the TensorDict")
        if not self.training:
            tensordict.set(self.out_keys[0], value)
            return tensordict
        out, mask = self.dropout(value, tensordict.get(self.in_keys[1], None))
        tensordict.set(self.out_keys[0], out)
        tensordict.set(self.out_keys[1], mask)
        return tensordict
