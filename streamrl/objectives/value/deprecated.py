"""TorchRL's deprecated estimator names: ``TD0Estimate``, ``TD1Estimate``, ``TDLambdaEstimate``.

TorchRL 0.14 keeps them as deprecated classes that warn and then behave as
:class:`TD0Estimator`, :class:`TD1Estimator` and :class:`TDLambdaEstimator` (same arguments,
same outputs). Here each is a subclass of its replacement that emits a
:class:`~streamrl.StreamRLWarning` when built.
"""

from __future__ import annotations

import functools
import warnings

from streamrl._warnings import StreamRLWarning
from streamrl.objectives.value.estimators import TD0Estimator, TD1Estimator, TDLambdaEstimator

__all__ = ["TD0Estimate", "TD1Estimate", "TDLambdaEstimate"]

_EXAMPLE = """

    >>> import torch, warnings
    >>> from tensordict import TensorDict
    >>> td = TensorDict({{"state_value": torch.zeros(2, 1), "next": {{
    ...     "reward": torch.ones(2, 1), "done": torch.tensor([[False], [True]]),
    ...     "state_value": torch.ones(2, 1)}}}}, [2])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     estimator = {old}(gamma=0.5{extra})
    >>> caught[0].category.__name__, isinstance(estimator, {new})
    ('StreamRLWarning', True)
    >>> estimator(td)["value_target"].squeeze(-1)
    tensor([1.5000, 1.0000])
"""


def _deprecated(new: type, old: str, extra: str = "") -> type:
    @functools.wraps(new.__init__)
    def __init__(self, *args, **kwargs) -> None:
        warnings.warn(
            f"{old} is deprecated (as in TorchRL): use {new.__name__}, which takes the same "
            "arguments",
            StreamRLWarning,
            stacklevel=2,
        )
        new.__init__(self, *args, **kwargs)

    doc = (f"Deprecated name of :class:`{new.__name__}`: warns when built, then behaves as "
           f"{new.__name__} (same arguments and outputs)." + _EXAMPLE.format(
               old=old, new=new.__name__, extra=extra))
    return type(old, (new,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


TD0Estimate = _deprecated(TD0Estimator, "TD0Estimate")
TD1Estimate = _deprecated(TD1Estimator, "TD1Estimate")
TDLambdaEstimate = _deprecated(TDLambdaEstimator, "TDLambdaEstimate", ", lmbda=0.5")
