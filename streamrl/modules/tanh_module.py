"""Squash an entry into the bounds of a spec with a tanh (deterministic DDPG/TD3 actors)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import unravel_key

from streamrl.modules.distributions._squash import as_bound, check_bounds, safe_tanh

__all__ = ["TanhModule"]


class TanhModule(TensorDictModuleBase):
    """Write ``low + (high - low) * (tanh(x) + 1) / 2`` for each ``in_key`` at ``out_key``.

    Bounds come from ``spec`` (anything with ``low``/``high``, e.g. ``Bounded``) or from
    ``low``/``high``; by default ``[-1, 1]``. Put it after a network writing pre-activations.

    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Bounded
    >>> module = TanhModule(["raw"], ["action"], spec=Bounded(0.0, 2.0, shape=(1,)))
    >>> module(TensorDict({"raw": torch.tensor([[0.0], [50.0]])}, [2]))["action"]
    tensor([[1.0000],
            [2.0000]])
    """

    def __init__(
        self,
        in_keys: Any,
        out_keys: Any = None,
        *,
        spec: Any = None,
        low: float | torch.Tensor | None = None,
        high: float | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        in_keys = [in_keys] if isinstance(in_keys, (str, tuple)) else list(in_keys)
        out_keys = in_keys if out_keys is None else out_keys
        out_keys = [out_keys] if isinstance(out_keys, (str, tuple)) else list(out_keys)
        if len(in_keys) != len(out_keys):
            raise ValueError(f"in_keys {in_keys} and out_keys {out_keys} differ in length")
        self.in_keys = [unravel_key(k) for k in in_keys]
        self.out_keys = [unravel_key(k) for k in out_keys]
        if spec is not None:
            if low is not None or high is not None:
                raise ValueError("pass either spec or low/high, not both")
            low, high = getattr(spec, "low", None), getattr(spec, "high", None)
            if low is None or high is None:
                raise TypeError(f"spec {type(spec).__name__} has no low/high bounds")
        ref = torch.zeros(())
        low_t = as_bound(-1.0 if low is None else low, ref, "low")
        high_t = as_bound(1.0 if high is None else high, ref, "high")
        check_bounds(low_t, high_t, "TanhModule")
        self.register_buffer("low", low_t.clone())
        self.register_buffer("high", high_t.clone())

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = tensordict.get(in_key, None)
            if value is None:
                raise KeyError(f"TanhModule needs {in_key!r}")
            squashed = safe_tanh(value)
            tensordict.set(out_key, self.low + (self.high - self.low) * (squashed + 1) / 2)
        return tensordict
