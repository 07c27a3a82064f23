"""MAPPO on VMAS Navigation: ``streamrl run mappo_vmas``.

Multi-agent PPO with the settings of TorchRL's multi-agent PPO tutorial (VMAS
``navigation``, 3 agents, 60 vectorised envs x 100 steps = 6,000 team frames per batch, 5
batches; 30 epochs of minibatches of 400; lr 3e-4; GAE(0.99, 0.9); clip range 0.2; entropy
coefficient 1e-4; gradient norm clipped at 1.0; advantages not normalised, so that they are
not normalised across agents). All agents form one group, ``"agents"``; every agent's
observation, action, log-prob, reward and value carry an agent dim.

- the policy is one ``MultiAgentMLP`` (decentralised: each agent reads its own observation;
  parameters shared by the agents, ``--no-share-policy`` gives each its own; 2 x 256 tanh)
  giving a ``TanhNormal`` over the action bounds;
- the critic is a ``MultiAgentMLP`` too: **centralised** for MAPPO (each agent's value reads
  every agent's observation), decentralised for IPPO (``ippo_vmas``, or
  ``--no-centralized-critic``);
- ``ClipPPOLoss`` takes one clipped ratio, entropy and value term per agent (its keys set to
  the group's); the episode's shared ``done``/``terminated`` are expanded to the agent dim
  before GAE, as the tutorial does.

Data is collected by a :class:`~streamrl.collectors.SyncDataCollector` of one
:class:`~streamrl.envs.VmasEnv` (natively batched: ``num_envs`` envs in one torch
simulation), in lockstep with the learner (:class:`streamrl.train.ppo.PPOPipeline`, the loop
of the single-agent PPO pipelines). ``train_return`` is the mean per-agent return of the
episodes that end in the batch (TorchRL's ``episode_reward_mean``); every ``eval_interval``
frames the policy plays ``eval_episodes`` deterministic episodes (``eval_return``, per agent
too). The run directory (``runs/mappo_vmas-<timestamp>/``) receives ``config.json``, the
metrics, the run logger's files (TensorBoard by default), ``checkpoint.pt`` and
``learning_curve.png``; ``--resume`` continues from the last batch boundary, with the envs
mid-episode where VMAS's state can be captured (``can_capture_state``: Navigation; on other
scenarios a resumed run starts new episodes). Any VMAS scenario
whose agents share their spaces runs by ``--env-name`` (``--n-agents`` is passed to it).

    $ streamrl run mappo_vmas --frames 30000 --seed 1
    $ streamrl run mappo_vmas --env-name balance --n-agents 4
    $ streamrl graph mappo_vmas
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.envs import EnvBase
from streamrl.envs.libs.vmas import can_capture_state
from streamrl.envs.marl_groups import MarlGroupMapType, expand_done_to_group
from streamrl.modules import MultiAgentMLP, NormalParamExtractor, ProbabilisticActor, TanhNormal
from streamrl.objectives import ClipPPOLoss
from streamrl.ops.evaluator import play_episodes
from streamrl.train.config import check_positive_ints
from streamrl.train.ppo import PPOConfig, PPOPipeline

NAME = "mappo_vmas"

#: the one agent group (``MarlGroupMapType.ALL_IN_ONE_GROUP``'s name)
GROUP = "agents"


@dataclass
class MAPPOConfig(PPOConfig):
    """Hyper-parameters of multi-agent PPO on a VMAS scenario (defaults: TorchRL's
    multi-agent PPO tutorial); the fields are :class:`streamrl.train.ppo.PPOConfig`'s
    (``env_name`` is the VMAS scenario, ``hidden`` the width of the 2-layer networks), plus
    ``n_agents`` and ``max_steps`` (the episode length; VMAS truncates there), whether the
    critic is centralised (MAPPO) or not (IPPO), and whether the agents share the policy's
    and the critic's parameters."""

    env_name: str = "navigation"
    n_agents: int = 3
    max_steps: int = 100
    num_envs: int = 60
    steps_per_env: int = 100
    minibatch_size: int = 400
    epochs: int = 30
    gae_lambda: float = 0.9
    entropy_coef: float = 1e-4
    max_grad_norm: float = 1.0
    normalize_advantage: bool = False
    hidden: int = 256
    frames: int = 30_000
    eval_interval: int = 6_000
    eval_episodes: int = 10
    centralized_critic: bool = True
    share_policy: bool = True
    share_critic: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "n_agents", "max_steps")

    def make_env(self, num_envs: int) -> EnvBase:
        """One VMAS simulation of ``num_envs`` envs, all agents in the group ``"agents"``."""
        from streamrl.envs.libs.vmas import VmasEnv

        return VmasEnv(self.env_name, num_envs=num_envs, continuous_actions=True,
                       max_steps=self.max_steps, seed=self.seed, n_agents=self.n_agents,
                       group_map=MarlGroupMapType.ALL_IN_ONE_GROUP)


def make_models(config: MAPPOConfig, env: Any) -> tuple[ProbabilisticActor, TensorDictModule]:
    """The group's ``TanhNormal`` policy (``("agents", "observation") -> ("agents",
    "action"), ("agents", "action_log_prob")``) and its critic (``-> ("agents",
    "state_value")``), both ``MultiAgentMLP``."""
    if list(env.group_map) != [GROUP]:
        raise ValueError(f"{NAME} trains one agent group {GROUP!r}; {config.env_name!r} has "
                         f"groups {sorted(env.group_map)}")
    spec = env.full_action_spec_unbatched[GROUP, "action"]
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None:
        raise ValueError(f"{NAME} needs bounded continuous actions, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    n_agents = len(env.group_map[GROUP])
    n_obs = env.observation_spec[GROUP, "observation"].shape[-1]
    n_act = spec.shape[-1]
    common = dict(n_agents=n_agents, depth=2, num_cells=config.hidden, activation_class=nn.Tanh)
    policy_net = nn.Sequential(
        MultiAgentMLP(n_obs, 2 * n_act, centralized=False, share_params=config.share_policy,
                      **common),
        NormalParamExtractor(),
    )
    actor = ProbabilisticActor(
        TensorDictModule(policy_net, in_keys=[(GROUP, "observation")],
                         out_keys=[(GROUP, "loc"), (GROUP, "scale")]),
        spec=env.action_spec_unbatched, in_keys=[(GROUP, "loc"), (GROUP, "scale")],
        out_keys=[(GROUP, "action")], distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high}, return_log_prob=True,
    )
    critic_net = MultiAgentMLP(n_obs, 1, centralized=config.centralized_critic,
                               share_params=config.share_critic, **common)
    critic = TensorDictModule(critic_net, in_keys=[(GROUP, "observation")],
                              out_keys=[(GROUP, "state_value")])
    return actor, critic


def group_keys(loss: ClipPPOLoss) -> None:
    """Point the loss at the group's entries (TorchRL's tutorial's ``set_keys``)."""
    loss.set_keys(reward=(GROUP, "reward"), action=(GROUP, "action"),
                  value=(GROUP, "state_value"), done=(GROUP, "done"),
                  terminated=(GROUP, "terminated"))


def expand_done(batch: Any) -> None:
    """The episode's ``done``/``terminated`` (shared by the agents) expanded to the agent dim,
    where the loss's keys read them."""
    expand_done_to_group(batch, GROUP)


def evaluate(config: MAPPOConfig, env: EnvBase, actor: nn.Module) -> Any:
    """One deterministic episode per eval env; the mean return per agent of each."""
    stats = play_episodes(env, actor, seed=config.eval_seed,
                          reward_key=("next", GROUP, "reward"))
    return stats.returns / len(env.group_map[GROUP])


def pipeline(name: str, config_cls: type[MAPPOConfig], doc: str | None) -> PPOPipeline:
    """The PPO pipeline of a multi-agent config (``mappo_vmas``, ``ippo_vmas``)."""
    # the envs are saved mid-episode where VMAS's state can be captured (Navigation)
    return PPOPipeline(name, config_cls, make_models, doc,
                       resume_episodes=lambda config: can_capture_state(config.env_name),
                       configure_loss=group_keys, reward_key=(GROUP, "reward"),
                       prepare_batch=expand_done, evaluate=evaluate)


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = pipeline(NAME, MAPPOConfig, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph, run_identity = _pipeline.build_graph, _pipeline.run_identity
COLUMNS = _pipeline.columns

if __name__ == "__main__":
    sys.exit(main())
