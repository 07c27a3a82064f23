"""LogValidationReward: evaluate the policy in a separate environment every few batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.trainers._checks import check_name, check_trainer, positive_int
from streamrl.trainers.hook_base import TrainerHookBase

__all__ = ["LogValidationReward"]

REWARD_KEY = ("next", "reward")


class LogValidationReward(TrainerHookBase):
    """Every ``record_interval`` calls (the first call included), plays ``record_frames`` steps
    of ``policy_exploration`` in ``environment`` (``env.rollout(record_frames, policy,
    break_when_any_done=False)``: episodes restart as they end) under ``exploration_type``
    and without gradients, and logs, for each of ``log_keys``, the mean over the steps as
    ``out_keys[key]`` and the sum as ``"total_" + out_keys[key]``. The mean reward is divided
    by ``frame_skip`` (reward per env frame). Registered at ``"post_steps_log"``, so it runs
    once per collected batch.

    A policy module is put in eval mode for the rollout and back in its previous mode after.
    Video recorders among the env's transforms are dumped after each evaluation
    (``dump(suffix=suffix)``).

    Args:
        record_interval: calls between two evaluations.
        record_frames: steps per evaluation.
        frame_skip: env frames per step.
        policy_exploration: the policy (``td -> td``).
        environment: the evaluation env (``recorder`` is a deprecated alias).
        exploration_type: how the policy acts (TorchRL's default: ``RANDOM``).
        log_keys: entries of the rollout to log (default ``[("next", "reward")]``).
        out_keys: their logged names (default ``{("next", "reward"): "r_evaluation"}``).
        suffix: suffix of the dumped videos.
        log_pbar: also show the values on the progress bar.

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> env = GymEnv("Pendulum-v1")
    >>> hook = LogValidationReward(record_interval=2, record_frames=5, environment=env,
    ...                            policy_exploration=lambda td: td.set("action",
    ...                                                                  torch.zeros(1)))
    >>> sorted(hook(None)), hook(None)
    (['log_pbar', 'r_evaluation', 'total_r_evaluation'], {})
    >>> env.close()
    """

    def __init__(
        self,
        *,
        record_interval: int,
        record_frames: int,
        frame_skip: int = 1,
        policy_exploration: Callable[[TensorDictBase], TensorDictBase],
        environment: Any = None,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
        log_keys: Sequence[NestedKey] | None = None,
        out_keys: dict[NestedKey, str] | None = None,
        suffix: str | None = None,
        log_pbar: bool = False,
        recorder: Any = None,
    ) -> None:
        if environment is None:
            environment = recorder
        elif recorder is not None:
            raise ValueError("pass environment= or its deprecated alias recorder=, not both")
        if environment is None or not callable(getattr(environment, "rollout", None)):
            raise TypeError(f"environment must be an env (with rollout()), found "
                            f"{type(environment).__name__}")
        if not callable(policy_exploration):
            raise TypeError(f"policy_exploration must be callable, found "
                            f"{type(policy_exploration).__name__}")
        if not isinstance(exploration_type, ExplorationType):
            raise TypeError(f"exploration_type must be an ExplorationType, found "
                            f"{exploration_type!r}")
        log_keys = [REWARD_KEY] if log_keys is None else list(log_keys)
        if not log_keys:
            raise ValueError("log_keys must name at least one entry")
        out_keys = {REWARD_KEY: "r_evaluation"} if out_keys is None else dict(out_keys)
        missing = [k for k in log_keys if k not in out_keys]
        if missing:
            raise ValueError(f"out_keys has no name for the log_keys {missing}")
        if not isinstance(log_pbar, bool):
            raise TypeError(f"log_pbar must be a bool, found {type(log_pbar).__name__}")
        self.record_interval = positive_int(record_interval, "record_interval")
        self.record_frames = positive_int(record_frames, "record_frames")
        self.frame_skip = positive_int(frame_skip, "frame_skip")
        self.policy_exploration = policy_exploration
        self.environment = environment
        self.exploration_type = exploration_type
        self.log_keys = log_keys
        self.out_keys = out_keys
        self.suffix = suffix
        self.log_pbar = log_pbar
        self._count = 0

    @torch.no_grad()
    def __call__(self, batch: TensorDictBase | None = None) -> dict[str, Any]:
        count, self._count = self._count, self._count + 1
        if count % self.record_interval:
            return {}
        policy = self.policy_exploration
        was_training = getattr(policy, "training", None)
        if was_training is not None:
            policy.eval()
        try:
            with set_exploration_type(self.exploration_type):
                rollout = self.environment.rollout(
                    self.record_frames, policy, auto_reset=True, break_when_any_done=False
                )
        finally:
            if was_training:
                policy.train()
        out: dict[str, Any] = {}
        for key in self.log_keys:
            value = rollout.get(key, None)
            if value is None:
                raise KeyError(f"LogValidationReward: the rollout has no {key!r} entry")
            value = value.float()
            mean = value.mean()
            if key == REWARD_KEY:
                mean = mean / self.frame_skip
            name = self.out_keys[key]
            out[name] = mean.item()
            out["total_" + name] = value.sum().item()
        self._dump_videos()
        out["log_pbar"] = self.log_pbar
        return out

    def _dump_videos(self) -> None:
        transform = getattr(self.environment, "transform", None)
        for t in getattr(transform, "transforms", [transform]):
            dump = getattr(t, "dump", None)
            if callable(dump):
                dump(suffix=self.suffix)

    def register(self, trainer: Any, name: str = "recorder") -> None:
        """At ``"post_steps_log"``."""
        check_trainer(trainer, self)
        trainer.register_op("post_steps_log", self)
        trainer.register_module(check_name(name), self)

    def state_dict(self) -> dict[str, Any]:
        """The call count and the environment's state (its transforms'), when it has one."""
        get = getattr(self.environment, "state_dict", None)
        return {"_count": self._count,
                "recorder_state_dict": dict(get()) if callable(get) else {}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self._count = int(state_dict["_count"])
        load = getattr(self.environment, "load_state_dict", None)
        if callable(load) and state_dict["recorder_state_dict"]:
            load(state_dict["recorder_state_dict"])
