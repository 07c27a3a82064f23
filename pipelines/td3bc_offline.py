"""TD3+BC from a dataset: ``streamrl run td3bc_offline --dataset minari:ID``.

The offline graph of ``bc_offline`` (dataset source -> learner -> weight sync -> evaluator
and metrics) with TD3+BC's update (Fujimoto and Gu, 2021): two critics trained on TD3's
clipped double-Q target with target policy smoothing, and every ``policy_delay``-th update a
deterministic actor trained on ``-lambda * Q(s, pi(s)) + (pi(s) - a)^2`` with
``lambda = alpha / mean |Q|``, followed by the soft target update. Defaults are the paper's
(``alpha`` 2.5, noise 0.2 clipped at 0.5, delay 2, Adam 3e-4, batch 256). The paper also
normalises the observations by the dataset's mean and deviation; that is left to a
transform here.

    $ streamrl run td3bc_offline --dataset minari:pendulum/medium-v0 --updates 50000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamrl.cli import load_pipeline
from streamrl.objectives import SoftUpdate, TD3BCLoss
from streamrl.ops import Learner, OfflineGraph
from streamrl.train import OfflineConfig, OfflinePipeline, check_field, check_positive_ints

NAME = "td3bc_offline"

# the deterministic actor of behaviour cloning, the Q-network of SAC
_bc = load_pipeline(Path(__file__).with_name("bc_offline.py"))
_sac = load_pipeline(Path(__file__).with_name("sac_pendulum.py"))

COLUMNS = ["updates", "batches", "wall_s", "eval_return", "eval_return_std", "loss_actor",
           "loss_qvalue", "lmbd", "bc_loss", "policy_version", "eval_s"]


@dataclass
class TD3BCConfig(OfflineConfig):
    """Hyper-parameters of TD3+BC (defaults: the paper's); the fields every offline
    pipeline shares are :class:`~streamrl.train.OfflineConfig`'s. ``alpha`` weighs the Q
    term against behaviour cloning; ``policy_noise`` and ``noise_clip`` are in units of
    each action dimension's half-range."""

    alpha: float = 2.5
    policy_delay: int = 2
    policy_noise: float = 0.2
    noise_clip: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "policy_delay")
        for name in ("alpha", "policy_noise", "noise_clip"):
            check_field(self, name, getattr(self, name) >= 0, ">= 0")


def build(config: TD3BCConfig, dataset: Any, run_dir: Path | None,
          state: dict[str, Any] | None = None) -> OfflineGraph:
    """The offline TD3+BC graph of ``config`` on ``dataset``, restored from ``state``."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        actor = _bc.make_actor(config, probe)
        _, qvalue = _sac.make_models(config, probe)
        spec = probe.action_spec
    finally:
        probe.close()
    loss = TD3BCLoss(actor, qvalue, action_spec=spec, alpha=config.alpha,
                     policy_noise=config.policy_noise, noise_clip=config.noise_clip,
                     loss_function="l2", deactivate_vmap=True)
    loss.make_value_estimator(gamma=config.gamma)
    critics = [p for p in loss.qvalue_network_params.values(True, True) if p.requires_grad]
    critic_optim = torch.optim.Adam(critics, lr=config.lr)
    actor_optim = torch.optim.Adam(actor.parameters(), lr=config.lr)
    learner = Learner(loss, critic_optim, minibatch_size=config.batch_size,
                      loss_keys=["loss_qvalue"], actor_optimizer=actor_optim,
                      actor_loss_keys=["loss_actor"], policy_delay=config.policy_delay,
                      target_updater=SoftUpdate(loss, tau=config.tau))
    return config.graph(NAME, dataset, actor, learner,
                        saved={"loss": loss, "optimizer": critic_optim,
                               "actor_optimizer": actor_optim},
                        state=state, run_dir=run_dir, columns=COLUMNS)


# ---------------------------------------------------------------------------------- entry points
_pipeline = OfflinePipeline(NAME, "TD3+BC", TD3BCConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
