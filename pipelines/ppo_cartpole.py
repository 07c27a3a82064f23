"""PPO on CartPole-v1: ``streamrl run ppo_cartpole``.

Clipped PPO with the rl-zoo hyper-parameters Stable-Baselines3 uses for CartPole-v1 (8 envs x
32 steps per batch, 20 epochs of full-batch updates, GAE(0.98, 0.8), learning rate and clip
range annealed linearly to 0 over the frame budget, separate 64x64 tanh actor and critic
with orthogonal init, advantage normalisation, gradient norm clipped at 0.5).

Data is collected by a :class:`~streamrl.collectors.SyncDataCollector` (a ``trigger ->
rollout`` graph, in lockstep with the learner, so every batch comes from the current
weights). Every ``eval_interval`` frames the policy plays ``eval_episodes`` deterministic
episodes side by side (argmax actions); the run stops when their mean return reaches
``target_return`` or the frame budget is spent. Batches are evaluated as soon as they are
collected, before the learner trains on them, so "solved at N frames" means what it means
for SB3's callbacks.

A run directory (``runs/ppo_cartpole-<timestamp>/``) receives ``metrics.csv`` and
``metrics.jsonl`` (one row per batch), ``config.json``, ``checkpoint.pt`` and
``learning_curve.png`` when matplotlib is installed. The checkpoint (a
:class:`streamrl.checkpoint.Checkpoint`: written atomically, loadable with
``torch.load(weights_only=True)``) holds the whole run at a batch boundary: policy, value
network, optimizer, learner counters, the collector's envs mid-episode with their carried
observations, the running training returns, the random generators, the progress and the
config. It is written every ``checkpoint_interval`` frames (default: at each evaluation), at
the end, and on Ctrl-C or an error (then the last batch boundary's). ``--resume`` continues
exactly: a run stopped and resumed gives the same metrics rows (timings aside) and weights
as one that ran through, and resumed into its own ``--run-dir`` it continues that run's
metrics files (the rows logged past the checkpoint dropped); a checkpoint of another
pipeline or config is refused before any work.

    $ streamrl run ppo_cartpole --frames 50000 --seed 1
    $ streamrl graph ppo_cartpole
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import OneHot
from streamrl.modules import MLP, Categorical, OneHotCategorical, ProbabilisticActor, ValueOperator
from streamrl.train.ppo import PPOConfig as _PPOConfig
from streamrl.train.ppo import PPOPipeline, orthogonal_init_

NAME = "ppo_cartpole"


@dataclass
class PPOConfig(_PPOConfig):
    """Hyper-parameters of the PPO CartPole pipeline (defaults: rl-zoo / SB3 for CartPole-v1);
    the fields are :class:`streamrl.train.ppo.PPOConfig`'s.

    ``frames`` is the frame budget and the horizon of the linear schedules (as SB3's
    ``total_timesteps``); training stops earlier once the evaluation mean reaches
    ``target_return`` (``None``: never).
    """

    env_name: str = "CartPole-v1"
    num_envs: int = 8
    steps_per_env: int = 32
    minibatch_size: int = 256
    epochs: int = 20
    gamma: float = 0.98
    gae_lambda: float = 0.8
    lr: float = 1e-3
    anneal_lr: bool = True
    anneal_clip: bool = True
    frames: int = 200_000
    eval_interval: int = 8192
    eval_episodes: int = 20
    target_return: float | None = 475.0


def make_models(config: PPOConfig, env: Any) -> tuple[ProbabilisticActor, ValueOperator]:
    """A categorical actor (``observation -> logits -> action, action_log_prob``; one-hot
    actions for a ``OneHot`` action spec, the gym default) and a value network
    (``observation -> state_value``), separate 2-layer tanh MLPs."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    action_spec = env.action_spec
    for _ in env.batch_size:  # the spec of one env: the actor runs on any number of rows
        action_spec = action_spec[0]
    n_actions = getattr(action_spec, "n", None)
    if n_actions is None:
        raise ValueError(
            f"{NAME} needs a discrete action space, found {type(action_spec).__name__} for "
            f"{config.env_name!r}"
        )
    hidden = [config.hidden, config.hidden]
    policy_net = MLP(in_features=obs_dim, out_features=n_actions, num_cells=hidden,
                     activation_class=nn.Tanh)
    value_net = MLP(in_features=obs_dim, out_features=1, num_cells=hidden, activation_class=nn.Tanh)
    orthogonal_init_(policy_net, 0.01)
    orthogonal_init_(value_net, 1.0)
    actor = ProbabilisticActor(
        TensorDictModule(policy_net, in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=OneHotCategorical if isinstance(action_spec, OneHot) else Categorical,
        return_log_prob=True,
        spec=action_spec,
        safe=True,  # one-hot samples are float; the env takes the spec's integer dtype
    )
    critic = ValueOperator(value_net, in_keys=["observation"])
    return actor, critic


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = PPOPipeline(NAME, PPOConfig, make_models, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph, run_identity = _pipeline.build_graph, _pipeline.run_identity
COLUMNS = _pipeline.columns

if __name__ == "__main__":
    sys.exit(main())
