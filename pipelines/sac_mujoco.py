"""SAC on the MuJoCo tasks (HalfCheetah-v5 by default): ``streamrl run sac_mujoco``.

The graph, networks and losses of ``sac_pendulum`` (one concurrent graph: a rollout process
playing the published tanh-Gaussian actor, a ratio-limited replay buffer, the learner on a
thread, weight sync, evaluator and metrics), with the hyper-parameters rl-zoo gives SAC on
the MuJoCo tasks (its ``HalfCheetah-v4`` entry, shared by Ant, Hopper, Walker2d and
Humanoid): ``learning_starts`` 10k and Stable-Baselines3's SAC defaults for the rest: lr
3e-4, batch 256, buffer 1M, gamma 0.99, tau 0.005, one gradient step per env step,
automatic entropy tuning from alpha 1 towards a target entropy of ``-dim(action)``, two
256x256 Q-networks and a 256x256 actor, 1M steps. The rollout sends its frames in batches
of ``frames_per_batch`` (the limiter keeps one update per frame, within a batch of slack).

Any gymnasium MuJoCo task with a bounded continuous action space runs by flag
(``--env-name``, or its prefix ``--env``); observations are cast to float32.
``--max-policy-lag L`` bounds how many policy versions behind the learner a sampled row may
be (see ``streamrl.ops.min_policy_lag``); the metrics report ``staleness`` and
``staleness_max`` per learner message either way.

A run directory (``runs/sac_mujoco-<timestamp>/``) receives ``config.json``, ``metrics.csv``
/ ``metrics.jsonl``, the run logger's files (TensorBoard by default), ``checkpoint.pt``
(``--resume`` continues from it: networks, optimizer, replay buffer and limiter counters)
and ``learning_curve.png``.

    $ streamrl run sac_mujoco --frames 50000 --seed 1
    $ streamrl run sac_mujoco --env Hopper-v5
    $ streamrl graph sac_mujoco
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

from streamrl.cli import load_pipeline
from streamrl.train import driver

NAME = "sac_mujoco"

# the SAC networks, loss and graph of the sibling pipeline
_sac = load_pipeline(Path(__file__).with_name("sac_pendulum.py"))
COLUMNS, make_models = _sac.COLUMNS, _sac.make_models
# build(config, run_dir, progress, state=None): the concurrent SAC graph, named sac_mujoco
build = functools.partial(_sac.build, name=NAME)


@dataclass
class SACMujocoConfig(_sac.SACConfig):
    """Hyper-parameters of the SAC MuJoCo pipeline (defaults: rl-zoo's MuJoCo SAC, SB3's
    SAC defaults). ``target_return`` is gymnasium's reward threshold for HalfCheetah."""

    env_name: str = "HalfCheetah-v5"
    frames: int = 1_000_000
    lr: float = 3e-4
    learning_starts: int = 10_000
    eval_interval: int = 10_000
    eval_episodes: int = 5
    target_return: float = 4800.0


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = driver.OffPolicyPipeline(NAME, "SAC", SACMujocoConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
