"""QMIX, VDN or independent DQN on PettingZoo MPE simple_spread: ``streamrl run qmix_mpe``.

Three agents cover three landmarks (``simple_spread_v3`` from the ``mpe2`` package, discrete
actions, 25 steps per episode). Collection and learning run concurrently, as one graph (the
topology of ``dqn_cartpole``):

    rollout (process) --> replay sink (thread) ==[buffer + rate limiter]==> replay source
        |                                                                     (thread)
        +--> metrics sink <-- weight sync <-- learner (thread) <----------------+
                   ^               |
                   +-- evaluator <-+ (weight snapshots at the evaluation points)

The agents share one Q-network (a decentralised :class:`~streamrl.modules.MultiAgentMLP`
with ``share_params=True``: each agent's Q-values from its own observation) followed by a
:class:`~streamrl.modules.QValueModule` (each agent's greedy action and its value) and
epsilon-greedy exploration on the group's action (TorchRL's QMIX / IQL layout). ``--mixer``
picks the update:

* ``qmix`` (default): :class:`~streamrl.objectives.multiagent.QMixerLoss` with a
  :class:`~streamrl.modules.QMixer` over the env's global state (``return_state=True``):
  one TD error on the mixed team value.
* ``vdn``: the same loss with a :class:`~streamrl.modules.VDNMixer` (the team value is the
  sum of the agents' values).
* ``none``: independent DQN (IQL): :class:`~streamrl.objectives.DQNLoss` with the group's
  keys, one TD error per agent on its own reward, done and bootstrap.

**Rewards.** simple_spread gives each agent ``(1 - local_ratio)`` times the shared reward
(minus the distances from each landmark to its nearest agent) plus ``local_ratio`` times
its own collision penalty. The env is wrapped in :class:`TeamReward`, which writes the
team reward ``("next", "reward")`` as the **mean** of the agents' rewards, as TorchRL's
``qmix_vdn.py`` and BenchMARL's QMIX/VDN do: the mixers are trained on it, and it keeps
the scale of one agent's reward, so the three methods' values, losses and learning rates
compare. The agents' own rewards stay at ``("next", "agent", "reward")`` for ``none``.
``train_return`` and ``eval_return`` are the team return: the team reward summed over an
episode's steps, i.e. the mean over agents of their returns.

Defaults are sized for a 2-core CPU: 100k team frames (4,000 episodes; an env step of all
three agents is one frame) collected by 4 envs side by side in one worker process, a 64x64
Q-network, one update of 32 transitions per 4 frames after 1,000 frames, epsilon from 1 to
0.05 over the first 20% of the budget, the target networks copied every 200 updates, Adam
lr 5e-4, MSE TD loss (pymarl's QMIX), gradient norm clipped at 10, and gamma 0.9 (TorchRL's
``qmix_vdn.py``): with 0.99 or 0.95, QMIX's values ran away here (seed 0: the loss grew
from 0.6 to 1e8 over 100k frames, evaluations fell from the random policy's -29 to -60),
while VDN and independent DQN learned. A run takes about two minutes;
``benchmarks/qmix_spread.py`` compares the three mixers over seeds.

A run directory (``runs/qmix_mpe-<timestamp>/``) receives ``config.json``, ``metrics.csv``
/ ``metrics.jsonl``, the run logger's files (TensorBoard by default), ``checkpoint.pt`` and
``learning_curve.png``. ``--resume`` continues from a checkpoint (networks, optimizer,
targets, epsilon, replay buffer and limiter counters); as in every off-policy graph, a
resumed run starts new episodes (their ids follow the stored ones).

    $ streamrl run qmix_mpe --frames 100000 --seed 1
    $ streamrl run qmix_mpe --mixer vdn
    $ streamrl graph qmix_mpe
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.data.specs import Categorical, OneHot
from streamrl.envs import SerialEnv, TransformedEnv
from streamrl.envs.libs.pettingzoo import PettingZooEnv
from streamrl.envs.transforms import TeamReward
from streamrl.modules import EGreedyModule, MultiAgentMLP, QMixer, QValueModule, VDNMixer
from streamrl.objectives import DQNLoss, HardUpdate, LossModule
from streamrl.objectives.multiagent import QMixerLoss
from streamrl.ops import Learner, OffPolicyGraph, build_offpolicy_graph
from streamrl.train import check_field, check_positive_ints, driver
from streamrl.train.dqn_config import COLUMNS as _DQN_COLUMNS
from streamrl.train.dqn_config import DQNConfig

NAME = "qmix_mpe"
MIXERS = ("qmix", "vdn", "none")
COLUMNS = _DQN_COLUMNS


@dataclass
class QMixConfig(DQNConfig):
    """Hyper-parameters of the QMIX MPE pipeline: the fields of
    :class:`streamrl.train.dqn_config.DQNConfig` (``target_update_interval`` counts learner
    updates; ``frames`` counts team frames: steps of all agents at once) and:

    ``mixer`` (``qmix``, ``vdn`` or ``none``: independent DQN), the env's ``n_agents``
    (simple_spread's ``N``), ``local_ratio`` and ``max_cycles``, ``num_envs`` (envs the
    rollout steps side by side; ``train_freq`` must be a multiple of it), ``hidden`` (the
    Q-network's two hidden layers), ``mixing_embed_dim`` (QMIX's mixing width),
    ``loss_function`` (``l2``, ``smooth_l1`` or ``l1``) and ``double_q`` (double-DQN targets:
    the live network picks the next actions, the target network values them; pymarl's
    ``double_q``).

    >>> QMixConfig(mixer="coma")
    Traceback (most recent call last):
    ...
    ValueError: QMixConfig.mixer must be one of ('qmix', 'vdn', 'none'), found 'coma'
    """

    env_name: str = "simple_spread_v3"
    mixer: str = "qmix"
    double_q: bool = False
    n_agents: int = 3
    local_ratio: float = 0.5
    max_cycles: int = 25
    num_envs: int = 4
    frames: int = 100_000
    lr: float = 5e-4
    batch_size: int = 32
    buffer_size: int = 100_000
    learning_starts: int = 1000
    gamma: float = 0.9
    target_update_interval: int = 200
    train_freq: int = 100
    gradient_steps: int = 25
    minibatches_per_sample: int = 25
    exploration_fraction: float = 0.2
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    max_grad_norm: float = 10.0
    eval_interval: int = 10_000
    eval_episodes: int = 10
    # a team return (mean over agents) that well-spread agents reach; random play: ~ -29
    target_return: float = -12.0
    hidden: int = 64
    mixing_embed_dim: int = 32
    loss_function: str = "l2"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mixer not in MIXERS:
            raise ValueError(f"QMixConfig.mixer must be one of {MIXERS}, found {self.mixer!r}")
        check_positive_ints(self, "n_agents", "max_cycles", "num_envs", "hidden",
                            "mixing_embed_dim")
        check_field(self, "local_ratio", 0.0 <= self.local_ratio <= 1.0, "in [0, 1]")
        check_field(self, "loss_function", self.loss_function in ("l2", "smooth_l1", "l1"),
                    "'l2', 'smooth_l1' or 'l1'")
        check_field(self, "train_freq", self.train_freq % self.num_envs == 0,
                    f"a multiple of num_envs={self.num_envs}")

    def env_kwargs(self) -> dict[str, Any]:
        """The PettingZoo task's arguments: discrete actions, ``max_cycles``, and for
        simple_spread ``N`` and ``local_ratio``."""
        kwargs: dict[str, Any] = {"continuous_actions": False, "max_cycles": self.max_cycles}
        if self.env_name.rpartition("/")[2].startswith("simple_spread"):
            kwargs.update(N=self.n_agents, local_ratio=self.local_ratio)
        return kwargs


# ---------------------------------------------------------------------------------- the env
def make_one_env(config: QMixConfig) -> TransformedEnv:
    """One copy of the PettingZoo task (parallel API; the global ``"state"`` with the QMIX
    mixer) with its :class:`TeamReward`. ``ValueError`` unless its agents form one group."""
    env = PettingZooEnv(config.env_name, parallel=True, return_state=config.mixer == "qmix",
                        **config.env_kwargs())
    groups = env.group_map
    if len(groups) != 1:
        env.close()
        raise ValueError(f"{NAME} trains one cooperative agent group, found {len(groups)} "
                         f"groups in {config.env_name!r}: {dict(groups)}")
    return TransformedEnv(env, TeamReward(next(iter(groups))))


def make_env(config: QMixConfig) -> SerialEnv:
    """``num_envs`` copies, stepped side by side (batch size ``[num_envs]``)."""
    return SerialEnv(config.num_envs, functools.partial(make_one_env, config))


def make_eval_env(config: QMixConfig) -> SerialEnv:
    """``eval_episodes`` copies, played side by side."""
    return SerialEnv(config.eval_episodes, functools.partial(make_one_env, config))


# ---------------------------------------------------------------------------------- networks
def _group(env: Any) -> str:
    return next(iter(env.group_map))


def make_models(config: QMixConfig, env: Any) -> tuple[TensorDictSequential,
                                                       TensorDictSequential, EGreedyModule]:
    """The shared Q-network (observation -> per-agent action values -> greedy action and
    its value), the exploration policy (Q-network + epsilon-greedy) and its epsilon-greedy
    module, for ``env`` (one copy: unbatched specs). ``ValueError`` for an env whose
    agents' actions are not discrete."""
    group = _group(env)
    spec = env.full_action_spec_unbatched
    action = spec[group, "action"]
    if not isinstance(action, (Categorical, OneHot)):
        raise ValueError(f"{NAME} needs discrete actions (Categorical or OneHot), found "
                         f"{type(action).__name__} at {(group, 'action')!r} in "
                         f"{config.env_name!r}")
    obs = env.observation_spec[group, "observation"]
    net = MultiAgentMLP(obs.shape[-1], action.n, obs.shape[-2], centralized=False,
                        share_params=True, depth=2, num_cells=config.hidden,
                        activation_class=nn.ReLU)
    qnet = TensorDictSequential(
        TensorDictModule(net, [(group, "observation")], [(group, "action_value")]),
        QValueModule(action_value_key=(group, "action_value"), spec=spec,
                     out_keys=[(group, "action"), (group, "action_value"),
                               (group, "chosen_action_value")]),
    )
    explore = config.make_exploration(spec, action_key=(group, "action"))
    return qnet, TensorDictSequential(qnet, explore), explore


def make_loss(config: QMixConfig, qnet: TensorDictSequential, env: Any) -> LossModule:
    """The mixer's loss: :class:`QMixerLoss` (``qmix``, ``vdn``) on the team reward, or
    :class:`DQNLoss` with the group's keys (``none``: each agent's own reward)."""
    group = _group(env)
    n_agents = env.observation_spec[group, "observation"].shape[-2]
    loss: LossModule
    if config.mixer == "none":
        loss = DQNLoss(qnet, loss_function=config.loss_function, delay_value=True,
                       double_dqn=config.double_q)
        loss.set_keys(action_value=(group, "action_value"), action=(group, "action"),
                      value=(group, "chosen_action_value"), reward=(group, "reward"),
                      done=(group, "done"), terminated=(group, "terminated"))
    else:
        local = (group, "chosen_action_value")
        if config.mixer == "qmix":
            mixer = TensorDictModule(
                QMixer(state_shape=env.observation_spec["state"].shape,
                       mixing_embed_dim=config.mixing_embed_dim, n_agents=n_agents),
                in_keys=[local, "state"], out_keys=["chosen_action_value"])
        else:
            mixer = TensorDictModule(VDNMixer(n_agents=n_agents), in_keys=[local],
                                     out_keys=["chosen_action_value"])
        loss = QMixerLoss(qnet, mixer, loss_function=config.loss_function, delay_value=True,
                          double_dqn=config.double_q)
        loss.set_keys(action_value=(group, "action_value"), local_value=local,
                      global_value="chosen_action_value", action=(group, "action"))
    loss.make_value_estimator(gamma=config.gamma)
    return loss


def make_learner(config: QMixConfig, qnet: TensorDictSequential, env: Any) -> tuple[
        LossModule, torch.optim.Optimizer, HardUpdate, Learner]:
    """The update: the mixer's TD loss (:func:`make_loss`) against target networks copied
    every ``target_update_interval`` updates, Adam, gradient norm clipped at
    ``max_grad_norm``; the loss, its optimizer, the target updater and the learner."""
    loss = make_loss(config, qnet, env)
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr)
    target = HardUpdate(loss, period=config.target_update_interval)
    learner = Learner(loss, optim, minibatch_size=config.batch_size, target_updater=target,
                      max_grad_norm=config.max_grad_norm)
    return loss, optim, target, learner


def build(config: QMixConfig, run_dir: Path | None, progress: bool,
          state: dict[str, Any] | None = None) -> OffPolicyGraph:
    """The concurrent graph (:func:`~streamrl.ops.build_offpolicy_graph`) that plays the
    exploration policy in :func:`make_env`'s envs and trains :func:`make_learner`'s learner
    from :meth:`~streamrl.train.dqn_config.DQNConfig.make_buffer`'s buffer; ``state``: a
    checkpoint to go on from (its config checked by the driver first)."""
    torch.manual_seed(config.seed)
    probe = make_one_env(config)  # unbatched: the specs of one env
    try:
        qnet, policy, explore = make_models(config, probe)
        loss, optim, target, learner = make_learner(config, qnet, probe)
    finally:
        probe.close()
    return build_offpolicy_graph(
        NAME, functools.partial(make_env, config), policy, learner, config.make_buffer(),
        frames=config.frames, frames_per_batch=config.train_freq,
        sample_size=config.sample_size, make_eval_env=functools.partial(make_eval_env, config),
        eval_interval=config.eval_points(), eval_seed=config.eval_seed, seed=config.seed,
        # the policy's state holds the Q-network and epsilon; the loss's, the mixer and the
        # target networks
        saved={"policy": policy, "loss": loss, "optimizer": optim, "target_updater": target},
        state=state,
        exploration=[explore], extra_metrics={"epsilon": lambda: float(explore.eps)},
        rollout_placement=config.rollout_placement, ray_address=config.ray,
        rollouts=config.ray_actors, lockstep=config.lockstep,
        run_dir=run_dir, columns=COLUMNS, logger=config.logger, progress=progress,
    )


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = driver.OffPolicyPipeline(NAME, "QMIX", QMixConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
