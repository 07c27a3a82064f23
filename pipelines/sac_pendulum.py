"""SAC on Pendulum-v1: ``streamrl run sac_pendulum``.

Collection and learning run concurrently, as one graph (the topology of ``dqn_cartpole``):

    rollout (process) --> replay sink (thread) ==[buffer + rate limiter]==> replay source
        |                                                                     (thread)
        +--> metrics sink <-- weight sync <-- learner (thread) <----------------+
                   ^               |
                   +-- evaluator <-+ (weight snapshots at the evaluation points)

The rollout samples actions from the tanh-Gaussian actor published in a
:class:`~streamrl.ops.PolicyWeights` and stamps each batch with its
``("collector", "policy_version")``. The buffer's :class:`~streamrl.data.SampleToInsertRatio`
limiter starts sampling after ``learning_starts`` frames and then keeps
``updates_per_frame`` updates of ``batch_size`` per collected frame (SB3's ``train_freq=1,
gradient_steps=1``), within one batch of slack. The replay source draws exactly the batches
the limiter grants for the frame budget (:func:`~streamrl.ops.sample_budget`), so the run
ends by itself: last updates, final publication, final evaluation.

Hyper-parameters follow rl-zoo's Pendulum-v1 SAC (lr 1e-3, batch 256, gamma 0.99, tau 0.005,
automatic entropy tuning with target entropy -1, two 256x256 Q-networks, a 256x256 actor,
20k frames), except that the rollout sends its frames in batches of ``frames_per_batch``
(one message per batch; the ratio limiter keeps the update rate per frame).

A run directory (``runs/sac_pendulum-<timestamp>/``) receives ``config.json``,
``metrics.csv`` / ``metrics.jsonl`` (losses, ``alpha``, ``entropy``, ``policy_version``,
``staleness``, ``staleness_max``, ``eval_return``), ``checkpoint.pt`` and
``learning_curve.png``. ``--max-policy-lag L`` bounds how many policy versions behind the
learner a sampled row may be (see ``streamrl.ops.min_policy_lag``). The graph's
report (busy/blocked time per operator, the bottleneck) is printed at the end.

    $ streamrl run sac_pendulum --frames 20000 --seed 1
    $ streamrl graph sac_pendulum
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.modules import (
    MLP,
    NormalParamExtractor,
    ProbabilisticActor,
    TanhNormal,
    ValueOperator,
)
from streamrl.objectives import SACLoss, SoftUpdate
from streamrl.ops import Learner, OffPolicyGraph
from streamrl.train import OffPolicyConfig, check_field, driver

NAME = "sac_pendulum"

COLUMNS = [
    "frames", "wall_s", "fps", "updates", "batches", "train_return", "train_episodes",
    "eval_return", "eval_return_std", "eval_frames", "loss_actor", "loss_qvalue", "loss_alpha", "alpha",
    "entropy", "policy_version", "batch_policy_version", "staleness", "staleness_max",
    "collector_version", "eval_s",
]


@dataclass
class SACConfig(OffPolicyConfig):
    """Hyper-parameters of the SAC Pendulum pipeline (defaults: rl-zoo's Pendulum-v1 SAC);
    the fields every off-policy pipeline shares are :class:`~streamrl.train.OffPolicyConfig`'s
    (frames per rollout message, minibatches per sample, placement, ``max_policy_lag``,
    ``lockstep``, logger). ``alpha_init`` is the entropy temperature's start."""

    env_name: str = "Pendulum-v1"
    frames: int = 20_000
    lr: float = 1e-3
    eval_interval: int = 2000
    target_return: float = -200.0
    alpha_init: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_field(self, "alpha_init", self.alpha_init > 0, "> 0")


# ---------------------------------------------------------------------------------- building
def make_models(config: SACConfig, env: Any) -> tuple[ProbabilisticActor, ValueOperator]:
    """A tanh-Gaussian actor (``observation -> loc, scale -> action``) squashed into the
    action bounds, and a Q-network (``observation, action -> state_action_value``)."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    spec = env.action_spec
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None:
        raise ValueError(f"{NAME} needs a bounded continuous action space, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    act_dim = spec.shape[-1]
    hidden = [config.hidden] * 2
    net = nn.Sequential(
        MLP(in_features=obs_dim, out_features=2 * act_dim, num_cells=hidden,
            activation_class=nn.ReLU),
        NormalParamExtractor(),
    )
    actor = ProbabilisticActor(
        TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high}, spec=spec,
    )
    qnet = MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=hidden,
               activation_class=nn.ReLU)
    qvalue = ValueOperator(qnet, in_keys=["observation", "action"])
    return actor, qvalue


def make_update(config: SACConfig, actor: ProbabilisticActor, qvalue: ValueOperator
                ) -> tuple[SACLoss, torch.optim.Optimizer, SoftUpdate]:
    """What one gradient update uses: the loss, its optimizer and the critics' soft
    update."""
    # the two critics run in a Python loop: on CPU, with 256x256 networks and batch 256,
    # 10.8 ms per update against 11.7-12.6 ms through torch.vmap (same math)
    loss = SACLoss(actor, qvalue, alpha_init=config.alpha_init, loss_function="l2",
                   deactivate_vmap=True)
    loss.make_value_estimator(gamma=config.gamma)
    # one optimizer: the actor, critic and temperature losses touch disjoint parameters
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr, fused=True)
    return loss, optim, SoftUpdate(loss, tau=config.tau)


def tanh_actor(params: Any, spec: Any) -> ProbabilisticActor:
    """A tanh-Gaussian actor squashed into ``spec``'s bounds, on ``params``: a TensorDict
    module writing ``"params"``, the location and the scale's pre-activation side by side
    (e.g. ``TensorDictModule(MLP(...), in_keys=[...], out_keys=["params"])``; an ``MLP``
    concatenates its inputs)."""
    return ProbabilisticActor(
        TensorDictSequential(
            params,
            TensorDictModule(NormalParamExtractor(), in_keys=["params"],
                             out_keys=["loc", "scale"])),
        in_keys=["loc", "scale"], distribution_class=TanhNormal,
        distribution_kwargs={"low": spec.low, "high": spec.high}, spec=spec)


def build(config: SACConfig, run_dir: Path | None, progress: bool,
          state: dict[str, Any] | None = None, *, name: str = NAME,
          models: Callable[[Any, Any], tuple[Any, Any]] | None = None,
          columns: list[str] | None = None) -> OffPolicyGraph:
    """The concurrent SAC graph of ``config`` (named ``name``, with the actor and critic of
    ``models(config, env)``, default :func:`make_models`, and the metrics ``columns``,
    default :data:`COLUMNS`: ``sac_mujoco``, ``sac_her`` and ``sac_multitask`` build their
    graphs here too), restored from ``state`` (a checkpoint) when given."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        actor, qvalue = (models or make_models)(config, probe)
        with torch.no_grad():  # materialise nothing lazy; checks the keys once
            actor(probe.reset())
    finally:
        probe.close()
    loss, optim, soft = make_update(config, actor, qvalue)
    learner = Learner(loss, optim, minibatch_size=config.batch_size, target_updater=soft)
    # the loss's state holds the Q-networks, their targets and the temperature
    return config.graph(name, actor, learner, saved={"policy": actor, "loss": loss,
                                                     "optimizer": optim},
                        state=state, run_dir=run_dir, progress=progress,
                        columns=columns or COLUMNS)


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = driver.OffPolicyPipeline(NAME, "SAC", SACConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
