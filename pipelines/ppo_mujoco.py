"""PPO on the MuJoCo tasks (HalfCheetah-v5 by default): ``streamrl run ppo_mujoco``.

Clipped PPO with the hyper-parameters of CleanRL's ``ppo_continuous_action`` (its MuJoCo
benchmark's): one env x 2048 steps per batch, 10 epochs of minibatches of 64, lr 3e-4
annealed linearly to 0 over the budget, GAE(0.99, 0.95), clip range 0.2, value coefficient
0.5, no entropy bonus, advantage normalisation, gradient norm clipped at 0.5, separate
64x64 tanh actor and critic with orthogonal init, a state-independent log standard deviation
starting at 0, observations normalised by running statistics and clipped at 10, rewards
divided by the running standard deviation of the discounted return and clipped at 10
(``normalize_reward``), 1M steps.

Differences from CleanRL: the Gaussian is tanh-squashed into the action bounds (as TorchRL's
PPO MuJoCo example: the collector projects actions into the bounds and stores the executed
one, so an unsquashed Gaussian's log-probs would not match it); the value loss is not
clipped; the observation statistics are folded in once per batch, after its update (CleanRL
updates them at every step), so the networks a batch trains are those that collected it;
the reward statistics are updated per batch too.

Data is collected by a :class:`~streamrl.collectors.SyncDataCollector` in lockstep with the
learner (:class:`streamrl.train.ppo.PPOPipeline`, the loop of ``ppo_cartpole``). A run
directory (``runs/ppo_mujoco-<timestamp>/``) receives ``config.json``, ``metrics.csv`` /
``metrics.jsonl``, the run logger's files (TensorBoard by default), ``checkpoint.pt`` and
``learning_curve.png``. ``--resume`` continues from the last batch boundary with the
networks (their normalisation statistics too), optimizer, reward statistics, counters and
random generators restored; MuJoCo's env state cannot be captured, so a resumed run starts
new episodes. Any gymnasium MuJoCo task with a bounded continuous action space runs by flag
(``--env-name``, or its prefix ``--env``).

    $ streamrl run ppo_mujoco --frames 200000 --seed 1
    $ streamrl run ppo_mujoco --env Hopper-v5
    $ streamrl graph ppo_mujoco
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.envs import DoubleToFloat, EnvBase, GymEnv, SerialEnv, TransformedEnv
from streamrl.envs.transforms import RunningMeanStd
from streamrl.modules import (
    MLP,
    AddStateIndependentNormalScale,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
)
from streamrl.train import check_field
from streamrl.train.ppo import PPOConfig, PPOPipeline, orthogonal_init_

NAME = "ppo_mujoco"


def _float32_gym(env_name: str) -> EnvBase:
    # MuJoCo's observations are float64; the networks take float32
    return TransformedEnv(GymEnv(env_name), DoubleToFloat())


@dataclass
class PPOMujocoConfig(PPOConfig):
    """Hyper-parameters of the PPO MuJoCo pipeline (defaults: CleanRL's
    ``ppo_continuous_action``); the fields are :class:`streamrl.train.ppo.PPOConfig`'s, plus
    the observation normalisation (``normalize_observation``, clipped at
    ``clip_observation``)."""

    env_name: str = "HalfCheetah-v5"
    anneal_lr: bool = True
    normalize_reward: bool = True
    eval_interval: int = 20_480
    eval_episodes: int = 5
    normalize_observation: bool = True
    clip_observation: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_field(self, "clip_observation", self.clip_observation > 0, "> 0")

    def make_env(self, num_envs: int) -> EnvBase:
        """``num_envs`` copies of the config's gym env (float32 observations)."""
        return SerialEnv(num_envs, functools.partial(_float32_gym, self.env_name))


class Normalize(nn.Module):
    """``(x - mean) / std`` from running statistics (shared by actor and critic, saved with
    them), clipped to ``[-clip, clip]``."""

    def __init__(self, stats: RunningMeanStd, clip: float):
        super().__init__()
        self.stats, self.clip = stats, clip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stats.normalize(x).clamp(-self.clip, self.clip)


def make_models(config: PPOMujocoConfig, env: Any) -> tuple[ProbabilisticActor, ValueOperator]:
    """A tanh-Gaussian actor (``observation -> loc, scale -> action, action_log_prob``; the
    scale a learnt vector) and a value network (``observation -> state_value``), separate
    2-layer tanh MLPs behind one observation normaliser."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    spec = env.action_spec
    for _ in env.batch_size:  # the spec of one env: the actor runs on any number of rows
        spec = spec[0]
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None:
        raise ValueError(f"{NAME} needs a bounded continuous action space, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    act_dim = spec.shape[-1]
    hidden = [config.hidden, config.hidden]
    policy_mlp = MLP(in_features=obs_dim, out_features=act_dim, num_cells=hidden,
                     activation_class=nn.Tanh)
    value_mlp = MLP(in_features=obs_dim, out_features=1, num_cells=hidden,
                    activation_class=nn.Tanh)
    orthogonal_init_(policy_mlp, 0.01)
    orthogonal_init_(value_mlp, 1.0)
    if config.normalize_observation:
        norm = Normalize(RunningMeanStd(shape=(obs_dim,)), config.clip_observation)
        policy_mlp, value_mlp = nn.Sequential(norm, policy_mlp), nn.Sequential(norm, value_mlp)
    actor = ProbabilisticActor(
        TensorDictModule(nn.Sequential(policy_mlp, AddStateIndependentNormalScale(act_dim)),
                         in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high}, return_log_prob=True, spec=spec,
    )
    return actor, ValueOperator(value_mlp, in_keys=["observation"])


def update_observation_stats(actor: nn.Module, critic: nn.Module, batch: Any) -> None:
    """Fold the batch's observations into the normaliser (after the batch's update)."""
    for module in actor.modules():
        if isinstance(module, Normalize):
            module.stats.update(batch.get("observation"))
            return


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = PPOPipeline(NAME, PPOMujocoConfig, make_models, __doc__,
                        after_update=update_observation_stats, resume_episodes=False)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph, run_identity = _pipeline.build_graph, _pipeline.run_identity
COLUMNS = _pipeline.columns

if __name__ == "__main__":
    sys.exit(main())
