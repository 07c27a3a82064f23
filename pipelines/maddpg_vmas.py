"""Competitive MADDPG on VMAS ``simple_tag``: ``streamrl run maddpg_vmas``.

TorchRL's competitive multi-agent DDPG tutorial (``multiagent_competitive_ddpg``) as one
concurrent graph: two agent groups, chasers (``"adversary"``) and an evader (``"agent"``),
each with its own replay buffer and learner, fed by one rollout::

    rollout (process) --+--> replay sink ==> replay source --> learner --> weight sync --> metrics
      (both groups'     |    (adversary)                     (adversary)    |   evaluator
       policies)        +--> agent_until_freeze --> agent_replay_sink ==> agent_replay_source
                                                        --> agent_learner --> agent_stats

- the rollout plays a ``TensorDictSequential`` of every group's policy: a decentralised
  ``MultiAgentMLP`` (shared parameters, depth 2, 256 tanh cells) squashed into the action
  bounds (``TanhDelta``), then ``AdditiveGaussianModule`` noise annealed from 0.9 to 0.1
  over half the frames;
- each collected batch goes to every group's buffer, which stores the group's entries only
  (the other groups' are dropped) with the root ``done`` / ``terminated`` expanded to the
  group's agents, as the tutorial's ``process_batch``;
- each group trains a ``DDPGLoss`` on its keys (``(group, "state_action_value")``,
  ``(group, "reward")``, ``(group, "done")``, ``(group, "terminated")``; one term per
  agent) with a centralised critic (a ``MultiAgentMLP`` of the group's observations and
  actions, ``centralized=True``: MADDPG; ``--iddpg``: each agent's own, IDDPG), TD(0)
  targets from a Polyak-averaged critic (tau 0.005), one Adam per network (lr 3e-4),
  gradients clipped at norm 1; ``updates_per_frame`` 0.1 of ``batch_size`` 128 rows: the
  tutorial's 100 optimiser steps per 1,000-frame iteration, kept by each buffer's rate
  limiter (within one sampled message of slack);
- both learners step under one lock and the weight sync publishes the whole policy (both
  groups) after each message of the first group's learner; its final publication (and the
  final evaluation) waits for every group's learner to end.

**Freezing the evaders.** ``--freeze-evaders-at ITER`` (default: half the iterations,
``n_iters // 2``) stops the learner of ``--freeze-group`` (default ``"agent"``, the
evader) after iteration ``ITER``, counted from 0 as TorchRL's
``iteration_when_stop_training_evaders``, which it equals: the evaders train on iterations
``0 .. ITER`` (``ITER + 1`` iterations of 100 updates each), then their learner ends while
the chasers' goes on, their buffer stops storing batches and their exploration noise stops
annealing. An iteration is one batch of ``frames_per_batch`` frames (``n_iters =
frames / frames_per_batch``). ``ITER >= n_iters - 1`` trains them to the end.

The first group that is not frozen (``"adversary"``) is the one the graph's main learner
trains: ``loss_actor``, ``loss_value`` and ``updates`` are its; every other group ``G``
adds ``loss_actor/G``, ``loss_value/G`` and ``updates/G`` (``updates/<first group>`` too). ``train_return/G`` is the mean
per-agent return of group ``G``'s episodes that ended since the previous row
(``train_return``: the first group's). The evaluator plays the policies without noise in
``eval_episodes`` VMAS envs; ``eval_return`` is the first group's mean per-agent return.

``--scenario`` runs another VMAS scenario with agent groups (``n_chasers``, ``n_evaders``
and ``n_obstacles`` configure ``simple_tag`` only; other scenarios run with their own
defaults); ``--freeze-group`` names the group to freeze (checked against the scenario's
groups when the freeze cuts training short).

The run directory is ``td3_mujoco``'s: ``config.json``, ``metrics.csv`` / ``metrics.jsonl``
(the columns above), TensorBoard, ``learning_curve.png`` and ``checkpoint.pt`` (every
group's networks, optimisers, targets, buffer and counters, and the exploration schedules).
``--resume`` continues from it with a larger ``--frames``; as in every off-policy graph, a
resumed run starts new episodes (their ids follow the stored ones). The default freeze iteration follows
``--frames``: pass ``--freeze-evaders-at`` when resuming with a larger budget to keep it.

    $ streamrl run maddpg_vmas --seed 1
    $ streamrl run maddpg_vmas --iddpg --freeze-evaders-at 9
    $ streamrl graph maddpg_vmas
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.envs import EnvBase, RewardSum, TransformedEnv
from streamrl.envs.libs.vmas import VmasEnv
from streamrl.envs.marl_groups import expand_done_to_group
from streamrl.envs.transforms import TeamReward
from streamrl.graph import Map, Sink
from streamrl.modules import (
    AdditiveGaussianModule,
    MultiAgentMLP,
    ProbabilisticActor,
    TanhDelta,
)
from streamrl.objectives import DDPGLoss, SoftUpdate, ValueEstimators
from streamrl.ops import LastRow, Learner, OffPolicyGraph, ReplaySink, ReplaySource, sample_budget
from streamrl.train import OffPolicyConfig, check_field, check_positive_ints, driver

NAME = "maddpg_vmas"

COLUMNS = [
    "frames", "wall_s", "fps", "updates", "batches", "train_return", "train_episodes",
    "eval_return", "eval_return_std", "eval_frames", "loss_actor", "loss_value", "grad_norm",
    "policy_version", "batch_policy_version", "staleness", "staleness_max",
    "collector_version", "eval_s",
]


@dataclass
class MADDPGConfig(OffPolicyConfig):
    """Hyper-parameters of competitive MADDPG on VMAS (defaults: TorchRL's
    ``multiagent_competitive_ddpg`` tutorial: 10 iterations of 1,000 frames, replay 1e6
    per group, 100 optimiser steps of 128 rows per iteration and group, lr 3e-4, gradient
    norm 1, gamma 0.99, tau 0.005, 256-cell depth-2 tanh networks, noise 0.9 -> 0.1 over
    half the frames). ``freeze_evaders_at``: the last iteration (from 0) the
    ``freeze_group`` trains (``None``: ``n_iters // 2``). ``env_name`` is
    ``"vmas/<scenario>"`` (set from ``scenario``)."""

    env_name: str = "vmas/simple_tag"
    scenario: str = "simple_tag"
    max_steps: int = 100
    n_chasers: int = 2
    n_evaders: int = 1
    n_obstacles: int = 2
    frames: int = 10_000
    frames_per_batch: int = 1_000
    batch_size: int = 128
    updates_per_frame: float = 0.1
    learning_starts: int = 1_000
    init_random_frames: int | None = 0
    depth: int = 2
    max_grad_norm: float = 1.0
    sigma_init: float = 0.9
    sigma_end: float = 0.1
    iddpg: bool = False
    freeze_group: str = "agent"
    freeze_evaders_at: int | None = None
    eval_interval: int = 5_000
    eval_episodes: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "max_steps", "n_chasers", "n_evaders", "depth")
        check_field(self, "n_obstacles", self.n_obstacles >= 0, ">= 0")
        check_field(self, "max_grad_norm", self.max_grad_norm > 0, "> 0")
        check_field(self, "sigma_init", self.sigma_init >= 0, ">= 0")
        check_field(self, "sigma_end", self.sigma_end >= 0, ">= 0")
        check_field(self, "scenario", isinstance(self.scenario, str) and bool(self.scenario),
                    "a VMAS scenario name")
        n = self.freeze_evaders_at
        check_field(self, "freeze_evaders_at", n is None or (
            isinstance(n, int) and not isinstance(n, bool) and n >= 0),
            "None or an int >= 0 (the last iteration the frozen group trains, from 0)")
        expected = f"vmas/{self.scenario}"
        if self.env_name == type(self).env_name:
            self.env_name = expected
        elif self.env_name != expected:
            raise ValueError(f"{type(self).__name__}.env_name is set from scenario "
                             f"({expected!r}): pass --scenario, found env_name "
                             f"{self.env_name!r}")

    @property
    def n_iters(self) -> int:
        """Collection iterations: batches of ``frames_per_batch`` frames in ``frames``."""
        return math.ceil(self.frames / self.frames_per_batch)

    @property
    def freeze_at(self) -> int:
        """The last iteration (from 0) the frozen group trains."""
        return self.n_iters // 2 if self.freeze_evaders_at is None else self.freeze_evaders_at

    @property
    def freezes(self) -> bool:
        """Whether the freeze cuts the frozen group's training short of the budget."""
        return self.freeze_at < self.n_iters - 1

    @property
    def num_envs(self) -> int:
        """VMAS envs stepped side by side: ``frames_per_batch // max_steps`` (at least 1)."""
        return max(1, self.frames_per_batch // self.max_steps)

    def _vmas(self, num_envs: int, seed: int | None = None) -> VmasEnv:
        kwargs: dict[str, Any] = {}
        if self.scenario == "simple_tag":
            kwargs = dict(num_good_agents=self.n_evaders, num_adversaries=self.n_chasers,
                          num_landmarks=self.n_obstacles)
        return VmasEnv(scenario=self.scenario, num_envs=num_envs, continuous_actions=True,
                       max_steps=self.max_steps, seed=seed, **kwargs)

    def make_env(self) -> EnvBase:
        """``num_envs`` VMAS envs with each group's episode return (``RewardSum`` into
        ``(group, "episode_reward")``)."""
        env = self._vmas(self.num_envs, self.seed)
        return TransformedEnv(env, RewardSum(in_keys=env.reward_keys,
                                             reset_keys=["_reset"] * len(env.group_map)))

    def make_eval_env(self) -> EnvBase:
        """``eval_episodes`` VMAS envs whose ``("next", "reward")`` is the first group's
        mean per-agent reward (what ``eval_return`` sums)."""
        env = self._vmas(self.eval_episodes)
        return TransformedEnv(env, TeamReward(train_groups(self, env.group_map)[0]))


# ---------------------------------------------------------------------------------- groups
def train_groups(config: MADDPGConfig, group_map: Mapping[str, Any]) -> list[str]:
    """The scenario's groups, the main learner's first: the first one not frozen. Raises
    ``ValueError`` when the freeze cuts training short and ``config.freeze_group`` is not a
    group of the scenario, or is its only one."""
    groups = list(group_map)
    if not config.freezes:
        return groups
    frozen = config.freeze_group
    if frozen not in groups:
        raise ValueError(f"{NAME}: --freeze-group {frozen!r} is not a group of VMAS scenario "
                         f"{config.scenario!r}; expected one of {groups} (or "
                         f"--freeze-evaders-at >= {config.n_iters - 1}: no freeze)")
    others = [g for g in groups if g != frozen]
    if not others:
        raise ValueError(f"{NAME}: --freeze-group {frozen!r} is the only group of VMAS "
                         f"scenario {config.scenario!r}; a freeze needs another group to "
                         f"go on training")
    return [*others, frozen]


class GroupRows:
    """A group's buffer's write transform: the batch without the other groups' entries,
    with the root ``done`` and ``terminated`` expanded to the group's agents where the env
    gives none per agent (TorchRL's tutorial's ``process_batch``). The batch itself is not
    written to (the rollout's batches also go to the other groups and the metrics)."""

    def __init__(self, group: str, groups: list[str]) -> None:
        self.group = group
        self.excluded = [k for other in groups if other != group for k in (other, ("next", other))]

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        return expand_done_to_group(batch.exclude(*self.excluded).clone(False), self.group)


# ---------------------------------------------------------------------------------- models
@dataclass
class GroupModels:
    """A group's networks: its deterministic actor, its critic and its exploration noise."""

    actor: ProbabilisticActor
    critic: TensorDictSequential
    noise: AdditiveGaussianModule


class _Concat(nn.Module):
    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.cat([observation, action], dim=-1)


def make_group_models(config: MADDPGConfig, env: Any, group: str) -> GroupModels:
    """The tutorial's networks for ``group`` of ``env``: a decentralised shared-parameter
    ``MultiAgentMLP`` actor squashed into the action bounds (``TanhDelta``), a critic of
    the group's observations and actions (centralised unless ``config.iddpg``) and the
    annealed Gaussian noise."""
    spec = env.full_action_spec[group, "action"]
    if getattr(spec, "space", None) is None or not hasattr(spec.space, "low"):
        raise ValueError(f"{NAME} needs bounded continuous actions, found "
                         f"{type(spec).__name__} for group {group!r} of {config.scenario!r}")
    spec = spec[(0,) * len(env.batch_size)]  # one env's: [n_agents, action]
    obs_dim = env.observation_spec[group, "observation"].shape[-1]
    act_dim = spec.shape[-1]
    n_agents = len(env.group_map[group])
    net = MultiAgentMLP(n_agent_inputs=obs_dim, n_agent_outputs=act_dim, n_agents=n_agents,
                        centralized=False, share_params=True, depth=config.depth,
                        num_cells=config.hidden, activation_class=nn.Tanh)
    actor = ProbabilisticActor(
        module=TensorDictModule(net, in_keys=[(group, "observation")],
                                out_keys=[(group, "param")]),
        spec=spec, in_keys=[(group, "param")], out_keys=[(group, "action")],
        distribution_class=TanhDelta,
        distribution_kwargs={"low": spec.space.low, "high": spec.space.high},
        return_log_prob=False,
    )
    critic = TensorDictSequential(
        TensorDictModule(_Concat(), in_keys=[(group, "observation"), (group, "action")],
                         out_keys=[(group, "obs_action")]),
        TensorDictModule(
            MultiAgentMLP(n_agent_inputs=obs_dim + act_dim, n_agent_outputs=1,
                          n_agents=n_agents, centralized=not config.iddpg, share_params=True,
                          depth=config.depth, num_cells=config.hidden,
                          activation_class=nn.Tanh),
            in_keys=[(group, "obs_action")], out_keys=[(group, "state_action_value")]),
    )
    noise = AdditiveGaussianModule(spec, sigma_init=config.sigma_init,
                                   sigma_end=config.sigma_end,
                                   annealing_num_steps=max(1, config.frames // 2),
                                   action_key=(group, "action"))
    return GroupModels(actor, critic, noise)


def make_learner(config: MADDPGConfig, group: str, models: GroupModels, *,
                 lock: Any = None) -> tuple[Learner, dict[str, Any]]:
    """``group``'s DDPG learner (the tutorial's loss on the group's keys, TD(0), one Adam
    per network, clipped gradients, Polyak targets) and the pieces a checkpoint saves."""
    loss = DDPGLoss(actor_network=models.actor, value_network=models.critic,
                    delay_value=True, loss_function="l2")
    loss.set_keys(state_action_value=(group, "state_action_value"),
                  reward=(group, "reward"), done=(group, "done"),
                  terminated=(group, "terminated"))
    loss.make_value_estimator(ValueEstimators.TD0, gamma=config.gamma)
    critic = [p for p in loss.value_network_params.values(True, True) if p.requires_grad]
    value_optim = torch.optim.Adam(critic, lr=config.lr)
    actor_optim = torch.optim.Adam(models.actor.parameters(), lr=config.lr)
    learner = Learner(loss, value_optim, minibatch_size=config.batch_size,
                      loss_keys=["loss_value"], actor_optimizer=actor_optim,
                      actor_loss_keys=["loss_actor"], max_grad_norm=config.max_grad_norm,
                      target_updater=SoftUpdate(loss, tau=config.tau), lock=lock)
    return learner, {"loss": loss, "optimizer": value_optim, "actor_optimizer": actor_optim}


# ---------------------------------------------------------------------------------- the graph
class _StepUntil:
    """An exploration module's annealing, stepped for at most ``frames`` more frames (the
    frozen group's: the tutorial anneals a group only while it trains)."""

    def __init__(self, module: AdditiveGaussianModule, frames: int) -> None:
        self.module, self.left = module, max(0, frames)

    def step(self, frames: int) -> None:
        n = min(frames, self.left)
        if n > 0:
            self.module.step(n)
            self.left -= n


class _Until:
    """Passes the rollout's batches until ``frames`` more frames have passed (the frozen
    group's buffer stores nothing after its last training iteration)."""

    def __init__(self, frames: int) -> None:
        self.left = max(0, frames)

    def __call__(self, batch: TensorDictBase) -> TensorDictBase | None:
        n = batch.numel()
        if n > self.left:
            self.left = 0
            return None
        self.left -= n
        return batch


def group_columns(groups: list[str]) -> list[str]:
    """The metrics columns of a run of ``groups`` (the main learner's first)."""
    per_group = [*(f"train_return/{g}" for g in groups), f"updates/{groups[0]}"]
    for g in groups[1:]:
        per_group += [f"loss_actor/{g}", f"loss_value/{g}", f"updates/{g}"]
    return [*COLUMNS, *per_group]


def build(config: MADDPGConfig, run_dir: Path | None, progress: bool,
          state: dict[str, Any] | None = None) -> OffPolicyGraph:
    """The concurrent graph of ``config``: one rollout, one replay and learner per group,
    restored from ``state`` (a checkpoint)."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        groups = train_groups(config, probe.group_map)
        models = {g: make_group_models(config, probe, g) for g in groups}
        policy = TensorDictSequential(*(TensorDictSequential(models[g].actor, models[g].noise)
                                        for g in probe.group_map))
        with torch.no_grad():  # checks the keys once
            policy(probe.reset())
    finally:
        probe.close()
    main, side = groups[0], groups[1:]
    frozen = config.freeze_group if config.freezes else None
    learner, saved = make_learner(config, main, models[main])
    saved["policy"] = policy  # (its noise modules hold the annealing schedules)
    buffers = {}
    for g in groups:
        buffers[g] = config.make_buffer()
        buffers[g].append_transform(GroupRows(g, list(probe.group_map)), invert=True)
    side_learners, stats = {}, {}
    for g in side:
        side_learners[g], pieces = make_learner(config, g, models[g], lock=learner.lock)
        saved.update({f"{g}_{k}": v for k, v in pieces.items()})
        saved.update({f"{g}_learner": side_learners[g], f"{g}_buffer": buffers[g]})
        stats[g] = LastRow()
    done = 0 if state is None else int(state["frames"])
    freeze_frames = (config.freeze_at + 1) * config.frames_per_batch
    exploration = [_StepUntil(models[g].noise, freeze_frames - done) if g == frozen
                   else models[g].noise for g in groups]
    extras: dict[str, Any] = {f"updates/{main}": lambda: learner.updates}
    for g in side:
        extras.update({f"loss_actor/{g}": stats[g].reader("loss_actor"),
                       f"loss_value/{g}": stats[g].reader("loss_value"),
                       f"updates/{g}": stats[g].reader("updates")})
    og = config.graph(NAME, policy, learner, buffer=buffers[main], saved=saved, state=state,
                      run_dir=run_dir, progress=progress, columns=group_columns(groups),
                      exploration=exploration, extra_metrics=extras,
                      return_key={g: ("next", g, "episode_reward") for g in groups})
    g_ = og.graph
    for g in side:
        buffer, side_learner = buffers[g], side_learners[g]
        limiter = buffer.rate_limiter
        upstream = g_["rollout"]
        if g == frozen:
            # the tutorial's updates for iterations 0 .. freeze_at, within what the limiter
            # grants for those iterations' frames; fewer the updates already made
            exact = int(freeze_frames * config.samples_per_insert) // config.sample_size
            grant = sample_budget(limiter, max(freeze_frames, int(limiter.inserts)),
                                  config.sample_size)
            num = max(0, min(exact - side_learner.batches, grant))
            gate = g_.add(Map(_Until(freeze_frames - int(limiter.inserts))),
                          name=f"{g}_until_freeze")
            g_.connect(upstream, gate)
            upstream = gate
        else:
            num = sample_budget(limiter, config.collected_frames(), config.sample_size)
        sink = g_.add(ReplaySink(buffer), name=f"{g}_replay_sink", placement="thread")
        source = g_.add(ReplaySource(buffer, config.sample_size, num_batches=num,
                                     timeout=buffer.rate_limit_timeout),
                        name=f"{g}_replay_source", placement="thread")
        learn = g_.add(side_learner, name=f"{g}_learner", placement="thread")
        out = g_.add(Sink(stats[g].update), name=f"{g}_stats")
        g_.connect(upstream, sink)
        g_.connect(source, learn, capacity=2).connect(learn, out)
        # the weight sync publishes after the main learner's messages only, but its stream
        # (and so its final publication and evaluation) ends when every learner has ended
        ends = g_.add(Map(_nothing), name=f"{g}_learner_end")
        g_.connect(learn, ends).connect(ends, g_["weight_sync"])
    if side:
        g_["weight_sync"].op.publish_at_end = True
    return og


def _nothing(_: Any) -> None:
    """Drops every item (a ``Map`` returning None emits nothing): only the end passes."""
    return None


# ---------------------------------------------------------------------------------- entry points
_pipeline = driver.OffPolicyPipeline(NAME, "MADDPG", MADDPGConfig, build, __doc__,
                                     resumable=("freeze_evaders_at",))
train, parse_args, build_graph = _pipeline.train, _pipeline.parse_args, _pipeline.build_graph


def _summary(name: str, config: MADDPGConfig, result: Any) -> None:
    """The off-policy summary, preceded by each group's last training return."""
    rows = [] if result.run_dir is None else _read_rows(result.run_dir)
    last: dict[str, float] = {}
    for row in rows:
        last.update({k.split("/", 1)[1]: float(v) for k, v in row.items()
                     if k.startswith("train_return/") and v not in ("", None)})
    if last:
        print(f"{name}: last train return per agent: "
              + ", ".join(f"{g} {v:.2f}" for g, v in last.items()))
    driver.print_offpolicy_summary(name, config, result)


def _read_rows(run_dir: Path) -> list[dict[str, Any]]:
    from streamrl.train.metrics import read_metrics

    try:
        return list(read_metrics(run_dir))
    except (OSError, ValueError):
        return []


def main(argv: list[str] | None = None) -> int:
    """Train from command-line flags, print each group's last return, a summary and the
    graph's report."""
    return driver.main(NAME, parse_args, train, argv, summary=_summary)


if __name__ == "__main__":
    sys.exit(main())
