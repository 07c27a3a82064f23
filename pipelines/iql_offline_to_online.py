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

What beats SAC from scratch there (2026-12-05, 5,000 IQL updates on medium, temperature
0.3, 64-unit networks, then SAC's update at 2 updates per frame, Adam 1e-3, alpha from 1,
half of each batch from the dataset; first online evaluation, every 500 frames, reaching
-241.3 = 90 normalized, seeds 0/1/2): IQL's actor with **fresh LayerNorm critics
calibrated on the dataset** (``--online-critics fresh --critic-layer-norm
--calibration-updates 2000``: the actor frozen, no online frame spent) reaches it at
1,550 / 1,050 / 1,050 frames, SAC from scratch at the same 2 updates per frame at 2,050 /
1,550 / 2,050 (seeds 3/4/5, run after the choice: 1,550 / 1,050 / 1,050 against 2,050 /
2,050 / 2,050; the variant was picked on seed 0 among four; "first reaching" says nothing
of staying: seed 5 went back to -450 at 1,550 frames). Both halves matter: fresh LayerNorm critics without the calibration reach it
at 1,550 / 2,050 / 2,050 (the actor, steered by critics that know nothing yet, first
drifts down), calibrated critics without LayerNorm at - / 1,550 / 1,550; the actor frozen
online for the first 500 frames instead of the calibration (``--actor-warmup-frames
500``): 1,550 / 2,050 / 1,550, and after the calibration (seed 0) 2,050. IQL's own critics
calibrated the same way (``online_critics "pretrained"``) still collapse (not reached in
2,500 frames, seed 0).
``checkpoint.pt`` is written after each phase with its ``phase``; ``--resume`` goes on in it.

    $ streamrl run iql_offline_to_online --dataset minari:pendulum/medium-v0 \\
        --updates 20000 --online-frames 10000
    $ streamrl run iql_offline_to_online --dataset minari:pendulum/medium-v0 --hidden 64 \\
        --temperature 0.3 --updates 5000 --online-frames 2500 --learning-starts 100 \\
        --online-eval-interval 500 \\
        --online-loss sac --online-lr 1e-3 --online-alpha-init 1 --updates-per-frame 2 \\
        --online-critics fresh --critic-layer-norm --calibration-updates 2000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from streamrl.cli import load_pipeline
from streamrl.modules import MLP, ValueOperator
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
    the target entropy, and Adam at ``online_lr`` (``None``: ``lr``).

    With ``"sac"``: ``online_critics`` ``"pretrained"`` takes IQL's critics, ``"fresh"``
    new ones (RLPD's start: the pretrained actor, critics learnt on the mixed replay), with
    LayerNorm after each hidden layer when ``critic_layer_norm`` (fresh critics only: IQL's
    have none); ``calibration_updates`` critic-only SAC updates on the dataset alone at the
    switch, the actor and the temperature frozen (no online frame spent: the critics become
    the pretrained actor's soft Q before they steer it); ``actor_warmup_frames`` keeps the
    actor and the temperature frozen for the first ``actor_warmup_frames *
    updates_per_frame`` online updates, while the critics learn on the mixed replay."""

    online_loss: str = "iql"
    online_alpha_init: float = 0.1
    online_lr: float | None = None
    online_critics: str = "pretrained"
    critic_layer_norm: bool = False
    calibration_updates: int = 0
    actor_warmup_frames: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_field(self, "online_loss", self.online_loss in ("iql", "sac"), "'iql' or 'sac'")
        check_field(self, "online_alpha_init", self.online_alpha_init > 0, "> 0")
        check_field(self, "online_lr", self.online_lr is None or self.online_lr > 0,
                    "None or > 0")
        check_field(self, "online_critics", self.online_critics in ("pretrained", "fresh"),
                    "'pretrained' or 'fresh'")
        check_field(self, "critic_layer_norm", isinstance(self.critic_layer_norm, bool), "a bool")
        for name in ("calibration_updates", "actor_warmup_frames"):
            value = getattr(self, name)
            check_field(self, name, isinstance(value, int) and not isinstance(value, bool)
                        and value >= 0, "an int >= 0")
        sac_only = [n for n, on in (("online_critics", self.online_critics != "pretrained"),
                                    ("critic_layer_norm", self.critic_layer_norm),
                                    ("calibration_updates", self.calibration_updates),
                                    ("actor_warmup_frames", self.actor_warmup_frames)) if on]
        if sac_only and self.online_loss != "sac":
            raise ValueError(f"{type(self).__name__}.{sac_only[0]} needs online_loss='sac', "
                             f"found {self.online_loss!r}")
        if self.critic_layer_norm and self.online_critics != "fresh":
            raise ValueError(f"{type(self).__name__}.critic_layer_norm needs "
                             "online_critics='fresh' (IQL's pretrained critics have no "
                             "LayerNorm)")


def make_qvalue(config: IQLOnlineConfig, env: Any) -> ValueOperator:
    """SAC's Q-network (``observation, action -> state_action_value``), with LayerNorm after
    each hidden layer when ``config.critic_layer_norm`` (RLPD's critics)."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    act_dim = env.action_spec.shape[-1]
    norm = nn.LayerNorm if config.critic_layer_norm else None
    return ValueOperator(MLP(in_features=obs_dim + act_dim, out_features=1,
                             num_cells=[config.hidden] * 2, activation_class=nn.ReLU,
                             norm_class=norm), in_keys=["observation", "action"])


class _FrozenActor(nn.Module):
    """SAC's loss with its actor and temperature terms detached while ``learner.updates <
    until`` (their parameters then get no gradient, so Adam leaves them and their moments
    as they are); ``until`` counts the learner's total updates, the pretraining's
    included, so a resumed run agrees."""

    def __init__(self, loss: SACLoss, until: int):
        super().__init__()
        self.loss, self.until = loss, until
        self.learner: Learner | None = None

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        out = self.loss(td)
        if self.learner is not None and self.learner.updates < self.until:
            for key in ("loss_actor", "loss_alpha"):
                out.set(key, out.get(key).detach())
        return out


def make_online_learner(config: IQLOnlineConfig, actor: Any, learner: Learner,
                        saved: dict[str, Any], dataset: Any = None
                        ) -> tuple[Learner, dict[str, Any]]:
    """The online phase's learner: ``learner`` itself for ``online_loss="iql"``; for
    ``"sac"`` a SAC learner on the same actor, its critics and their targets copied from
    the pretrained IQL loss (the value network is dropped) or fresh, first calibrated on
    ``dataset`` (a replay buffer; ``None``, as when a resumed online phase will load its
    checkpoint: not calibrated) for ``calibration_updates`` critic-only updates."""
    if config.online_loss == "iql":
        if config.online_lr is not None:
            for group in saved["optimizer"].param_groups:
                group["lr"] = config.online_lr
        return learner, saved
    iql_loss = saved["loss"]
    probe = config.make_env()
    try:  # pretrained: a Q-network of the same shape, whose parameters the copied ones replace
        qvalue = make_qvalue(config, probe)
    finally:
        probe.close()
    loss = SACLoss(actor, qvalue, alpha_init=config.online_alpha_init,
                   loss_function="l2", deactivate_vmap=True)
    loss.make_value_estimator(gamma=config.gamma)
    if config.online_critics == "pretrained":
        critics = {k: v for k, v in iql_loss.state_dict().items()
                   if k.startswith(("qvalue_network_params.", "target_qvalue_network_params."))}
        missing = loss.load_state_dict(critics, strict=False).missing_keys
        if any(k.startswith(("qvalue", "target_qvalue")) for k in missing):
            raise RuntimeError(f"SACLoss did not take IQL's critics: missing {missing}")
    optim = torch.optim.Adam(loss.parameters(), lr=config.online_lr or config.lr)
    soft = SoftUpdate(loss, tau=config.tau)
    if config.calibration_updates and dataset is not None:
        # the critics only: the actor's and the temperature's terms are not backpropagated
        critic = Learner(loss, optim, minibatch_size=config.batch_size, target_updater=soft,
                         loss_keys=["loss_qvalue"])
        for _ in range(config.calibration_updates):
            critic.step({"in": dataset.sample(config.batch_size)})
    until = config.updates + round(config.actor_warmup_frames * config.updates_per_frame)
    frozen = _FrozenActor(loss, until)
    online = Learner(frozen, optim, minibatch_size=config.batch_size, target_updater=soft)
    frozen.learner = online
    online.updates, online.batches = learner.updates, learner.batches
    return online, {"loss": loss, "optimizer": optim}


# ---------------------------------------------------------------------------------- entry points
_pipeline = OfflineToOnlinePipeline(NAME, "IQL", IQLOnlineConfig, _iql.make_learner, __doc__,
                                    make_online_learner=make_online_learner)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
