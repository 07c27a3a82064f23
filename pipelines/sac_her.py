"""SAC with hindsight experience replay on a goal env: ``streamrl run sac_her``.

The concurrent SAC graph of ``sac_pendulum`` (a rollout process, a ratio-limited replay
buffer, the learner on a thread, weight sync, evaluator, metrics) on a goal-conditioned env
(gymnasium-robotics' ``PointMaze_UMaze-v3`` by default: a ball pushed towards a goal cell,
reward 1 at steps within 0.45 of the goal, else 0; 300 steps per episode), with two
changes:

- the replay buffer is a :class:`~streamrl.data.HERReplayBuffer`: ``her_ratio`` of each
  sampled batch gets a goal achieved later in its episode (``her_strategy``: future, final,
  episode or random) and the reward the env's ``compute_reward`` gives for it; ``--her-ratio
  0`` is plain SAC on the same networks;
- the actor and the critics read the goal beside the observation
  (``observation``, ``desired_goal`` -> action; ``observation``, ``desired_goal``, ``action``
  -> Q), so a relabelled goal reaches them.

Any gymnasium goal env (a dict observation of ``observation``, ``achieved_goal``,
``desired_goal``, a vectorised ``compute_reward`` and a bounded continuous action space) runs
by ``--env-name``; gymnasium-robotics' envs are registered on first use (the ``goals``
extra installs it). The run directory is ``sac_pendulum``'s: ``config.json``, metrics,
``checkpoint.pt`` (``--resume``), ``learning_curve.png``.

    $ streamrl run sac_her --frames 50000 --seed 1
    $ streamrl run sac_her --her-ratio 0          # SAC without HER
    $ streamrl graph sac_her
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.cli import load_pipeline
from streamrl.data import HERReplayBuffer, HindsightStrategy, LazyTensorStorage
from streamrl.envs import DoubleToFloat, EnvBase, GymEnv, TransformedEnv
from streamrl.envs.libs.gym import make_gym_env, register_optional_envs
from streamrl.modules import (
    MLP,
    ProbabilisticActor,
    ValueOperator,
)
from streamrl.ops import ratio_limiter
from streamrl.train import check_field, driver

NAME = "sac_her"

# the SAC loss, update and graph of the sibling pipeline
_sac = load_pipeline(Path(__file__).with_name("sac_pendulum.py"))
COLUMNS = _sac.COLUMNS

#: what the actor and the critics read besides the action
INPUTS = ["observation", "desired_goal"]


def gym_goal_env(env_name: str) -> Any:
    """One gymnasium env of ``env_name`` (gymnasium-robotics' ids registered when needed,
    MuJoCo's headless GL chosen first): its ``compute_reward`` labels relabelled
    transitions."""
    import gymnasium as gym

    if env_name not in gym.registry:
        register_optional_envs(env_name)
    if env_name not in gym.registry:
        raise ValueError(f"env {env_name!r} is not registered"
                         + ("" if importlib.util.find_spec("gymnasium_robotics") else
                            ", and gymnasium-robotics (which registers the goal envs) is not "
                            "installed: pip install 'streamrl[goals]'"))
    return make_gym_env(env_name)


class GoalReward:
    """The goal env's ``compute_reward(achieved, desired, info)`` on relabelled rows: the
    goal achieved after the step, ``("next", "achieved_goal")``, against the new
    ``desired_goal`` (a reward of shape ``[n, 1]``)."""

    def __init__(self, env_name: str) -> None:
        self.env = gym_goal_env(env_name)
        self.compute = self.env.unwrapped.compute_reward

    def __call__(self, td: Any) -> torch.Tensor:
        achieved = td["next", "achieved_goal"].detach().cpu().numpy()
        desired = td["desired_goal"].detach().cpu().numpy()
        reward = np.asarray(self.compute(achieved, desired, {}), dtype=np.float32)
        return torch.from_numpy(reward).reshape(-1, 1)


@dataclass
class SACHERConfig(_sac.SACConfig):
    """Hyper-parameters of SAC+HER (SAC's as in ``sac_pendulum``, lr 3e-4 and learning
    starts 1000 as rl-zoo's HER entries; ``her_ratio`` 0.8 is ``n_sampled_goal=4``)."""

    env_name: str = "PointMaze_UMaze-v3"
    frames: int = 100_000
    lr: float = 3e-4
    learning_starts: int = 1000
    eval_interval: int = 5000
    eval_episodes: int = 10
    target_return: float = float("inf")
    her_ratio: float = 0.8
    her_strategy: str = "future"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_field(self, "her_ratio", 0.0 <= self.her_ratio <= 1.0, "in [0, 1]")
        strategies = [s.value for s in HindsightStrategy]
        check_field(self, "her_strategy", self.her_strategy in strategies,
                    f"one of {strategies}")

    def make_env(self) -> EnvBase:
        """One goal env, float64 entries cast to float32."""
        return TransformedEnv(GymEnv(self.env_name), DoubleToFloat())  # (registers the id)

    def make_buffer(self) -> HERReplayBuffer:
        """A hindsight buffer of ``buffer_size`` rows with ``sac_pendulum``'s limiter."""
        limiter = ratio_limiter(self.samples_per_insert, learning_starts=self.learning_starts,
                                sample_size=self.sample_size,
                                frames_per_batch=self.frames_per_batch)
        return HERReplayBuffer(GoalReward(self.env_name), her_ratio=self.her_ratio,
                               strategy=self.her_strategy,
                               storage=LazyTensorStorage(self.buffer_size),
                               rate_limiter=limiter, rate_limit_timeout=120.0)


def make_models(config: SACHERConfig, env: Any) -> tuple[ProbabilisticActor, ValueOperator]:
    """A tanh-Gaussian actor of the observation and the goal, squashed into the action
    bounds, and a Q-network of the observation, the goal and the action."""
    spec = env.action_spec
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None:
        raise ValueError(f"{NAME} needs a bounded continuous action space, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    obs = env.observation_spec
    for key in ("observation", "achieved_goal", "desired_goal"):
        if key not in obs.keys():
            raise ValueError(f"{NAME} needs a goal env (observation, achieved_goal, "
                             f"desired_goal), found observation keys {sorted(obs.keys())} "
                             f"for {config.env_name!r}")
    width = sum(obs[key].shape[-1] for key in INPUTS)
    act_dim = spec.shape[-1]
    hidden = [config.hidden] * 2
    actor = _sac.tanh_actor(TensorDictModule(
        MLP(in_features=width, out_features=2 * act_dim, num_cells=hidden,
            activation_class=nn.ReLU), in_keys=INPUTS, out_keys=["params"]), spec)
    qnet = MLP(in_features=width + act_dim, out_features=1, num_cells=hidden,
               activation_class=nn.ReLU)
    return actor, ValueOperator(qnet, in_keys=[*INPUTS, "action"])


# build(config, run_dir, progress, state=None): sac_pendulum's concurrent SAC graph with
# these networks and config.make_buffer()'s hindsight buffer
build = functools.partial(_sac.build, name=NAME, models=make_models)


# ---------------------------------------------------------------------------------- entry points
_pipeline = driver.OffPolicyPipeline(NAME, "SAC+HER", SACHERConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
