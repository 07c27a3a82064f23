"""CQL from a dataset: ``streamrl run cql_offline --dataset minari:ID``.

The offline graph of ``bc_offline`` (dataset source -> learner -> weight sync -> evaluator
and metrics) with Conservative Q-Learning's update (Kumar et al., 2020) on SAC: the critics'
Bellman error plus ``min_q_weight`` times the conservative penalty (the log-sum-exp of Q
over ``num_random`` random and policy actions, minus Q of the dataset's action), a
tanh-Gaussian actor trained as SAC's with an automatically tuned entropy temperature, and
soft target updates. Defaults are TorchRL's ``CQLLoss``'s (``min_q_weight`` 1,
``num_random`` 10, no Lagrange tuning) with Adam 3e-4 and batch 256. ``--bc-steps N`` trains
the actor by behaviour cloning (the loss's ``loss_actor_bc``: the log-likelihood of the
dataset's actions, with the entropy term) for the first N updates, as CQL's reference code
does (its ``policy_eval_start``) and RLlib (``bc_iters``); the critics learn as usual
meanwhile. 0 (the default) trains the actor on Q from the first update.

    $ streamrl run cql_offline --dataset minari:pendulum/medium-replay-v0 --updates 50000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamrl.cli import load_pipeline
from streamrl.objectives import CQLLoss, SoftUpdate
from streamrl.ops import Learner, OfflineGraph
from streamrl.train import (
    OfflineConfig,
    OfflinePipeline,
    check_field,
    check_non_negative_ints,
    check_positive_ints,
)

NAME = "cql_offline"

# the tanh-Gaussian actor and the Q-network of SAC
_sac = load_pipeline(Path(__file__).with_name("sac_pendulum.py"))

COLUMNS = ["updates", "batches", "wall_s", "eval_return", "eval_return_std", "loss_actor",
           "loss_qvalue", "loss_cql", "loss_alpha", "loss_actor_bc", "alpha", "entropy", "policy_version",
           "eval_s"]


@dataclass
class CQLConfig(OfflineConfig):
    """Hyper-parameters of CQL (defaults: TorchRL's ``CQLLoss``'s); the fields every
    offline pipeline shares are :class:`~streamrl.train.OfflineConfig`'s."""

    min_q_weight: float = 1.0
    num_random: int = 10
    temperature: float = 1.0
    with_lagrange: bool = False
    lagrange_thresh: float = 0.0
    bc_steps: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "num_random")
        check_non_negative_ints(self, "bc_steps")
        check_field(self, "min_q_weight", self.min_q_weight >= 0, ">= 0")
        check_field(self, "temperature", self.temperature > 0, "> 0")


def build(config: CQLConfig, dataset: Any, run_dir: Path | None,
          state: dict[str, Any] | None = None) -> OfflineGraph:
    """The offline CQL graph of ``config`` on ``dataset``, restored from ``state``."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        actor, qvalue = _sac.make_models(config, probe)
        spec = probe.action_spec
        with torch.no_grad():  # checks the keys once
            actor(probe.reset())
    finally:
        probe.close()
    loss = CQLLoss(actor, qvalue, action_spec=spec, loss_function="l2",
                   min_q_weight=config.min_q_weight, num_random=config.num_random,
                   temperature=config.temperature, with_lagrange=config.with_lagrange,
                   lagrange_thresh=config.lagrange_thresh, deactivate_vmap=True)
    loss.make_value_estimator(gamma=config.gamma)
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr)
    # loss_actor_bc (behaviour cloning) replaces loss_actor for the first bc_steps updates;
    # it is reported throughout
    keys = ["loss_actor", "loss_qvalue", "loss_cql", "loss_alpha",
            *(["loss_alpha_prime"] if config.with_lagrange else [])]
    warmup = ["loss_actor_bc", *keys[1:]] if config.bc_steps else None
    learner = Learner(loss, optim, minibatch_size=config.batch_size, loss_keys=keys,
                      target_updater=SoftUpdate(loss, tau=config.tau),
                      warmup_updates=config.bc_steps, warmup_loss_keys=warmup)
    return config.graph(NAME, dataset, actor, learner,
                        saved={"loss": loss, "optimizer": optim}, state=state,
                        run_dir=run_dir, columns=COLUMNS)


# ---------------------------------------------------------------------------------- entry points
_pipeline = OfflinePipeline(NAME, "CQL", CQLConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
