"""FiniteTensorDictCheck: fail fast when an env (or data) produces NaN or infinite values.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import FiniteTensorDictCheck
>>> FiniteTensorDictCheck()(TensorDict({"x": torch.ones(2)}))["x"]
tensor([1., 1.])
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms.transform import Transform

__all__ = ["FiniteTensorDictCheck"]


class FiniteTensorDictCheck(Transform):
    """Raise ``ValueError`` naming the entries that hold NaN or infinite values, in reset
    outputs, step outputs or (outside an env) the data given; finite data pass unchanged.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> FiniteTensorDictCheck()(TensorDict({"x": torch.tensor([float("nan")])}))
    Traceback (most recent call last):
    ...
    ValueError: FiniteTensorDictCheck: non-finite values in ['x']
    """

    _per_step = True

    def __init__(self) -> None:
        super().__init__()

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        bad = [
            k
            for k, v in td.items(True, True)
            if isinstance(v, torch.Tensor)
            and (v.is_floating_point() or v.is_complex())
            and not bool(torch.isfinite(v).all())
        ]
        if bad:
            raise ValueError(f"FiniteTensorDictCheck: non-finite values in {sorted(map(str, bad))}")
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._call(td_reset)

    def __repr__(self) -> str:
        return "FiniteTensorDictCheck()"
