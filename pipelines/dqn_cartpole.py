"""DQN on CartPole-v1: ``streamrl run dqn_cartpole``.

Collection and learning run concurrently, as one graph:

    rollout (process) --> replay sink (thread) ==[buffer + rate limiter]==> replay source
        |                                                                     (thread)
        +--> metrics sink <-- weight sync <-- learner (thread) <----------------+
                   ^               |
                   +-- evaluator <-+ (weight snapshots at the evaluation points)

The rollout plays an epsilon-greedy Q-policy from a :class:`~streamrl.ops.PolicyWeights`
(shared memory: the learner's publications reach the worker process without messages) and
stamps every batch with ``("collector", "policy_version")``. The buffer's
:class:`~streamrl.data.SampleToInsertRatio` limiter holds sampling until ``learning_starts``
frames are stored, then keeps ``gradient_steps`` updates per ``train_freq`` collected frames
(SB3's ratio) within one batch of slack either way, so neither side runs away. The replay
source is given the exact number of batches the limiter grants for the frame budget
(:func:`~streamrl.ops.sample_budget`): when collection ends, the learner finishes its last
updates, the final weights are published and evaluated, and the graph drains and ends.

Hyper-parameters follow rl-zoo's CartPole-v1 DQN (lr 2.3e-3, batch 64, buffer 100k,
learning_starts 1000, gamma 0.99, train_freq 256, gradient_steps 128, exploration over the
first 16% of the budget to eps 0.04, 256x256 MLP, Huber loss, gradient norm clipped at 10).
SB3 counts ``target_update_interval=10`` in env steps; with ``train_freq=256`` that copies the
target once per training round, i.e. every 128 updates, which is this pipeline's
``target_update_interval`` (counted in updates).

A run directory (``runs/dqn_cartpole-<timestamp>/``) receives ``config.json``,
``metrics.csv`` / ``metrics.jsonl`` (a row per learner message and per evaluation: losses,
``policy_version``, ``staleness``, ``staleness_max``, ``eval_return``), ``checkpoint.pt`` and
``learning_curve.png``. The graph's report (busy/blocked time per operator, the bottleneck)
is printed at the end.

Replay trains on old data: with the defaults the rows a learner message draws lag the
learner by hundreds of published policy versions on average. ``--max-policy-lag L`` bounds
it: only rows at most ``L`` versions behind are drawn (the least ``L`` that cannot stall the
graph, :func:`~streamrl.ops.min_policy_lag`, is 8 with ``--lockstep`` and 65 without, for the
defaults), which also shrinks the replay window to about ``32 L`` frames.

    $ streamrl run dqn_cartpole --frames 50000 --seed 1
    $ streamrl graph dqn_cartpole
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictSequential
from torch import nn

from streamrl.data import TensorDictReplayBuffer
from streamrl.envs import GymEnv, SerialEnv
from streamrl.modules import MLP, EGreedyModule, QValueActor
from streamrl.objectives import DQNLoss, HardUpdate
from streamrl.ops import (
    Learner,
    OffPolicyGraph,
    build_offpolicy_graph,
)
from streamrl.train import check_positive_ints, driver
from streamrl.train.dqn_config import COLUMNS
from streamrl.train.dqn_config import DQNConfig as _DQNConfig

NAME = "dqn_cartpole"


@dataclass
class DQNConfig(_DQNConfig):
    """Hyper-parameters of the DQN CartPole pipeline (defaults: rl-zoo's CartPole-v1 DQN): the
    fields of :class:`streamrl.train.dqn_config.DQNConfig` and ``hidden`` (the Q-network's
    two hidden layers).

    ``eval_interval`` is in collected frames: every ``eval_interval`` frames, the weights
    after the updates SB3 has made by then are evaluated (:meth:`eval_points`) and reported
    at the frames this run collected for them; ``target_update_interval`` counts learner
    updates.
    """

    hidden: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "hidden")


# ---------------------------------------------------------------------------------- building
def make_env(config: DQNConfig) -> SerialEnv:
    """One copy of the config's gym env (batch size ``[1]``, as ``EGreedyModule`` fails on
    unbatched input)."""
    return SerialEnv(1, functools.partial(GymEnv, config.env_name))


def make_eval_env(config: DQNConfig) -> SerialEnv:
    """``eval_episodes`` copies, played side by side."""
    return SerialEnv(config.eval_episodes, functools.partial(GymEnv, config.env_name))


def make_models(config: DQNConfig, env: Any) -> tuple[QValueActor, TensorDictSequential,
                                                       EGreedyModule]:
    """The Q-network actor, the exploration policy (actor + epsilon-greedy) and its
    epsilon-greedy module."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    n_actions = getattr(env.action_spec, "n", None)
    if n_actions is None:
        raise ValueError(f"{NAME} needs a discrete action space, found "
                         f"{type(env.action_spec).__name__} for {config.env_name!r}")
    net = MLP(in_features=obs_dim, out_features=n_actions, num_cells=[config.hidden] * 2,
              activation_class=nn.ReLU)
    actor = QValueActor(net, spec=env.action_spec)
    explore = config.make_exploration(env.action_spec)
    return actor, TensorDictSequential(actor, explore), explore


def make_learner(config: DQNConfig, actor: QValueActor) -> tuple[
        DQNLoss, torch.optim.Optimizer, HardUpdate, Learner]:
    """The update: Huber TD(0) loss against a target network copied every
    ``target_update_interval`` updates, fused Adam, gradient norm clipped at
    ``max_grad_norm``; the loss, its optimizer, the target updater and the learner."""
    loss = DQNLoss(actor, loss_function="smooth_l1", delay_value=True)
    loss.make_value_estimator(gamma=config.gamma)
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr, fused=True)
    target = HardUpdate(loss, period=config.target_update_interval)
    learner = Learner(loss, optim, minibatch_size=config.batch_size, target_updater=target,
                      max_grad_norm=config.max_grad_norm)
    return loss, optim, target, learner


def make_buffer(config: DQNConfig) -> TensorDictReplayBuffer:
    """A uniform buffer whose limiter keeps the SB3 sample-to-insert ratio."""
    return config.make_buffer()


def collected_frames(config: DQNConfig) -> int:
    """Frames the rollout collects: the budget rounded up to whole batches."""
    return math.ceil(config.frames / config.train_freq) * config.train_freq


def _build(config: DQNConfig, run_dir: Path | None, progress: bool,
           state: dict[str, Any] | None = None) -> OffPolicyGraph:
    torch.manual_seed(config.seed)
    probe = GymEnv(config.env_name)  # unbatched: the specs of one env
    try:
        actor, policy, explore = make_models(config, probe)
    finally:
        probe.close()
    loss, optim, target, learner = make_learner(config, actor)
    return build_offpolicy_graph(
        NAME, functools.partial(make_env, config), policy, learner, make_buffer(config),
        frames=config.frames, frames_per_batch=config.train_freq,
        sample_size=config.sample_size, make_eval_env=functools.partial(make_eval_env, config),
        eval_interval=config.eval_points(),
        eval_seed=config.eval_seed, seed=config.seed,
        # the policy's state holds the Q-network and the current epsilon; the loss's, the
        # target network
        saved={"policy": policy, "loss": loss, "optimizer": optim, "target_updater": target},
        state=state,
        # epsilon follows the collected frames; it is a buffer of the policy, so it reaches
        # the rollout with the weights
        exploration=[explore], extra_metrics={"epsilon": lambda: float(explore.eps)},
        rollout_placement=config.rollout_placement, ray_address=config.ray,
        rollouts=config.ray_actors,
        lockstep=config.lockstep,
        run_dir=run_dir, columns=COLUMNS,
        logger=config.logger,
        progress=progress,
    )


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = driver.OffPolicyPipeline(NAME, "DQN", DQNConfig, _build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
