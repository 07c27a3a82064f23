"""TD3 on the MuJoCo tasks (HalfCheetah-v5 by default): ``streamrl run td3_mujoco``.

Collection and learning run concurrently, as one graph (the topology of ``sac_mujoco``):

    rollout (process) --> replay sink (thread) ==[buffer + rate limiter]==> replay source
        |                                                                     (thread)
        +--> metrics sink <-- weight sync <-- learner (thread) <----------------+
                   ^               |
                   +-- evaluator <-+ (weight snapshots at the evaluation points)

The rollout plays the published deterministic actor (a tanh-squashed MLP scaled into the
action bounds) plus Gaussian exploration noise of ``exploration_noise`` times the half-range
of each action dimension, clipped into the bounds. The learner trains the twin critics at
every update (clipped double-Q targets with target policy smoothing: noise of
``target_policy_noise`` clipped at ``target_noise_clip`` on the target actor's action) and
the actor, followed by the soft target updates, every ``policy_delay``-th update
(``Learner(actor_optimizer=, policy_delay=)``). The evaluator plays the actor without noise.

Hyper-parameters follow CleanRL's ``td3_continuous_action`` (the MuJoCo benchmark's): lr 3e-4
for actor and critics, batch 256, buffer 1M, gamma 0.99, tau 0.005, exploration noise 0.1,
target policy noise 0.2 clipped at 0.5, policy delay 2, 25k random-free warm-up frames
before learning (``learning_starts``; CleanRL acts randomly during them, this pipeline plays
the initial actor with noise), 256x256 ReLU networks, one update per env step, 1M steps.
The rollout sends its frames in batches of ``frames_per_batch`` (the limiter keeps one
update per frame, within a batch of slack).

Any gymnasium MuJoCo task with a bounded continuous action space runs by flag
(``--env-name``, or its prefix ``--env``); observations are cast to float32.
``--max-policy-lag L`` bounds how many policy versions behind the learner a sampled row may
be; the metrics report ``staleness`` and ``staleness_max`` per learner message either way.

A run directory (``runs/td3_mujoco-<timestamp>/``) receives ``config.json``, ``metrics.csv``
/ ``metrics.jsonl``, the run logger's files (TensorBoard by default), ``checkpoint.pt``
(``--resume`` continues from it: networks, both optimizers, targets, replay buffer, limiter
and update counters, so the actor's delay keeps its phase) and ``learning_curve.png``.

    $ streamrl run td3_mujoco --frames 50000 --seed 1
    $ streamrl run td3_mujoco --env Walker2d-v5
    $ streamrl graph td3_mujoco
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.modules import MLP, AdditiveGaussianModule, TanhModule, ValueOperator
from streamrl.objectives import SoftUpdate, TD3Loss
from streamrl.ops import Learner, OffPolicyGraph
from streamrl.train import OffPolicyConfig, check_field, check_positive_ints, driver

NAME = "td3_mujoco"

COLUMNS = [
    "frames", "wall_s", "fps", "updates", "batches", "train_return", "train_episodes",
    "eval_return", "eval_return_std", "eval_frames", "loss_actor", "loss_qvalue", "policy_version",
    "batch_policy_version", "staleness", "staleness_max", "collector_version", "eval_s",
]


@dataclass
class TD3Config(OffPolicyConfig):
    """Hyper-parameters of the TD3 MuJoCo pipeline (defaults: CleanRL's TD3); the fields
    every off-policy pipeline shares are :class:`~streamrl.train.OffPolicyConfig`'s.
    ``exploration_noise`` is in units of each action dimension's half-range."""

    learning_starts: int = 25_000
    eval_episodes: int = 5
    target_return: float = 4800.0
    policy_delay: int = 2
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5
    exploration_noise: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "policy_delay")
        for name in ("target_policy_noise", "target_noise_clip", "exploration_noise"):
            check_field(self, name, getattr(self, name) >= 0, ">= 0")


# ---------------------------------------------------------------------------------- building
def make_models(config: TD3Config, env: Any) -> tuple[TensorDictSequential, ValueOperator,
                                                       TensorDictSequential]:
    """The deterministic actor (``observation -> action``, tanh-squashed into the bounds),
    a Q-network (``observation, action -> state_action_value``) and the exploration policy
    (the actor, then Gaussian noise)."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    spec = env.action_spec
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None:
        raise ValueError(f"{NAME} needs a bounded continuous action space, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    act_dim = spec.shape[-1]
    hidden = [config.hidden] * 2
    actor = TensorDictSequential(
        TensorDictModule(MLP(in_features=obs_dim, out_features=act_dim, num_cells=hidden,
                             activation_class=nn.ReLU),
                         in_keys=["observation"], out_keys=["action_param"]),
        TanhModule(["action_param"], ["action"], spec=spec),
    )
    qnet = MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=hidden,
               activation_class=nn.ReLU)
    qvalue = ValueOperator(qnet, in_keys=["observation", "action"])
    noise = AdditiveGaussianModule(spec, sigma_init=config.exploration_noise,
                                   sigma_end=config.exploration_noise, annealing_num_steps=1,
                                   std=(high - low) / 2)
    return actor, qvalue, TensorDictSequential(actor, noise)


def build(config: TD3Config, run_dir: Path | None, progress: bool,
          state: dict[str, Any] | None = None) -> OffPolicyGraph:
    """The concurrent TD3 graph of ``config``, restored from ``state`` (a checkpoint)."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        actor, qvalue, policy = make_models(config, probe)
        with torch.no_grad():  # checks the keys once
            policy(probe.reset())
    finally:
        probe.close()
    learner, saved = make_learner(config, actor, qvalue, probe.action_spec)
    return config.graph(NAME, policy, learner, saved=saved, state=state, run_dir=run_dir,
                        progress=progress, columns=COLUMNS)


def make_learner(config: TD3Config, actor: nn.Module, qvalue: nn.Module, action_spec: Any, *,
                 minibatch_size: int | None = None, reward_key: Any = None,
                 lock: Any = None) -> tuple[Learner, dict[str, Any]]:
    """TD3's learner for ``actor`` and ``qvalue`` (twin critics, delayed actor, soft targets)
    and the pieces a checkpoint saves (the loss, which holds the actor, the critics and both
    targets, and the two optimizers). ``minibatch_size``: rows per update
    (``config.batch_size`` when ``None``); ``reward_key`` for a reward stored elsewhere
    than ``("next", "reward")``; ``lock`` shared with another learner (``Learner(lock=)``)."""
    loss = TD3Loss(actor, qvalue, action_spec=action_spec, num_qvalue_nets=2,
                   policy_noise=config.target_policy_noise,
                   noise_clip=config.target_noise_clip, loss_function="l2",
                   deactivate_vmap=True)  # a loop over the two critics: faster on CPU
    if reward_key is not None:
        loss.set_keys(reward=reward_key)
    loss.make_value_estimator(gamma=config.gamma)
    # the critics' stacked copies are the loss's own tensors; the actor's are the policy's
    critics = [p for p in loss.qvalue_network_params.values(True, True) if p.requires_grad]
    critic_optim = torch.optim.Adam(critics, lr=config.lr, fused=True)
    actor_optim = torch.optim.Adam(actor.parameters(), lr=config.lr, fused=True)
    learner = Learner(loss, critic_optim,
                      minibatch_size=minibatch_size or config.batch_size,
                      loss_keys=["loss_qvalue"], actor_optimizer=actor_optim,
                      actor_loss_keys=["loss_actor"], policy_delay=config.policy_delay,
                      skip_actor_loss=True,  # the critics' loss alone between actor updates
                      target_updater=SoftUpdate(loss, tau=config.tau), lock=lock)
    return learner, {"loss": loss, "optimizer": critic_optim, "actor_optimizer": actor_optim}


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = driver.OffPolicyPipeline(NAME, "TD3", TD3Config, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
