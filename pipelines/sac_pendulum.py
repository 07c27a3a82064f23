"""SAC on Pendulum-v1: ``streamrl run sac_pendulum``.

Collection and learning run concurrently, as one graph (the topology of ``dqn_cartpole``):

    rollout (process) --> replay sink (thread) ==[buffer + rate limiter]==> replay source
        |                                                                     (thread)
        +--> metrics sink <-- weight sync <-- learner (thread) <----------------+
                   ^               |
                   +-- evaluator <-+ (latest-value edge)

The rollout samples actions from the tanh-Gaussian actor published in a
:class:`~streamrl.ops.PolicyWeights` and stamps each batch with its
``("collector", "policy_version")``. The buffer's :class:`~streamrl.data.SampleToInsertRatio`
limiter starts sampling after ``learning_starts`` frames and then keeps
``updates_per_frame`` updates of ``batch_size`` per collected frame (SB3's ``train_freq=1,
gradient_steps=1``), within one batch of slack. The replay source draws exactly the batches
the limiter grants for the frame budget (:func:`~streamrl.ops.sample_budget`), so the run
ends by itself: last updates, final publication, final evaluation.

Hyper-parameters follow rl-zoo's Pendulum-v1 SAC (lr 1e-3, batch 256, gamma 0.99, tau 0.005,
automatic entropy tuning with target entropy -1, two 256x256 Q-networks, a 256x256 actor,
20k frames), except that the rollout sends its frames in batches of ``frames_per_batch``
(one message per batch; the ratio limiter keeps the update rate per frame).

A run directory (``runs/sac_pendulum-<timestamp>/``) receives ``config.json``,
``metrics.csv`` / ``metrics.jsonl`` (losses, ``alpha``, ``entropy``, ``policy_version``,
``staleness``, ``eval_return``), ``checkpoint.pt`` and ``learning_curve.png``. The graph's
report (busy/blocked time per operator, the bottleneck) is printed at the end.

    $ streamrl run sac_pendulum --frames 20000 --seed 1
    $ streamrl graph sac_pendulum
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import TensorDictReplayBuffer
from streamrl.envs import GymEnv, SerialEnv
from streamrl.modules import (
    MLP,
    NormalParamExtractor,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
)
from streamrl.objectives import SACLoss, SoftUpdate
from streamrl.ops import (
    Learner,
    OffPolicyGraph,
    build_offpolicy_graph,
    check_run_logger,
    default_run_logger,
    ratio_buffer,
)
from streamrl.train import check_field, check_positive_ints, driver

NAME = "sac_pendulum"

COLUMNS = [
    "frames", "wall_s", "fps", "updates", "batches", "train_return", "train_episodes",
    "eval_return", "eval_return_std", "loss_actor", "loss_qvalue", "loss_alpha", "alpha",
    "entropy", "policy_version", "batch_policy_version", "staleness", "staleness_max", "collector_version",
    "eval_s",
]


@dataclass
class SACConfig:
    """Hyper-parameters of the SAC Pendulum pipeline (defaults: rl-zoo's Pendulum-v1 SAC).

    ``frames`` is the collection budget; ``eval_interval`` is in collected frames (converted
    to learner updates through ``updates_per_frame``). ``rollout_placement`` is ``process``
    or ``inline``.
    """

    env_name: str = "Pendulum-v1"
    frames: int = 20_000
    lr: float = 1e-3
    batch_size: int = 256
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    gamma: float = 0.99
    tau: float = 0.005
    alpha_init: float = 1.0
    updates_per_frame: float = 1.0
    frames_per_batch: int = 50
    minibatches_per_sample: int = 10
    hidden: int = 256
    eval_interval: int = 2000
    eval_episodes: int = 10
    eval_seed: int = 10_000
    target_return: float = -200.0
    seed: int = 0
    threads: int = 1
    rollout_placement: str = "process"
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
                            "frames_per_batch", "minibatches_per_sample", "hidden",
                            "eval_interval", "eval_episodes", "threads")
        check_field(self, "gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]")
        check_field(self, "tau", 0.0 < self.tau <= 1.0, "in (0, 1]")
        for name in ("lr", "alpha_init", "updates_per_frame"):
            check_field(self, name, getattr(self, name) > 0, "> 0")
        check_field(self, "rollout_placement", self.rollout_placement in ("process", "inline"),
                    "'process' or 'inline'")

    @property
    def samples_per_insert(self) -> float:
        """Sampled rows per collected frame: ``updates_per_frame * batch_size``."""
        return self.updates_per_frame * self.batch_size

    @property
    def sample_size(self) -> int:
        """Rows per replay-source message (split into ``minibatches_per_sample`` updates)."""
        return self.batch_size * self.minibatches_per_sample


# ---------------------------------------------------------------------------------- building
def make_env(config: SACConfig) -> GymEnv:
    """One copy of the config's gym env."""
    return GymEnv(config.env_name)


def make_eval_env(config: SACConfig) -> SerialEnv:
    """``eval_episodes`` copies, played side by side."""
    return SerialEnv(config.eval_episodes, functools.partial(GymEnv, config.env_name))


def make_models(config: SACConfig, env: Any) -> tuple[ProbabilisticActor, ValueOperator]:
    """A tanh-Gaussian actor (``observation -> loc, scale -> action``) squashed into the
    action bounds, and a Q-network (``observation, action -> state_action_value``)."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    spec = env.action_spec
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None:
        raise ValueError(f"{NAME} needs a bounded continuous action space, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    act_dim = spec.shape[-1]
    hidden = [config.hidden] * 2
    net = nn.Sequential(
        MLP(in_features=obs_dim, out_features=2 * act_dim, num_cells=hidden,
            activation_class=nn.ReLU),
        NormalParamExtractor(),
    )
    actor = ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high}, spec=spec,
    )
    qnet = MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=hidden,
               activation_class=nn.ReLU)
    qvalue = ValueOperator(qnet, in_keys=["observation", "action"])
    return actor, qvalue


def make_buffer(config: SACConfig) -> TensorDictReplayBuffer:
    """A uniform buffer whose limiter keeps ``updates_per_frame`` updates per frame."""
    return ratio_buffer(config.buffer_size, config.samples_per_insert,
                        learning_starts=config.learning_starts, sample_size=config.sample_size,
                        frames_per_batch=config.frames_per_batch,
                        max_policy_lag=config.max_policy_lag)


def collected_frames(config: SACConfig) -> int:
    """Frames the rollout collects: the budget rounded up to whole batches."""
    return math.ceil(config.frames / config.frames_per_batch) * config.frames_per_batch


def _build(config: SACConfig, run_dir: Path | None, progress: bool,
           state: dict[str, Any] | None = None) -> OffPolicyGraph:
    torch.manual_seed(config.seed)
    probe = make_env(config)
    try:
        actor, qvalue = make_models(config, probe)
        with torch.no_grad():  # materialise nothing lazy; checks the keys once
            actor(probe.reset())
    finally:
        probe.close()
    loss = SACLoss(actor, qvalue, alpha_init=config.alpha_init, loss_function="l2")
    loss.make_value_estimator(gamma=config.gamma)
    # one optimizer: the actor, critic and temperature losses touch disjoint parameters
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr, fused=True)
    learner = Learner(loss, optim, minibatch_size=config.batch_size,
                      target_updater=SoftUpdate(loss, tau=config.tau))
    return build_offpolicy_graph(
        NAME, functools.partial(make_env, config), actor, learner, make_buffer(config),
        frames=config.frames, frames_per_batch=config.frames_per_batch,
        sample_size=config.sample_size, make_eval_env=functools.partial(make_eval_env, config),
        eval_interval=max(1, round(config.eval_interval * config.updates_per_frame)),
        eval_seed=config.eval_seed, seed=config.seed,
        # the loss's state holds the Q-networks, their targets and the temperature
        saved={"policy": actor, "loss": loss, "optimizer": optim}, state=state,
        rollout_placement=config.rollout_placement, lockstep=config.lockstep,
        run_dir=run_dir, columns=COLUMNS,
        logger=config.logger,
        progress=progress,
    )


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = driver.OffPolicyPipeline(NAME, "SAC", SACConfig, _build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
