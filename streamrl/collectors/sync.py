"""SyncDataCollector: one env (or batched env) and a policy, lockstep with the training loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.collectors._base import DataCollectorBase
from streamrl.envs.common import EnvBase
from streamrl.graph import Graph, Node
from streamrl.ops import Rollout, Trigger

__all__ = ["SyncDataCollector"]


class SyncDataCollector(DataCollectorBase):
    """Collects ``[*env_batch, T]`` batches in the calling process, one per iteration.

    The topology is ``Trigger -> Rollout -> (iterator)``: a batch is collected only when the
    loop asks for the next one, with the policy object itself (no copy), so an on-policy
    learner always trains on data from its current weights.

    Args:
        create_env_fn: an env or a zero-argument callable that builds one.
        policy: ``td -> td`` writing the action; ``None`` takes random actions.
        frames_per_batch: frames per batch (``T = frames_per_batch // num_envs``).
        total_frames: frames in one pass over the collector (``-1``: endless).
        max_frames_per_traj: truncate longer episodes (``-1``: no limit).
        device: move batches to this device.
        exploration_type: the exploration type the policy runs under (RANDOM by default).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> collector = SyncDataCollector(lambda: GymEnv("CartPole-v1"), None,
    ...                               frames_per_batch=50, total_frames=100)
    >>> [batch.batch_size for batch in collector]
    [torch.Size([50]), torch.Size([50])]
    >>> collector.shutdown()
    """

    def __init__(
        self,
        create_env_fn: EnvBase | Callable[[], EnvBase],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        max_frames_per_traj: int = -1,
        device: Any = None,
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
        if not isinstance(create_env_fn, EnvBase) and not callable(create_env_fn):
            raise TypeError(
                f"create_env_fn must be an env or a callable, found {type(create_env_fn).__name__}"
            )
        self.create_env_fn = create_env_fn
        self.policy_version = 0
        self._rollout: Rollout | None = None
        self._loaded_rollout: dict | None = None

    def _build(self) -> tuple[Graph, Node, Trigger]:
        g = Graph("sync-collector")
        trigger = Trigger()
        self._rollout = Rollout(
            self.create_env_fn,
            self.policy,
            frames_per_batch=self.frames_per_batch,
            max_frames_per_traj=self.max_frames_per_traj,
            exploration_type=self.exploration_type,
            seed=self._seed,
            gated=True,
        )
        self._rollout.version = self.policy_version
        if self._loaded_rollout is not None:
            self._rollout.load_state_dict(self._loaded_rollout)
            self._loaded_rollout = None
        t = g.add(trigger, name="trigger", placement="thread")
        r = g.add(self._rollout, name="rollout")
        g.connect(t, r)
        return g, r, trigger

    def state_dict(self) -> dict[str, Any]:
        """The collector's state between batches: ``frames`` (collected so far),
        ``policy_version`` and ``rollout`` (its :meth:`~streamrl.ops.Rollout.state_dict`:
        while iterating, the envs mid-episode, their carried observations and trajectory
        ids). Plain data: it saves with :func:`streamrl.train.save_checkpoint`.

        >>> from streamrl.envs.libs.gym import GymEnv
        >>> collector = SyncDataCollector(lambda: GymEnv("CartPole-v1"), None,
        ...                               frames_per_batch=10, total_frames=20)
        >>> it = iter(collector); _ = next(it)
        >>> sorted(collector.state_dict()), collector.state_dict()["frames"]
        (['frames', 'policy_version', 'rollout'], 10)
        >>> collector.shutdown()
        """
        if self._rollout is not None:
            rollout = self._rollout.state_dict()
            reason = (rollout["env_state"] or {}).get("uncapturable")
            if reason is not None:
                raise NotImplementedError(f"{type(self).__name__}: the state of its envs "
                                          f"cannot be captured: {reason}")
        elif self._loaded_rollout is not None:
            rollout = self._loaded_rollout
        else:
            rollout = {"frames": 0, "traj_ids": None, "env_state": None}
        return {"frames": self.frames, "policy_version": self.policy_version,
                "rollout": rollout}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into the next iteration: its envs continue the saved
        episodes (the seed given to :meth:`set_seed` is then not applied), trajectory ids
        and policy versions go on from the saved ones. ``total_frames`` still counts the
        frames of one pass. The keys are checked before anything changes; the envs' states
        are checked when the iteration opens them, before any step."""
        self.check_state_dict(state)
        if self._iterator is not None:
            raise RuntimeError("load_state_dict while iterating: load it before the loop "
                               "(it is applied when the next iteration starts)")
        self.frames = int(state["frames"])
        self.policy_version = int(state["policy_version"])
        self._loaded_rollout = state["rollout"]

    def check_state_dict(self, state: Any) -> None:
        """Raise ``ValueError`` unless ``state`` has the keys of :meth:`state_dict` (a
        :class:`streamrl.checkpoint.Checkpoint` calls it before loading anything)."""
        expected = {"frames", "policy_version", "rollout"}
        if not isinstance(state, dict) or set(state) != expected:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"SyncDataCollector.load_state_dict expected keys "
                             f"{sorted(expected)}, found {found}")
        rollout = state["rollout"]
        keys = set(Rollout.state_keys)
        if not isinstance(rollout, dict) or set(rollout) != keys:
            found = sorted(rollout) if isinstance(rollout, dict) else type(rollout).__name__
            raise ValueError(f"SyncDataCollector state['rollout']: expected keys "
                             f"{sorted(keys)}, found {found}")

    def update_policy_weights_(self, policy_weights: nn.Module | None = None) -> None:
        """The rollout uses the policy object itself, so new weights are already in use; this
        bumps the policy version stamped on the next batches."""
        self.policy_version += 1
        if self._rollout is not None:
            self._rollout.version = self.policy_version
