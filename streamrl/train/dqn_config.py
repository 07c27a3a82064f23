"""DQNConfig: the fields, checks and derived sizes the DQN pipelines share (``dqn_cartpole``,
``dqn_atari``); a pipeline subclasses it with its defaults and its own fields.

>>> config = DQNConfig(batch_size=32, minibatches_per_sample=4, gradient_steps=1, train_freq=4)
>>> config.sample_size, config.samples_per_insert
(128, 8.0)
>>> config.eval_points()[:2]  # SB3's updates at 5,000 and 10,000 frames
[999, 2249]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamrl.modules import EGreedyModule
from streamrl.ops import check_run_logger, default_run_logger, ratio_buffer
from streamrl.train.config import check_field, check_offpolicy_run_fields, check_positive_ints

__all__ = ["DQNConfig"]

#: the metrics columns of a DQN pipeline's run (``metrics.csv``)
COLUMNS = [
    "frames", "wall_s", "fps", "updates", "batches", "train_return", "train_episodes",
    "eval_return", "eval_return_std", "eval_frames", "loss", "grad_norm", "epsilon", "policy_version",
    "batch_policy_version", "staleness", "staleness_max", "collector_version", "eval_s",
]


@dataclass
class DQNConfig:
    """Hyper-parameters of a DQN pipeline (defaults: rl-zoo's CartPole-v1 DQN).

    ``frames`` is the collection budget (and the horizon of the exploration schedule, which
    goes from ``exploration_initial_eps`` to ``exploration_final_eps`` over its first
    ``exploration_fraction``); the learner takes ``gradient_steps`` minibatches of
    ``batch_size`` per ``train_freq`` collected frames, ``minibatches_per_sample`` of them per
    replay message. ``rollout_placement`` is ``process``, ``inline`` or ``ray`` (a Ray actor; ``RAY_ADDRESS`` names the cluster). A subclass says in
    which unit its ``target_update_interval`` counts.
    """

    env_name: str = "CartPole-v1"
    frames: int = 50_000
    lr: float = 2.3e-3
    batch_size: int = 64
    buffer_size: int = 100_000
    learning_starts: int = 1000
    gamma: float = 0.99
    target_update_interval: int = 128
    train_freq: int = 256
    gradient_steps: int = 128
    minibatches_per_sample: int = 16
    exploration_fraction: float = 0.16
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.04
    max_grad_norm: float = 10.0
    eval_interval: int = 5000
    eval_episodes: int = 10
    eval_seed: int = 10_000
    target_return: float = 475.0
    seed: int = 0
    threads: int = 1
    rollout_placement: str = "process"
    # run the rollout on a Ray actor: "local" starts a Ray here, "auto" joins the running
    # cluster, "HOST:PORT" its head (rollout_placement becomes "ray"); None: RAY_ADDRESS
    # names the cluster when rollout_placement is "ray"
    ray: str | None = None
    # with ray: rollouts on their own actors, all feeding the one replay buffer
    ray_actors: int = 1
    # the most policy versions a sampled row may lag the learner (None: no bound, plain
    # uniform replay over the buffer); see streamrl.ops.min_policy_lag for the least allowed
    max_policy_lag: int | None = None
    # collect each batch only after the updates the frames before it grant (SB3's order):
    # learning no longer depends on thread timing, so a seed gives one result
    lockstep: bool = False
    # a streamrl.record logger beside metrics.csv/jsonl: tensorboard (when installed), csv,
    # wandb (offline) or none
    logger: str = default_run_logger()

    def __post_init__(self) -> None:
        check_run_logger(self.logger)
        check_positive_ints(self, "frames", "batch_size", "buffer_size", "learning_starts",
                            "target_update_interval", "train_freq", "gradient_steps",
                            "minibatches_per_sample", "eval_interval", "eval_episodes",
                            "threads")
        check_field(self, "gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]")
        check_field(self, "lr", self.lr > 0, "> 0")
        check_field(self, "max_grad_norm", self.max_grad_norm > 0, "> 0")
        check_field(self, "exploration_fraction", 0.0 < self.exploration_fraction <= 1.0,
                    "in (0, 1]")
        for name in ("exploration_initial_eps", "exploration_final_eps"):
            check_field(self, name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")
        check_offpolicy_run_fields(self)

    @property
    def samples_per_insert(self) -> float:
        """Sampled rows per collected frame: ``gradient_steps * batch_size / train_freq``."""
        return self.gradient_steps * self.batch_size / self.train_freq

    @property
    def sample_size(self) -> int:
        """Rows per replay-source message (split into ``minibatches_per_sample`` updates)."""
        return self.batch_size * self.minibatches_per_sample

    def eval_points(self) -> list[int]:
        """The learner update counts at which the run evaluates: at every ``eval_interval``
        frames up to the budget, the updates SB3's DQN has made when it evaluates there
        (``gradient_steps`` after each ``train_freq`` collected frames once more than
        ``learning_starts`` were collected; a round's updates follow the callbacks of its
        last frame), so that both evaluate weights trained as much. Points before the first
        update are skipped.

        >>> DQNConfig().eval_points()[:3]  # 128 * (4999 // 256 - 1000 // 256) ...
        [2048, 4608, 7040]
        """
        points = []
        for frames in range(self.eval_interval, self.frames + 1, self.eval_interval):
            rounds = (frames - 1) // self.train_freq - self.learning_starts // self.train_freq
            if rounds > 0:
                points.append(rounds * self.gradient_steps)
        return points

    def make_exploration(self, action_spec: Any, action_key: Any = "action") -> EGreedyModule:
        """The epsilon-greedy module on ``action_key`` (e.g. an agent group's ``("agents",
        "action")``; ``action_spec`` is that action's spec or a Composite holding it):
        epsilon from ``exploration_initial_eps`` to ``exploration_final_eps`` over the first
        ``exploration_fraction`` of ``frames``."""
        return EGreedyModule(
            action_spec, eps_init=self.exploration_initial_eps,
            eps_end=self.exploration_final_eps,
            annealing_num_steps=max(1, int(self.exploration_fraction * self.frames)),
            action_key=action_key,
        )

    def make_buffer(self) -> Any:
        """A uniform buffer of ``buffer_size`` rows whose limiter keeps the sample-to-insert
        ratio (:func:`~streamrl.ops.ratio_buffer`), bounded by ``max_policy_lag``."""
        return ratio_buffer(self.buffer_size, self.samples_per_insert,
                            learning_starts=self.learning_starts, sample_size=self.sample_size,
                            frames_per_batch=self.train_freq,
                            max_policy_lag=self.max_policy_lag)
