"""DQN on Atari (Pong by default): ``streamrl run dqn_atari``.

The graph of ``dqn_cartpole`` (collection and learning concurrent, a ratio-limited replay
buffer, weight sync, evaluator; ``--lockstep``, ``--max-policy-lag``) on
:func:`streamrl.envs.make_atari_env`'s preprocessing (no-op starts, 4-frame skip with max
pooling, FIRE on reset, 84x84 gray frames, rewards clipped to their sign, 4 stacked frames):

    rollout (process) --> replay sink (thread) ==[buffer + rate limiter]==> replay source
        |                                                                     (thread)
        +--> metrics sink <-- weight sync <-- learner (thread) <----------------+
                   ^               |
                   +-- evaluator <-+ (weight snapshots at the evaluation points)

Hyper-parameters follow rl-zoo's Atari DQN (``dqn.yml``, ``atari``): buffer 100k,
lr 1e-4, batch 32, learning_starts 100k, target network copied every 1000 steps (250
updates), train_freq 4, gradient_steps 1, epsilon 1.0 -> 0.01 over the first 10% of the
budget, gamma 0.99, Huber loss (SB3's smooth L1), gradient norm clipped at 10, 10M steps, one
env. The Q-network is the Nature CNN (Mnih et al. 2015): conv 32 8x8 stride 4, 64 4x4 stride
2, 64 3x3 stride 1, Linear 512, ReLUs, on the uint8 frames divided by 255 inside the network.

**Frames are agent steps.** ``--frames``, ``--learning-starts``, ``--buffer-size``,
``--target-update-interval``, ``--eval-interval`` and the exploration schedule count agent
steps, as SB3's ``n_timesteps`` does; each is 4 emulator frames (frame skip 4), so the
10M-step default is 40M emulator frames.

**Lives.** A lost life ends the trajectory for bootstrapping (the loss reads
``("next", "end-of-life")`` as its done and terminated flags,
``EndOfLifeTransform().register_keys(loss)``: SB3's ``EpisodicLifeEnv``), while the env
plays on to the game's end: episodes, ``train_return`` (the unclipped score,
``"episode_reward"``) and the evaluation returns (an env without reward clipping, greedy
actions) are whole games. As the env never resets on a lost life, a greedy Breakout agent
that does not press FIRE waits until the game's limit (27,000 steps, or ``--eval-max-steps``).

**Replay stores each frame once** (:func:`streamrl.ops.frame_ratio_buffer`): a row holds
the newest 84x84 frame of the stack and of the next stack, and the stacks are rebuilt at
sampling from the rows before it in the same episode. Measured (Pong, a checkpoint's
storage): 14,240 bytes per row (the two frames, 14,112 bytes; the one-hot action, Q-values,
flags and counters, 128), so the 100k buffer is 1.42 GB instead of 5.66 GB for the stacks as
collected (56,576 bytes per row).

A run directory (``runs/dqn_atari-<timestamp>/``) receives ``config.json``, ``metrics.csv``
/ ``metrics.jsonl`` (losses, ``epsilon``, ``policy_version``, ``staleness``,
``staleness_max``, ``train_return``, ``eval_return``), the TensorBoard logs,
``checkpoint.pt`` (networks, optimizer, replay buffer: ``--resume`` continues from it, with
new episodes) and ``learning_curve.png``.

    $ streamrl run dqn_atari --frames 10000000
    $ streamrl run dqn_atari --env-name BreakoutNoFrameskip-v4 --target-return 300
    $ streamrl graph dqn_atari
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictSequential
from torch import nn

from streamrl.data import TensorDictReplayBuffer
from streamrl.envs import make_atari_env
from streamrl.envs.transforms import CatFrames, EndOfLifeTransform, StepCounter, TransformedEnv
from streamrl.modules import MLP, ConvNet, EGreedyModule, QValueActor
from streamrl.objectives import DQNLoss, HardUpdate
from streamrl.ops import (
    Learner,
    OffPolicyGraph,
    build_offpolicy_graph,
    frame_ratio_buffer,
)
from streamrl.train import check_field, check_positive_ints, driver
from streamrl.train.dqn_config import COLUMNS, DQNConfig

NAME = "dqn_atari"
PIXELS = ["pixels", ("next", "pixels")]


@dataclass
class DQNAtariConfig(DQNConfig):
    """Hyper-parameters of the DQN Atari pipeline (defaults: rl-zoo's Atari DQN): the fields of
    :class:`streamrl.train.dqn_config.DQNConfig`, ``frame_stack`` and ``eval_max_steps``.

    Counts are agent steps (4 emulator frames each). ``target_update_interval`` is in agent
    steps, as SB3's (the target is copied every ``target_update_interval * gradient_steps /
    train_freq`` updates); ``eval_interval`` too. ``eval_max_steps`` caps an evaluation game
    (``None``: the game's own limit, 27,000 steps). ``rollout_placement`` is ``process`` or
    ``inline``.
    """

    env_name: str = "PongNoFrameskip-v4"
    frames: int = 10_000_000
    lr: float = 1e-4
    batch_size: int = 32
    buffer_size: int = 100_000
    learning_starts: int = 100_000
    target_update_interval: int = 1000
    train_freq: int = 4
    gradient_steps: int = 1
    exploration_fraction: float = 0.1
    exploration_final_eps: float = 0.01
    eval_interval: int = 250_000
    eval_episodes: int = 5
    target_return: float = 20.0
    frame_stack: int = 4
    eval_max_steps: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        name = self.env_name
        check_field(self, "env_name", isinstance(name, str) and (
            name.endswith("NoFrameskip-v4") or (name.startswith("ALE/") and name.endswith("-v5"))),
            "an Atari id stepping one frame at a time: '<Game>NoFrameskip-v4' or 'ALE/<Game>-v5'")
        check_positive_ints(self, "frame_stack")
        steps = self.eval_max_steps
        check_field(self, "eval_max_steps", steps is None or (
            isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1),
            "None or an int >= 1")

    @property
    def target_period(self) -> int:
        """``target_update_interval`` in learner updates."""
        return max(1, round(self.target_update_interval * self.gradient_steps / self.train_freq))


# ---------------------------------------------------------------------------------- building
def make_env(config: DQNAtariConfig) -> TransformedEnv:
    """The training env: one preprocessed game (clipped rewards, ``("next",
    "end-of-life")``)."""
    return make_atari_env(config.env_name, num_envs=1, frame_stack=config.frame_stack)


def make_eval_env(config: DQNAtariConfig) -> TransformedEnv:
    """``eval_episodes`` games side by side, rewards unclipped (the returns are scores)."""
    env = make_atari_env(config.env_name, num_envs=config.eval_episodes,
                         frame_stack=config.frame_stack, clip_reward=False)
    if config.eval_max_steps is not None:
        env = TransformedEnv(env, StepCounter(max_steps=config.eval_max_steps))
    return env


class _Frames(nn.Module):
    """uint8 frames to floats in [0, 1] (the buffer keeps bytes; the network divides)."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.float() / 255.0


def nature_cnn(frame_stack: int, n_actions: int) -> nn.Sequential:
    """Mnih et al. (2015)'s Q-network on ``[*batch, frame_stack, 84, 84]`` uint8 frames."""
    return nn.Sequential(
        _Frames(),
        ConvNet(in_features=frame_stack, num_cells=[32, 64, 64], kernel_sizes=[8, 4, 3],
                strides=[4, 2, 1], activation_class=nn.ReLU),
        MLP(in_features=64 * 7 * 7, out_features=n_actions, num_cells=[512],
            activation_class=nn.ReLU),
    )


def make_models(config: DQNAtariConfig, action_spec: Any) -> tuple[
        QValueActor, TensorDictSequential, EGreedyModule]:
    """The Q-network actor (on ``"pixels"``), the exploration policy (actor +
    epsilon-greedy) and its epsilon-greedy module, for one env's one-hot ``action_spec``."""
    net = nature_cnn(config.frame_stack, action_spec.shape[-1])
    actor = QValueActor(net, in_keys=["pixels"], spec=action_spec)
    explore = config.make_exploration(action_spec)
    return actor, TensorDictSequential(actor, explore), explore


def make_buffer(config: DQNAtariConfig) -> TensorDictReplayBuffer:
    """A buffer that stores each frame once, with SB3's sample-to-insert ratio."""
    stack = CatFrames(config.frame_stack, -3, in_keys=PIXELS, padding="constant")
    return frame_ratio_buffer(config.buffer_size, config.samples_per_insert, frame_stack=stack,
                              learning_starts=config.learning_starts,
                              sample_size=config.sample_size, frames_per_batch=config.train_freq,
                              max_policy_lag=config.max_policy_lag)


def _build(config: DQNAtariConfig, run_dir: Path | None, progress: bool,
           state: dict[str, Any] | None = None) -> OffPolicyGraph:
    torch.manual_seed(config.seed)
    probe = make_env(config)
    try:
        action_spec = probe.action_spec
    finally:
        probe.close()
    actor, policy, explore = make_models(config, action_spec)
    loss = DQNLoss(actor, loss_function="smooth_l1", delay_value=True)
    EndOfLifeTransform().register_keys(loss)  # a lost life is terminal for bootstrapping
    loss.make_value_estimator(gamma=config.gamma)
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr)
    target = HardUpdate(loss, period=config.target_period)
    learner = Learner(loss, optim, minibatch_size=config.batch_size, target_updater=target,
                      max_grad_norm=config.max_grad_norm)
    return build_offpolicy_graph(
        NAME, functools.partial(make_env, config), policy, learner, make_buffer(config),
        frames=config.frames, frames_per_batch=config.train_freq,
        # replay counts stored rows: frame_stack rows make one transition's stacks
        sample_size=config.sample_size * config.frame_stack,
        make_eval_env=functools.partial(make_eval_env, config),
        eval_interval=config.eval_points(),
        eval_seed=config.eval_seed, seed=config.seed,
        saved={"policy": policy, "loss": loss, "optimizer": optim, "target_updater": target},
        state=state,
        exploration=[explore], extra_metrics={"epsilon": lambda: float(explore.eps)},
        rollout_placement=config.rollout_placement, ray_address=config.ray,
        rollouts=config.ray_actors,
        lockstep=config.lockstep,
        run_dir=run_dir, columns=COLUMNS, logger=config.logger, progress=progress,
        return_key=("next", "episode_reward"),
    )


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = driver.OffPolicyPipeline(NAME, "DQN", DQNAtariConfig, _build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
