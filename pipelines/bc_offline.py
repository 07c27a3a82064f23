"""Behaviour cloning from a dataset: ``streamrl run bc_offline --dataset minari:ID``.

Offline training as one graph (no collection; the policy is evaluated online now and then)::

    dataset source (thread) --> learner (thread) --> weight sync --> metrics sink
                                                        |               ^
                                                        +--> evaluator -+ (snapshots)

The dataset (``--dataset minari:ID`` for a local Minari dataset, ``d4rl:PATH`` for an HDF5
file in D4RL's layout; see ``streamrl.data.datasets.load_dataset``) is converted once into a
memory-mapped cache and sampled uniformly, ``batch_size`` rows per update. The actor is
deterministic (an MLP, tanh-squashed into the action bounds) and regresses the dataset's
actions (squared error), the BC baseline of the TD3+BC paper. It is evaluated in the env the
dataset names (or ``--env-name``) every ``eval_interval`` updates, on snapshots of its
weights, while the learner goes on.

A run directory (``runs/bc_offline-<timestamp>/``) receives ``config.json``,
``metrics.csv`` / ``metrics.jsonl`` (``loss_bc``, ``eval_return``), ``checkpoint.pt`` (the
networks, optimizer and the dataset sampler's generator, not the data; ``--resume`` goes on
from it) and ``learning_curve.png``.

    $ streamrl run bc_offline --dataset minari:pendulum/expert-v0 --updates 20000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.modules import MLP, TanhModule
from streamrl.objectives import BCLoss
from streamrl.ops import Learner, OfflineGraph
from streamrl.train import OfflineConfig, OfflinePipeline

NAME = "bc_offline"

COLUMNS = ["updates", "batches", "wall_s", "eval_return", "eval_return_std", "loss_bc",
           "policy_version", "eval_s"]


@dataclass
class BCConfig(OfflineConfig):
    """Hyper-parameters of behaviour cloning (defaults: the TD3+BC paper's BC baseline: two
    256-unit layers, Adam 3e-4, batch 256); the fields every offline pipeline shares are
    :class:`~streamrl.train.OfflineConfig`'s."""


def make_actor(config: OfflineConfig, env: Any) -> TensorDictSequential:
    """A deterministic actor: ``observation -> action``, an MLP tanh-squashed into the
    action bounds."""
    spec = env.action_spec
    if getattr(spec, "low", None) is None or getattr(spec, "high", None) is None:
        raise ValueError(f"a bounded continuous action space is needed, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    obs_dim = env.observation_spec["observation"].shape[-1]
    return TensorDictSequential(
        TensorDictModule(MLP(in_features=obs_dim, out_features=spec.shape[-1],
                             num_cells=[config.hidden] * 2, activation_class=nn.ReLU),
                         in_keys=["observation"], out_keys=["action_param"]),
        TanhModule(["action_param"], ["action"], spec=spec),
    )


def build(config: BCConfig, dataset: Any, run_dir: Path | None,
          state: dict[str, Any] | None = None) -> OfflineGraph:
    """The offline BC graph of ``config`` on ``dataset``, restored from ``state``."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        actor = make_actor(config, probe)
    finally:
        probe.close()
    loss = BCLoss(actor)
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr)
    learner = Learner(loss, optim, minibatch_size=config.batch_size)
    return config.graph(NAME, dataset, actor, learner,
                        saved={"loss": loss, "optimizer": optim}, state=state,
                        run_dir=run_dir, columns=COLUMNS)


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = OfflinePipeline(NAME, "BC", BCConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
