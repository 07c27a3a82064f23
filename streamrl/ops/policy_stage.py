"""PolicyStage: applies a policy to batches of observations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.graph import Operator
from streamrl.ops._trajectories import set_collector_entries
from streamrl.ops.policy_weights import PolicyWeights

__all__ = ["PolicyStage"]


def apply_policy(policy: Callable[[TensorDictBase], TensorDictBase | None], td: TensorDictBase,
                 device: torch.device | None, exploration_type: ExplorationType) -> TensorDictBase:
    """``policy(td)`` without gradients, under ``exploration_type`` (this thread only), on
    ``device`` when given (the result comes back to ``td``'s device); a policy that returns
    None wrote into ``td``."""
    src_device = td.device
    if device is not None:
        td = td.to(device)
    with torch.no_grad(), set_exploration_type(exploration_type, thread_local=True):
        out = policy(td)
    if out is None:
        out = td
    if device is not None and src_device is not None:
        out = out.to(src_device)
    return out


class PolicyStage(Operator):
    """Runs ``policy`` (``td -> td``) on every batch, without gradients, under an exploration
    type, and stamps ``("collector", "policy_version")``.

    Placed on a thread it batches the work of several env sources fanned into it; given a
    :class:`PolicyWeights`, it uses the shared copy and reports the published version.

    Args:
        policy: a callable writing the action, or a :class:`PolicyWeights`.
        device: move inputs to this device before the policy, and outputs back to the inputs'
            device after it (``None``: no move).
        exploration_type: the exploration type the policy runs under (set for this thread
            only, so an evaluator in another thread is not affected).
    """

    def __init__(
        self,
        policy: Callable[[TensorDictBase], TensorDictBase] | PolicyWeights,
        *,
        device: torch.device | str | None = None,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
    ):
        self.weights = policy if isinstance(policy, PolicyWeights) else None
        self.policy = self.weights.policy if self.weights is not None else policy
        if not callable(self.policy):
            raise TypeError(f"policy must be callable, found {type(policy).__name__}")
        self.device = None if device is None else torch.device(device)
        self.exploration_type = exploration_type
        self.calls = 0

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        td = inputs["in"]
        if not isinstance(td, TensorDictBase):
            raise TypeError(f"PolicyStage expects TensorDict batches, found {type(td).__name__}")
        out = apply_policy(self.policy, td, self.device, self.exploration_type)
        version = self.weights.version if self.weights is not None else 0
        set_collector_entries(
            out, policy_version=torch.full(out.batch_size, version, dtype=torch.int64)
        )
        self.calls += 1
        return {"out": out}

    def __repr__(self) -> str:
        return f"PolicyStage(device={self.device})"
