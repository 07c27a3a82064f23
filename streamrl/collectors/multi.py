"""Collectors with one worker process per env constructor: lockstep and asynchronous."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.collectors._base import DataCollectorBase, check_env_fns, shared_weights
from streamrl.envs.common import EnvBase
from streamrl.graph import Graph, Map, Node, Process
from streamrl.ops import Rollout, StackBatches, Trigger

__all__ = ["MultiSyncDataCollector", "MultiaSyncDataCollector"]


class _MultiCollector(DataCollectorBase):
    def __init__(
        self,
        create_env_fn: Sequence[EnvBase | Callable[[], EnvBase]],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        max_frames_per_traj: int = -1,
        device: Any = None,
        mp_start_method: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            policy,
            frames_per_batch=frames_per_batch,
            total_frames=total_frames,
            max_frames_per_traj=max_frames_per_traj,
            device=device,
            **kwargs,
        )
        self.create_env_fn = check_env_fns(create_env_fn)
        self.num_workers = len(self.create_env_fn)
        self.mp_start_method = mp_start_method
        self.weights = shared_weights(policy)

    def _rollout(self, i: int, frames_per_batch: int, gated: bool) -> Rollout:
        return Rollout(
            self.create_env_fn[i],
            self.weights if self.weights is not None else self.policy,
            frames_per_batch=frames_per_batch,
            max_frames_per_traj=self.max_frames_per_traj,
            exploration_type=self.exploration_type,
            seed=None if self._seed is None else self._seed + i,
            gated=gated,
            worker_index=i,
            num_workers=self.num_workers,
        )

    def update_policy_weights_(self, policy_weights: nn.Module | None = None) -> None:
        """Copy the policy's current weights (or ``policy_weights``) into the workers' shared
        copy; the workers use them from their next step on."""
        if self.weights is not None:
            self.weights.publish(policy_weights if policy_weights is not None else self.policy)


class MultiSyncDataCollector(_MultiCollector):
    """One worker process per env constructor, collecting in lockstep.

    Each iteration every worker collects ``frames_per_batch // num_workers`` frames with the
    latest published weights, and the batches are stacked: ``[num_workers, *env_batch, T]``.
    The topology is ``Trigger -> N x Rollout (processes) -> StackBatches -> (iterator)``.
    """

    def _build(self) -> tuple[Graph, Node, Trigger]:
        if self.frames_per_batch % self.num_workers:
            raise ValueError(
                f"frames_per_batch ({self.frames_per_batch}) must be divisible by the number of "
                f"workers ({self.num_workers})"
            )
        g = Graph("multi-sync-collector")
        trigger = Trigger()
        t = g.add(trigger, name="trigger", placement="thread")
        stack = g.add(StackBatches(self.num_workers), name="stack")
        per_worker = self.frames_per_batch // self.num_workers
        for i in range(self.num_workers):
            r = g.add(
                self._rollout(i, per_worker, gated=True),
                name=f"rollout{i}",
                placement=Process(start_method=self.mp_start_method),
            )
            g.connect(t, r).connect(r, stack[f"in{i}"], capacity=1)
        return g, stack, trigger


class MultiaSyncDataCollector(_MultiCollector):
    """One worker process per env constructor, collecting without waiting for the learner.

    Workers keep collecting while the loop trains (each holds at most one finished batch);
    every iteration yields the next ``frames_per_batch`` batch from whichever worker is ready,
    stamped with the policy version that produced it (``("collector", "policy_version")``).
    The topology is ``N x Rollout (processes) -> (iterator)``, fanned in.
    """

    def _build(self) -> tuple[Graph, Node, None]:
        g = Graph("multi-async-collector")
        merge = g.add(Map(_identity), name="merge")
        for i in range(self.num_workers):
            r = g.add(
                self._rollout(i, self.frames_per_batch, gated=False),
                name=f"rollout{i}",
                placement=Process(start_method=self.mp_start_method),
            )
            g.connect(r, merge, capacity=1)
        return g, merge, None


def _identity(batch: Any) -> Any:
    return batch
