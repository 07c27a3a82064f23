"""IQL pretrained on a dataset, then fine-tuned online:
``streamrl run iql_offline_to_online --dataset minari:ID``.

Two graphs, one after the other, sharing the networks, the loss and the optimizer:

1. ``iql_offline``'s offline graph for ``--updates`` updates on the dataset (metrics in
   ``<run dir>/pretrain/``);
2. the concurrent off-policy graph of ``sac_pendulum`` (a process rollout playing the
   tanh-Gaussian actor from the first frame, a ratio-limited replay, the learner, weight
   sync, evaluator) for ``--online-frames`` frames, whose replay is an
   ``OfflineToOnlineReplayBuffer``: each sampled batch holds ``--offline-fraction`` dataset
   rows and the rest collected ones (lowered to 0 over ``--anneal-frames`` when set).

By default IQL's update is the same in both phases (expectile value regression, critics on
``r + gamma * V(s')``, advantage-weighted actor), which never queries the critics at actions
outside the replay. ``--online-loss sac`` switches the online phase to SAC's update on the
pretrained actor and critics (``--online-alpha-init``, ``--online-lr``), the IQL-to-SAC
fine-tuning of the offline-to-online literature. Measured on Pendulum medium data
(``benchmarks/offline_training.py --o2o-frames``, 2026-12-05): with IQL online the actor's
advantage weights are almost flat (temperature 0.3: advantages' std 0.8, weights at most
2.7, 95% effective sample size), so it mostly imitates the replay and improves little;
SAC on the pretrained critics, whose values barely depend on the action, first collapses
(-1,560 at 550 frames from -800) and then learns at SAC-from-scratch speed at best.
``checkpoint.pt`` is written after each phase with its ``phase``; ``--resume`` goes on in it.

    $ streamrl run iql_offline_to_online --dataset minari:pendulum/medium-v0 \\
        --updates 20000 --online-frames 10000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamrl.cli import load_pipeline
from streamrl.objectives import SACLoss, SoftUpdate
from streamrl.ops import Learner
from streamrl.train import OfflineToOnlineConfig, OfflineToOnlinePipeline, check_field

NAME = "iql_offline_to_online"

# IQL's networks, loss and learner
_iql = load_pipeline(Path(__file__).with_name("iql_offline.py"))


@dataclass
class IQLOnlineConfig(OfflineToOnlineConfig, _iql.IQLConfig):
    """IQL's fields and checks (``iql_offline``'s ``IQLConfig``) and the offline-to-online
    ones of :class:`~streamrl.train.OfflineToOnlineConfig`, plus the online phase's update:
    ``online_loss`` ``"iql"`` goes on with IQL's, ``"sac"`` switches to SAC's (soft Bellman
    critics, the actor maximising ``min Q - alpha log pi``) on the pretrained actor and
    critics, with the entropy coefficient starting at ``online_alpha_init`` and tuned to
    the target entropy, and Adam at ``online_lr`` (``None``: ``lr``)."""

    online_loss: str = "iql"
    online_alpha_init: float = 0.1
    online_lr: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_field(self, "online_loss", self.online_loss in ("iql", "sac"), "'iql' or 'sac'")
        check_field(self, "online_alpha_init", self.online_alpha_init > 0, "> 0")
        check_field(self, "online_lr", self.online_lr is None or self.online_lr > 0,
                    "None or > 0")


def make_online_learner(config: IQLOnlineConfig, actor: Any, learner: Learner,
                        saved: dict[str, Any]) -> tuple[Learner, dict[str, Any]]:
    """The online phase's learner: ``learner`` itself for ``online_loss="iql"``; for
    ``"sac"`` a SAC learner on the same actor, its critics and their targets copied from
    the pretrained IQL loss (the value network is dropped)."""
    if config.online_loss == "iql":
        if config.online_lr is not None:
            for group in saved["optimizer"].param_groups:
                group["lr"] = config.online_lr
        return learner, saved
    iql_loss = saved["loss"]
    probe = config.make_env()
    try:  # a Q-network of the same shape, whose parameters the copied ones replace
        _, qvalue = _iql._sac.make_models(config, probe)
    finally:
        probe.close()
    loss = SACLoss(actor, qvalue, alpha_init=config.online_alpha_init,
                   loss_function="l2", deactivate_vmap=True)
    loss.make_value_estimator(gamma=config.gamma)
    critics = {k: v for k, v in iql_loss.state_dict().items()
               if k.startswith(("qvalue_network_params.", "target_qvalue_network_params."))}
    missing = loss.load_state_dict(critics, strict=False).missing_keys
    if any(k.startswith(("qvalue", "target_qvalue")) for k in missing):
        raise RuntimeError(f"SACLoss did not take IQL's critics: missing {missing}")
    optim = torch.optim.Adam(loss.parameters(), lr=config.online_lr or config.lr)
    online = Learner(loss, optim, minibatch_size=config.batch_size,
                     target_updater=SoftUpdate(loss, tau=config.tau))
    online.updates, online.batches = learner.updates, learner.batches
    return online, {"loss": loss, "optimizer": optim}


# ---------------------------------------------------------------------------------- entry points
_pipeline = OfflineToOnlinePipeline(NAME, "IQL", IQLOnlineConfig, _iql.make_learner, __doc__,
                                    make_online_learner=make_online_learner)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
