"""Policy weights shared between a learner and collecting operators, with a version counter."""

from __future__ import annotations

import copy
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

__all__ = ["PolicyWeights"]


def _published_params(weights: nn.Module | TensorDictBase, keys: set[Any]) -> TensorDictBase:
    """The parameters and buffers of ``weights`` (a module, or a TensorDict of them), checked
    to have exactly the policy's ``keys`` (a ``ValueError`` naming the missing and unexpected
    ones otherwise)."""
    src = weights if isinstance(weights, TensorDictBase) else TensorDict.from_module(weights)
    found = set(src.keys(True, True))
    if found != keys:
        raise ValueError(f"published weights do not match the policy: missing "
                         f"{sorted(map(str, keys - found))}, unexpected "
                         f"{sorted(map(str, found - keys))}")
    return src


class PolicyWeights:
    """A copy of a policy whose parameters live in shared memory, and a shared version.

    Operators that run in other processes hold :attr:`policy` (the shared copy): when the
    learner calls :meth:`publish`, the new weights are copied in place and the version is
    bumped, so every process sees them without any message. Collected batches carry the
    version that produced them (``("collector", "policy_version")``); the count starts at
    ``version`` (a resumed run's).

    >>> net = nn.Linear(3, 1)
    >>> weights = PolicyWeights(net)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(1.0)
    >>> weights.publish(net)
    1
    >>> bool((weights.policy.weight == 1).all()), weights.version
    (True, 1)
    """

    def __init__(self, policy: nn.Module, *, version: int = 0):
        if not isinstance(policy, nn.Module):
            raise TypeError(f"policy must be a torch.nn.Module, found {type(policy).__name__}")
        for name, p in policy.named_parameters():
            if isinstance(p, nn.parameter.UninitializedParameter):
                raise ValueError(
                    f"policy parameter {name!r} is lazy and not initialised yet: run the policy "
                    "once on an example input before sharing it"
                )
        self.policy = copy.deepcopy(policy).share_memory()
        self._params = TensorDict.from_module(self.policy)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"version must be an int >= 0, got {version!r}")
        # a resumed run starts from the version its checkpoint saved, so that the versions
        # stamped on the restored replay data stay comparable
        self._version = torch.full((), version, dtype=torch.int64).share_memory_()

    @property
    def version(self) -> int:
        """How many times weights were published."""
        return int(self._version)

    def publish(self, policy: nn.Module | TensorDict | None = None) -> int:
        """Copy ``policy``'s parameters and buffers (a module or a TensorDict of them) into the
        shared copy and bump the version; returns the new version. ``None`` only bumps it."""
        if policy is not None:
            src = _published_params(policy, set(self._params.keys(True, True)))
            with torch.no_grad():
                self._params.update_(src.detach())
        self._version += 1
        return int(self._version)

    def snapshot(self) -> TensorDict:
        """A private copy of the shared parameters and buffers as they are now (a TensorDict
        that later publications do not change; ``snapshot().to_module(copy_of_policy)``
        loads it)."""
        with torch.no_grad():
            return self._params.detach().clone()
