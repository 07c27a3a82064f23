"""OffPolicyConfig: the fields, checks and graph of an actor-critic off-policy pipeline on a
gym env (SAC, TD3 ...): its env, its ratio-limited replay buffer and its concurrent graph."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from streamrl.envs import DoubleToFloat, EnvBase, GymEnv, SerialEnv, TransformedEnv
from streamrl.ops import (
    Learner,
    OffPolicyGraph,
    build_offpolicy_graph,
    check_run_logger,
    default_run_logger,
    ratio_buffer,
)
from streamrl.train.config import (
    check_field,
    check_offpolicy_run_fields,
    check_positive_ints,
    int_at_least,
)

__all__ = ["OffPolicyConfig"]


@dataclass
class OffPolicyConfig:
    """What every actor-critic off-policy pipeline configures (defaults: SB3's off-policy
    defaults: one update of ``batch_size`` per collected frame, buffer 1M, gamma 0.99,
    tau 0.005, 256x256 networks). A pipeline subclasses it with its algorithm's fields and
    its own defaults, and builds its graph with :meth:`graph`.

    ``frames`` is the collection budget; ``eval_interval`` is in collected frames
    (converted to learner updates through ``updates_per_frame``). The rollout sends
    ``frames_per_batch`` frames per message and the replay source draws
    ``minibatches_per_sample`` minibatches per message. ``rollout_placement`` is
    ``process``, ``inline`` or ``ray`` (a Ray actor; ``RAY_ADDRESS`` names the cluster). ``max_policy_lag``: the most policy versions a sampled row
    may lag the learner (``None``: plain uniform replay; see
    :func:`~streamrl.ops.min_policy_lag` for the least allowed). ``lockstep``: collect each
    batch only after the updates the frames before it grant (SB3's order; a seed then gives
    one result). ``logger``: a :mod:`streamrl.record` logger beside ``metrics.csv``
    (``tensorboard`` when installed, ``csv``, ``wandb`` or ``none``). ``init_random_frames``:
    the first frames take uniformly random actions (None: ``learning_starts`` of them, as
    SB3's off-policy algorithms; 0: none).

    >>> config = OffPolicyConfig(env_name="Pendulum-v1", batch_size=64)
    >>> config.sample_size, config.samples_per_insert
    (640, 64.0)
    >>> OffPolicyConfig(tau=0.0)
    Traceback (most recent call last):
    ...
    ValueError: OffPolicyConfig.tau must be in (0, 1], found 0.0
    """

    env_name: str = "HalfCheetah-v5"
    frames: int = 1_000_000
    lr: float = 3e-4
    batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    gamma: float = 0.99
    tau: float = 0.005
    updates_per_frame: float = 1.0
    frames_per_batch: int = 50
    minibatches_per_sample: int = 10
    hidden: int = 256
    eval_interval: int = 10_000
    eval_episodes: int = 10
    eval_seed: int = 10_000
    target_return: float = math.inf
    seed: int = 0
    threads: int = 1
    rollout_placement: str = "process"
    ray: str | None = None  # as DQNConfig.ray
    ray_actors: int = 1  # as DQNConfig.ray_actors
    max_policy_lag: int | None = None
    lockstep: bool = False
    logger: str = default_run_logger()
    # frames collected with uniformly random actions before the policy acts (None:
    # learning_starts, as SB3's off-policy algorithms; 0: the policy from the first frame)
    init_random_frames: int | None = None

    def __post_init__(self) -> None:
        check_run_logger(self.logger)
        check_positive_ints(self, "frames", "batch_size", "buffer_size", "learning_starts",
                            "frames_per_batch", "minibatches_per_sample", "hidden",
                            "eval_interval", "eval_episodes", "threads")
        check_field(self, "gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]")
        check_field(self, "tau", 0.0 < self.tau <= 1.0, "in (0, 1]")
        for name in ("lr", "updates_per_frame"):
            check_field(self, name, getattr(self, name) > 0, "> 0")
        check_offpolicy_run_fields(self)
        n = self.init_random_frames
        check_field(self, "init_random_frames", n is None or int_at_least(n, 0),
                    "None or an int >= 0")

    @property
    def samples_per_insert(self) -> float:
        """Sampled rows per collected frame: ``updates_per_frame * batch_size``."""
        return self.updates_per_frame * self.batch_size

    @property
    def sample_size(self) -> int:
        """Rows per replay-source message (split into ``minibatches_per_sample`` updates)."""
        return self.batch_size * self.minibatches_per_sample

    def collected_frames(self) -> int:
        """Frames the rollout collects: the budget rounded up to whole batches."""
        return math.ceil(self.frames / self.frames_per_batch) * self.frames_per_batch

    def make_env(self) -> EnvBase:
        """One copy of the gym env, float64 entries cast to float32 (MuJoCo's observations
        are float64; the networks and the replay buffer take float32)."""
        return TransformedEnv(GymEnv(self.env_name), DoubleToFloat())

    def make_eval_env(self) -> SerialEnv:
        """``eval_episodes`` copies of :meth:`make_env`'s env, played side by side."""
        return SerialEnv(self.eval_episodes, self.make_env)

    def make_buffer(self) -> Any:
        """A uniform buffer whose limiter keeps ``updates_per_frame`` updates per frame
        (:func:`~streamrl.ops.ratio_buffer`), bounded by ``max_policy_lag``."""
        return ratio_buffer(self.buffer_size, self.samples_per_insert,
                            learning_starts=self.learning_starts, sample_size=self.sample_size,
                            frames_per_batch=self.frames_per_batch,
                            max_policy_lag=self.max_policy_lag)

    def graph(self, name: str, policy: nn.Module, learner: Learner, *,
              saved: Mapping[str, Any], state: Mapping[str, Any] | None,
              run_dir: Path | None, progress: bool, columns: Sequence[str],
              buffer: Any = None, **options: Any) -> OffPolicyGraph:
        """The concurrent graph (:func:`~streamrl.ops.build_offpolicy_graph`) named
        ``name`` that plays ``policy`` in :meth:`make_env`'s env and trains ``learner`` from
        ``buffer`` (default: :meth:`make_buffer`'s; e.g. one of them with a write transform
        added), as configured; ``saved``, ``state``, ``run_dir``, ``progress``, ``columns``
        and ``options`` (e.g. ``exploration=``) are passed on."""
        return build_offpolicy_graph(
            name, self.make_env, policy, learner,
            self.make_buffer() if buffer is None else buffer,
            frames=self.frames, frames_per_batch=self.frames_per_batch,
            sample_size=self.sample_size, make_eval_env=self.make_eval_env,
            eval_interval=max(1, round(self.eval_interval * self.updates_per_frame)),
            eval_seed=self.eval_seed, seed=self.seed, saved=saved, state=state,
            rollout_placement=self.rollout_placement, ray_address=self.ray,
            rollouts=self.ray_actors,
            lockstep=self.lockstep,
            init_random_frames=(self.learning_starts if self.init_random_frames is None
                                else self.init_random_frames),
            run_dir=run_dir, columns=columns, logger=self.logger, progress=progress,
            **options,
        )

