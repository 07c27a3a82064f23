"""Names TorchRL 0.14 keeps only to say where their replacement is.

Building one raises ``RuntimeError`` naming the replacement, as TorchRL does: the
exploration wrappers became modules appended to the policy (``EGreedyModule`` and co., in
a ``TensorDictSequential``) and ``NormalParamWrapper`` became ``NormalParamExtractor``
appended to the network.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = [
    "AdditiveGaussianWrapper",
    "EGreedyWrapper",
    "NormalParamWrapper",
    "OrnsteinUhlenbeckProcessWrapper",
]


def _removed(name: str, replacement: str, usage: str) -> type:
    message = (f"{name} was removed (as in TorchRL 0.14): use {replacement} instead, {usage}")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(message)

    doc = (f"Removed: use :class:`{replacement}` ({usage}). Building it raises "
           f"``RuntimeError``.\n\n    >>> {name}(None)\n    Traceback (most recent call last):"
           f"\n    ...\n    RuntimeError: {message}\n")
    return type(name, (), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


EGreedyWrapper = _removed(
    "EGreedyWrapper", "streamrl.modules.EGreedyModule",
    "e.g. TensorDictSequential(policy, EGreedyModule(spec))")
AdditiveGaussianWrapper = _removed(
    "AdditiveGaussianWrapper", "streamrl.modules.AdditiveGaussianModule",
    "e.g. TensorDictSequential(policy, AdditiveGaussianModule(spec))")
OrnsteinUhlenbeckProcessWrapper = _removed(
    "OrnsteinUhlenbeckProcessWrapper", "streamrl.modules.OrnsteinUhlenbeckProcessModule",
    "e.g. TensorDictSequential(policy, OrnsteinUhlenbeckProcessModule(spec))")
NormalParamWrapper = _removed(
    "NormalParamWrapper", "streamrl.modules.NormalParamExtractor",
    "e.g. nn.Sequential(net, NormalParamExtractor())")
