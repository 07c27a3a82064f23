"""TensorDictModule with an output spec, optionally projecting outputs into it."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule

from streamrl.modules._spec_utils import as_composite, check_outputs, safe_specs

__all__ = ["SafeModule"]


class SafeModule(TensorDictModule):
    """A :class:`tensordict.nn.TensorDictModule` that knows the spec of its outputs.

    Args:
        module: the callable to wrap (reads ``in_keys``, writes ``out_keys``).
        in_keys, out_keys: as for ``TensorDictModule``.
        spec: a leaf spec (it describes the first out key) or a ``Composite`` keyed by out
            keys. Output shapes are checked against it.
        safe: project outputs that fall outside the spec back into it (clamp for ``Bounded``,
            argmax for ``OneHot``...). Outputs already inside are returned untouched.

    >>> import torch
    >>> from torch import nn
    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Bounded
    >>> module = SafeModule(nn.Linear(5, 3), in_keys=["obs"], out_keys=["action"],
    ...                     spec=Bounded(-1.0, 1.0, shape=(3,)), safe=True)
    >>> module(TensorDict({"obs": torch.randn(5) * 100}))["action"].abs().max().item()
    1.0
    """

    def __init__(
        self,
        module: Any,
        in_keys: Any,
        out_keys: Any,
        spec: Any = None,
        safe: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(module, in_keys=in_keys, out_keys=out_keys, **kwargs)
        self._specs = safe_specs(spec, self.out_keys, safe, type(self).__name__)
        self.safe = safe

    @property
    def spec(self):
        """The output specs as a ``Composite`` keyed by out key."""
        return as_composite(self._specs)

    def forward(self, tensordict: TensorDictBase, *args: Any, **kwargs: Any) -> TensorDictBase:
        out = super().forward(tensordict, *args, **kwargs)
        check_outputs(out, self._specs, self.safe, type(self).__name__)
        return out
