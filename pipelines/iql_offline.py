"""IQL from a dataset: ``streamrl run iql_offline --dataset minari:ID``.

The offline graph of ``bc_offline`` (dataset source -> learner -> weight sync -> evaluator
and metrics) with Implicit Q-Learning's update (Kostrikov et al., 2021): a state-value
network fitted to the critics' minimum by expectile regression (``expectile``), two critics
fitted to ``r + gamma * V(s')`` (no action is ever sampled for the target), and a
tanh-Gaussian actor trained by advantage-weighted likelihood of the dataset's actions
(``exp(temperature * (Q - V))``, capped at 100), with soft target updates. Defaults are
TorchRL's IQL example's for MuJoCo (``temperature`` 3, ``expectile`` 0.7, Adam 3e-4,
batch 256).

    $ streamrl run iql_offline --dataset minari:pendulum/medium-replay-v0 --updates 50000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamrl.cli import load_pipeline
from streamrl.modules import MLP, ValueOperator
from streamrl.objectives import IQLLoss, SoftUpdate
from streamrl.ops import Learner, OfflineGraph
from streamrl.train import OfflineConfig, OfflinePipeline, check_field

NAME = "iql_offline"

# the tanh-Gaussian actor and the Q-network of SAC
_sac = load_pipeline(Path(__file__).with_name("sac_pendulum.py"))

COLUMNS = ["updates", "batches", "wall_s", "eval_return", "eval_return_std", "loss_actor",
           "loss_qvalue", "loss_value", "entropy", "policy_version", "eval_s"]


@dataclass
class IQLConfig(OfflineConfig):
    """Hyper-parameters of IQL (defaults: TorchRL's IQL example for MuJoCo); the fields
    every offline pipeline shares are :class:`~streamrl.train.OfflineConfig`'s."""

    temperature: float = 3.0
    expectile: float = 0.7

    def __post_init__(self) -> None:
        super().__post_init__()
        check_field(self, "temperature", self.temperature > 0, "> 0")
        check_field(self, "expectile", 0.0 < self.expectile < 1.0, "in (0, 1)")


def make_value(config: OfflineConfig, env: Any) -> ValueOperator:
    """A state-value network: ``observation -> state_value``."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    return ValueOperator(MLP(in_features=obs_dim, out_features=1,
                             num_cells=[config.hidden] * 2, activation_class=nn.ReLU),
                         in_keys=["observation"])


def make_learner(config: IQLConfig, env: Any) -> tuple[Any, Learner, dict[str, Any]]:
    """The tanh-Gaussian actor, the IQL loss (two critics, a value network) and its
    learner, and the pieces a checkpoint holds."""
    actor, qvalue = _sac.make_models(config, env)
    value = make_value(config, env)
    with torch.no_grad():  # checks the keys once
        actor(env.reset())
    loss = IQLLoss(actor, qvalue, value, temperature=config.temperature,
                   expectile=config.expectile, loss_function="l2", deactivate_vmap=True)
    loss.make_value_estimator(gamma=config.gamma)
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr)
    learner = Learner(loss, optim, minibatch_size=config.batch_size,
                      target_updater=SoftUpdate(loss, tau=config.tau))
    return actor, learner, {"loss": loss, "optimizer": optim}


def build(config: IQLConfig, dataset: Any, run_dir: Path | None,
          state: dict[str, Any] | None = None) -> OfflineGraph:
    """The offline IQL graph of ``config`` on ``dataset``, restored from ``state``."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        actor, learner, saved = make_learner(config, probe)
    finally:
        probe.close()
    return config.graph(NAME, dataset, actor, learner, saved=saved, state=state,
                        run_dir=run_dir, columns=COLUMNS)


# ---------------------------------------------------------------------------------- entry points
_pipeline = OfflinePipeline(NAME, "IQL", IQLConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
