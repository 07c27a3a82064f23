"""PPO pipelines: the config, the collect-then-learn loop (lockstep, or with collection
running ahead in a worker process), its checkpoint and its command line, shared by
``ppo_cartpole``, ``ppo_mujoco``, ``ppo_atari`` ... (a pipeline file brings its defaults and
its networks, and binds :class:`PPOPipeline`'s entry points)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamrl.checkpoint import Checkpoint, GlobalRNGState
from streamrl.collectors import SyncDataCollector
from streamrl.envs import EnvBase, GymEnv, SerialEnv
from streamrl.envs.transforms import RunningMeanStd
from streamrl.graph import Graph
from streamrl.modules import GRUModule, LSTMModule, set_recurrent_mode
from streamrl.objectives import ClipPPOLoss, ValueEstimators
from streamrl.ops import (
    Learner,
    check_run_logger,
    default_run_logger,
    evaluate_episodes,
    run_metrics_logger,
)
from streamrl.train import driver
from streamrl.train.config import check_field, check_positive_ints, check_ray_address
from streamrl.train.lagged_collector import LaggedCollector
from streamrl.train.progress import RunProgress

__all__ = ["PPOConfig", "PPOPipeline", "PPOResult", "check_recurrence", "orthogonal_init_"]

_COLUMNS = [
    "iteration", "frames", "wall_s", "train_s", "collect_s", "update_s", "fps", "policy_lag",
    "train_return",
    "train_episodes", "eval_return", "loss_objective", "loss_critic", "entropy", "kl_approx",
    "clip_fraction", "lr", "clip_epsilon",
]


_TOPOLOGIES = ("sync", "async")
_ESTIMATORS = ("gae", "vtrace")


@dataclass
class PPOConfig:
    """Hyper-parameters of a clipped-PPO pipeline on a gym env (defaults: Stable-Baselines3's
    PPO defaults: one env x 2048 steps per batch, 10 epochs of minibatches of 64, lr 3e-4,
    GAE(0.99, 0.95), clip range 0.2, value coefficient 0.5, gradient norm clipped at 0.5).
    A pipeline subclasses it with its own defaults and networks.

    ``frames`` is the frame budget and the horizon of the linear schedules (as SB3's
    ``total_timesteps``; ``anneal_lr`` / ``anneal_clip`` turn them on); training stops
    earlier once the evaluation mean reaches ``target_return`` (``None``: never).
    ``normalize_reward`` divides the rewards the learner sees by the running standard
    deviation of the discounted return and clips them at ``clip_reward`` (SB3's
    ``VecNormalize(norm_reward=True)``; the logged returns stay the env's).

    ``topology`` is ``"sync"`` (collect a batch, then learn on it: every batch comes from the
    current weights) or ``"async"`` (a worker process collects the next batches with the
    weights it has while the learner trains, at most ``max_policy_lag`` versions behind:
    :class:`~streamrl.train.lagged_collector.LaggedCollector`). Off-policy correction in
    ``async``: the clipped ratio is taken against the behaviour log-probs the batch carries,
    and GAE is computed with the current critic. Each batch's ``policy_lag`` (learner version
    minus the version that collected it) is a metrics column. ``value_estimator="vtrace"``
    replaces GAE by V-trace (Espeholt et al. 2018: truncated importance weights of the current
    policy over the behaviour one, thresholds 1), which also corrects the value targets for
    the lag.

    ``sequence_length`` trains a recurrent policy (a ``GRUModule`` or ``LSTMModule`` in the
    actor, its state in the env's specs by its primer): the learner's minibatches are whole
    sequences of ``sequence_length`` steps cut from each env's row of the batch
    (``steps_per_env`` and ``minibatch_size`` multiples of it;
    :class:`~streamrl.ops.Learner`'s ``sequence_length``), each run in recurrent mode from the
    state stored at its first step, and GAE's values are computed over whole rows in one
    call (``shifted=True``: a recurrent critic's state runs through the row). ``None``:
    single steps, shuffled.

    ``ray`` (``--ray local|auto|HOST:PORT``) collects on ``ray_actors`` Ray actors (each
    with ``num_envs / ray_actors`` envs and 1 CPU, wherever the cluster has room), in
    lockstep: the weights go out after each update with the token that asks for the next
    batch (:class:`~streamrl.collectors.distributed.RayCollector`); the learner stays here.
    See ``docs/ray_cluster.md``.

    >>> PPOConfig(num_envs=2, steps_per_env=64, minibatch_size=32).frames_per_batch
    128
    """

    env_name: str = "CartPole-v1"
    num_envs: int = 1
    steps_per_env: int = 2048
    minibatch_size: int = 64
    epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 3e-4
    anneal_lr: bool = False
    clip_epsilon: float = 0.2
    anneal_clip: bool = False
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    # clip the value prediction to the collected one +- clip_epsilon (CleanRL's clip_vloss)
    clip_value: bool = False
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    hidden: int = 64
    normalize_reward: bool = False
    clip_reward: float = 10.0
    frames: int = 1_000_000
    eval_interval: int = 10_240
    eval_episodes: int = 10
    eval_seed: int = 10_000
    target_return: float | None = None
    seed: int = 0
    threads: int = 1
    # frames between checkpoints (None: at each evaluation); also written at the end
    checkpoint_interval: int | None = None
    # a streamrl.record logger beside metrics.csv/jsonl: tensorboard (when installed), csv,
    # wandb (offline) or none
    logger: str = default_run_logger()
    # "sync": lockstep collect-then-learn; "async": collection runs ahead in a worker process
    topology: str = "sync"
    # async only: how many policy versions behind the learner a batch may be collected
    max_policy_lag: int = 1
    # advantages and value targets: "gae" (GAE(gamma, gae_lambda)) or "vtrace" (V-trace)
    value_estimator: str = "gae"
    # collect on Ray actors (sync topology): "local" starts a Ray here, "auto" joins the
    # running cluster, "HOST:PORT" its head; None: no Ray
    ray: str | None = None
    # with ray: the env actors (RayCollector's collectors), num_envs shared out among them
    ray_actors: int = 1
    # recurrent policies: minibatches of whole sequences of this many steps (None: steps)
    sequence_length: int | None = None

    def __post_init__(self) -> None:
        check_run_logger(self.logger)
        if self.topology not in _TOPOLOGIES:
            raise ValueError(f"{type(self).__name__}.topology must be one of {_TOPOLOGIES}, "
                             f"found {self.topology!r}")
        check_positive_ints(self, "max_policy_lag", "ray_actors")
        self._check_ray()
        if self.value_estimator not in _ESTIMATORS:
            raise ValueError(f"{type(self).__name__}.value_estimator must be one of "
                             f"{_ESTIMATORS}, found {self.value_estimator!r}")
        check_positive_ints(self, "num_envs", "steps_per_env", "minibatch_size", "epochs",
                            "hidden", "frames", "eval_interval", "eval_episodes", "threads")
        if self.checkpoint_interval is not None:
            check_positive_ints(self, "checkpoint_interval")
        for name in ("gamma", "gae_lambda"):
            check_field(self, name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")
        check_field(self, "clip_epsilon", 0.0 < self.clip_epsilon < 1.0, "in (0, 1)")
        check_field(self, "lr", self.lr > 0, "> 0")
        check_field(self, "clip_reward", self.clip_reward > 0, "> 0")
        self._check_sequences()
        if self.minibatch_size > self.frames_per_batch:
            raise ValueError(
                f"{type(self).__name__}.minibatch_size ({self.minibatch_size}) must not exceed the batch, "
                f"num_envs * steps_per_env = {self.frames_per_batch}"
            )

    def _check_sequences(self) -> None:
        length = self.sequence_length
        if length is None:
            return
        check_positive_ints(self, "sequence_length")
        name = type(self).__name__
        for field in ("steps_per_env", "minibatch_size"):
            if getattr(self, field) % length:
                raise ValueError(f"{name}.{field} must be a multiple of sequence_length "
                                 f"({length}): the learner trains on whole sequences, found "
                                 f"{field}={getattr(self, field)}")
        if self.value_estimator != "gae":
            raise ValueError(f"{name}.sequence_length (a recurrent policy) takes "
                             f"value_estimator='gae', found {self.value_estimator!r}")

    def _check_ray(self) -> None:
        if self.ray is None:
            if self.ray_actors != 1:
                raise ValueError(f"{type(self).__name__}.ray_actors ({self.ray_actors}) needs "
                                 "ray (an address, 'auto' or 'local')")
            return
        check_ray_address(self)
        if self.topology != "sync":
            raise ValueError(f"{type(self).__name__}.ray collects with topology='sync', found "
                             f"topology={self.topology!r}")
        if self.num_envs % self.ray_actors:
            raise ValueError(f"{type(self).__name__}.num_envs ({self.num_envs}) must divide "
                             f"among ray_actors ({self.ray_actors})")

    @property
    def frames_per_batch(self) -> int:
        """Frames per collected batch: ``num_envs * steps_per_env``."""
        return self.num_envs * self.steps_per_env

    def make_env(self, num_envs: int) -> EnvBase:
        """``num_envs`` copies of the config's gym env, stepped in this process."""
        return SerialEnv(num_envs, functools.partial(GymEnv, self.env_name))

    def make_eval_env(self, num_envs: int) -> EnvBase:
        """The evaluation env (default: :meth:`make_env`'s)."""
        return self.make_env(num_envs)


@dataclass
class PPOResult:
    """What a run did: frames, times, the last evaluation and where the files are."""

    frames: int
    iterations: int
    wall_s: float
    train_s: float
    eval_s: float
    collect_s: float
    update_s: float
    eval_return: float | None
    solved_at: int | None
    evaluations: list[tuple[int, float]]
    run_dir: Path | None


def make_loss(config: PPOConfig, actor: nn.Module, critic: nn.Module,
              **kwargs: Any) -> ClipPPOLoss:
    """Clipped PPO loss with an MSE critic and a GAE (or V-trace) value estimator
    (``kwargs``: more :class:`~streamrl.objectives.ClipPPOLoss` arguments)."""
    loss = ClipPPOLoss(
        actor, critic,
        clip_epsilon=config.clip_epsilon,
        entropy_bonus=config.entropy_coef > 0,
        entropy_coeff=config.entropy_coef,
        critic_coeff=config.value_coef,
        loss_critic_type="l2",
        clip_value=config.clip_value,
        normalize_advantage=config.normalize_advantage,
        **kwargs,
    )
    if config.value_estimator == "vtrace":
        loss.make_value_estimator(ValueEstimators.VTrace, gamma=config.gamma)
    else:
        # a recurrent critic's values come from one call over each row (see PPOConfig)
        loss.make_value_estimator(gamma=config.gamma, lmbda=config.gae_lambda,
                                  shifted=config.sequence_length is not None)
    return loss


def make_learner(config: PPOConfig, loss: ClipPPOLoss,
                 optim: torch.optim.Optimizer) -> Learner:
    """``epochs`` passes over each batch in shuffled minibatches, the gradient norm clipped."""
    # named, so that the terms are summed in this order whatever order the loss emits them in
    keys = ["loss_objective", "loss_critic"] + (["loss_entropy"] if loss.entropy_bonus else [])
    return Learner(loss, optim, minibatch_size=config.minibatch_size, epochs=config.epochs,
                   shuffle=True, max_grad_norm=config.max_grad_norm, loss_keys=keys,
                   sequence_length=config.sequence_length)


def check_recurrence(config: PPOConfig, actor: nn.Module) -> None:
    """A recurrent actor needs ``config.sequence_length``, and ``sequence_length`` a
    recurrent actor (``ValueError`` naming what was found otherwise)."""
    recurrent = [type(m).__name__ for m in actor.modules()
                 if isinstance(m, (GRUModule, LSTMModule))]
    name = type(config).__name__
    if config.sequence_length is not None and not recurrent:
        raise ValueError(f"{name}.sequence_length={config.sequence_length} trains a recurrent "
                         f"actor: expected a GRUModule or LSTMModule in it, found "
                         f"{type(actor).__name__} with none")
    if config.sequence_length is None and recurrent:
        raise ValueError(f"the actor holds a {recurrent[0]}: set {name}.sequence_length (the "
                         "learner then trains on whole sequences), found None")


def make_collector(config: PPOConfig, actor: nn.Module) -> Any:
    """The topology's collector of ``num_envs x steps_per_env`` frames per batch: lockstep
    (``sync``), running ahead in a worker process (``async``), or lockstep on ``ray_actors``
    Ray actors (``ray``: a :class:`~streamrl.collectors.distributed.RayCollector`, weights
    sent after each update)."""
    collector: Any
    if config.ray is not None:
        from streamrl.collectors.distributed import RayCollector

        collector = RayCollector(
            functools.partial(config.make_env, config.num_envs // config.ray_actors), actor,
            num_collectors=config.ray_actors, sync=True,
            frames_per_batch=config.frames_per_batch, total_frames=config.frames,
            remote_configs={"num_cpus": 1},
            ray_init_config={"address": None if config.ray == "local" else config.ray},
        )
        collector.set_seed(config.seed)
        return collector
    if config.topology == "async":
        collector = LaggedCollector(
            functools.partial(config.make_env, config.num_envs), actor,
            frames_per_batch=config.frames_per_batch, total_frames=config.frames,
            max_policy_lag=config.max_policy_lag,
        )
        collector.set_seed(config.seed)
        return collector
    collector = SyncDataCollector(
        functools.partial(config.make_env, config.num_envs),
        actor,
        frames_per_batch=config.frames_per_batch,
        total_frames=config.frames,
    )
    collector.set_seed(config.seed)
    return collector


def orthogonal_init_(mlp: nn.Module, last_gain: float) -> None:
    """SB3's init of a PPO network, in place: orthogonal weights (gain ``sqrt(2)`` for the
    hidden layers, ``last_gain`` for the output layer; 0.01 makes a policy head start near
    uniform, which matters for how fast CartPole is learned), zero biases."""
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        nn.init.orthogonal_(layer.weight, gain=last_gain if i == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(layer.bias)


def _next_key(key: Any) -> tuple[str, ...]:
    return ("next", *((key,) if isinstance(key, str) else key))


class _EpisodeReturns:
    """Returns of the training episodes that end inside each batch (carried across batches),
    summed from ``("next", reward_key)`` (an agent group's ``[..., n_agents, 1]`` rewards
    averaged over its agents: the mean return per agent), or read at the episode's end from
    ``("next", key)`` when the env keeps its own return (e.g. Atari's unclipped
    ``"episode_reward"``)."""

    def __init__(self, num_envs: int, key: Any = None, reward_key: Any = "reward"):
        self.running = torch.zeros(num_envs, dtype=torch.float64)
        self.key = None if key is None else _next_key(key)
        self.reward_key = _next_key(reward_key)

    def state_dict(self) -> dict[str, Any]:
        return {"running": self.running.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running = state["running"].to(torch.float64).clone()

    def check_state_dict(self, state: Any) -> None:
        running = state.get("running") if isinstance(state, dict) else None
        if not isinstance(running, torch.Tensor) or running.shape != self.running.shape:
            raise ValueError(f"expected {{'running': tensor of shape "
                             f"{tuple(self.running.shape)}}}, found {state!r:.100}")

    def update(self, batch: Any) -> list[float]:
        done = batch.get(("next", "done")).reshape(self.running.shape[0], -1)
        if self.key is not None:
            total = batch.get(self.key).reshape(done.shape).double()
            # time-major: the order in which the episodes end, as below
            return total.transpose(0, 1)[done.transpose(0, 1)].tolist()
        reward = batch.get(self.reward_key).reshape(*done.shape, -1).double().mean(-1)
        finished: list[float] = []
        for t in range(reward.shape[1]):
            self.running += reward[:, t]
            if bool(done[:, t].any()):
                finished.extend(self.running[done[:, t]].tolist())
                self.running[done[:, t]] = 0.0
        return finished


class _ReturnScaler:
    """SB3's reward normalisation: rewards divided by the running standard deviation of the
    discounted return (per env, reset at episode ends), then clipped; a checkpoint part."""

    def __init__(self, num_envs: int, gamma: float, clip: float):
        self.gamma, self.clip = gamma, clip
        self.returns = torch.zeros(num_envs, dtype=torch.float64)
        self.stats = RunningMeanStd(shape=())

    def state_dict(self) -> dict[str, Any]:
        return {"returns": self.returns.clone(), "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].to(torch.float64).clone()
        self.stats.load_state_dict(state["stats"])

    def check_state_dict(self, state: Any) -> None:
        returns = state.get("returns") if isinstance(state, dict) else None
        if not isinstance(returns, torch.Tensor) or returns.shape != self.returns.shape:
            raise ValueError(f"expected {{'returns': tensor of shape "
                             f"{tuple(self.returns.shape)}, 'stats': ...}}, found "
                             f"{state!r:.100}")

    def scale(self, batch: Any) -> None:
        """Fold the batch's discounted returns into the statistics, then scale its rewards
        in place (the statistics of the whole batch scale each of its steps; SB3 updates
        them step by step)."""
        n = self.returns.shape[0]
        reward = batch.get(("next", "reward"))
        flat = reward.reshape(n, -1).double()
        done = batch.get(("next", "done")).reshape(n, -1)
        seen = torch.empty_like(flat)
        for t in range(flat.shape[1]):
            self.returns = self.returns * self.gamma + flat[:, t]
            seen[:, t] = self.returns
            self.returns[done[:, t]] = 0.0
        self.stats.update(seen.reshape(-1))
        std = float(torch.sqrt(self.stats.var + 1e-8))
        batch.set(("next", "reward"), (reward / std).clamp(-self.clip, self.clip))


def _progress(name: str, total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="frame", unit_scale=True, desc=name, disable=not enabled,
                dynamic_ncols=True, file=sys.stderr)


# config fields that may change on resume: the budget (a longer run), evaluation and output
_RESUMABLE = ("frames", "eval_interval", "eval_episodes", "eval_seed", "target_return",
              "threads", "logger", "checkpoint_interval", "max_policy_lag", "ray", "ray_actors")


_LOGGED = ("loss_objective", "loss_critic", "entropy", "kl_approx", "clip_fraction")


class PPOPipeline:
    """The entry points of a PPO pipeline file named ``name`` (its module docstring ``doc`` is
    its help text): ``train``, ``parse_args``, ``main``, ``build_graph`` and ``run_identity``,
    for a ``config_cls`` (a :class:`PPOConfig` subclass) and ``make_models(config, env) ->
    (actor, critic)``.

    Data is collected by a :class:`~streamrl.collectors.SyncDataCollector` in lockstep with
    the learner (every batch comes from the current weights), or with ``topology="async"`` by
    a :class:`~streamrl.train.lagged_collector.LaggedCollector` running ahead in a worker
    process (each batch at most ``max_policy_lag`` versions old, its lag logged as
    ``policy_lag``); each batch gets GAE advantages once, with the current critic, then
    ``epochs`` passes of shuffled minibatches (:meth:`update`), the ratio taken against the
    behaviour log-probs the batch carries. Every
    ``eval_interval`` frames the policy plays ``eval_episodes`` deterministic episodes side by
    side, before training on the batch. ``after_update(actor, critic, batch)``, when given,
    runs after each batch's update (e.g. to fold the batch's observations into running
    statistics the networks normalise with: they then change only between batches, so the
    behaviour log-probs stay those of the networks being trained). ``configure_loss(loss)``,
    when given, adjusts the loss once built (e.g. its keys); ``loss_kwargs`` are more
    :class:`~streamrl.objectives.ClipPPOLoss` arguments (e.g. ``functional=False``: the
    networks are called as they are, so modules they share stay one object). ``return_key`` names the entry
    under ``"next"`` the env keeps the episode's return in (e.g. Atari's unclipped
    ``"episode_reward"``): training returns are read there at episode ends instead of summed
    from the rewards. ``reward_key`` names the rewards under ``"next"`` (default
    ``"reward"``; an agent group's, e.g. ``("agents", "reward")``: the logged training return
    is then the mean return per agent, as TorchRL's multi-agent tutorials report it).
    ``prepare_batch(batch)``, when given, adjusts each collected batch in place before its
    advantages are computed (e.g. a multi-agent pipeline expands the shared done flags to
    the agent dim, as TorchRL's multi-agent PPO tutorial does). ``evaluate(config, env, actor) -> returns`` replaces the default
    evaluation (:func:`~streamrl.ops.evaluate_episodes`, deterministic actions) on the env of
    ``config.make_eval_env``; it may return a dict instead: ``eval_return`` and the columns
    named by ``eval_columns`` (e.g. RL^2's returns of a trial's first and last episodes),
    all logged in the evaluation's metrics row. A recurrent actor needs
    ``config.sequence_length`` (see :class:`PPOConfig`).

    The checkpoint (a :class:`streamrl.checkpoint.Checkpoint`, written every
    ``checkpoint_interval`` frames or at each evaluation, at the end, and on Ctrl-C or an
    error) holds the whole run at a batch boundary: networks (their buffers too), optimizer,
    learner counters, the collector's envs mid-episode, running returns, the random
    generators and the progress, so ``--resume`` continues exactly. With
    ``resume_episodes=False`` (envs whose state cannot be captured, e.g. MuJoCo's; or
    ``resume_episodes(config) -> bool`` when that depends on the config), the envs
    are not saved: a resumed run starts new episodes (seeded with ``seed`` plus the frames
    done) and goes on with everything else restored. The ``async`` topology resumes that way
    too (its worker's envs run ahead of the checkpoint's batch boundary).
    """

    def __init__(self, name: str, config_cls: type, make_models: Callable[..., Any],
                 doc: str | None, *,
                 after_update: Callable[[Any, Any, Any], None] | None = None,
                 resume_episodes: bool | Callable[[Any], bool] = True,
                 configure_loss: Callable[[ClipPPOLoss], None] | None = None,
                 return_key: Any = None,
                 evaluate: Callable[[Any, EnvBase, nn.Module], Any] | None = None,
                 loss_kwargs: dict[str, Any] | None = None,
                 eval_columns: tuple[str, ...] = (),
                 reward_key: Any = "reward",
                 prepare_batch: Callable[[Any], None] | None = None):
        if not (isinstance(config_cls, type) and issubclass(config_cls, PPOConfig)):
            raise TypeError(f"config_cls must be a PPOConfig subclass, found {config_cls!r}")
        for arg, value in (("make_models", make_models), ("after_update", after_update),
                           ("configure_loss", configure_loss), ("evaluate", evaluate),
                           ("prepare_batch", prepare_batch)):
            if value is not None and not callable(value):
                raise TypeError(f"{arg} must be callable, found {type(value).__name__}")
        self.name, self.config_cls, self.make_models = name, config_cls, make_models
        self.doc, self.after_update = doc, after_update
        self.resume_episodes = (resume_episodes if callable(resume_episodes)
                                else bool(resume_episodes))
        self.configure_loss, self.return_key = configure_loss, return_key
        self.reward_key, self.prepare_batch = reward_key, prepare_batch
        self.loss_kwargs = dict(loss_kwargs or {})
        self._evaluate = evaluate if evaluate is not None else _evaluate_deterministic
        #: the metrics columns of a run (``metrics.csv``)
        self.columns = list(_COLUMNS) + [c for c in eval_columns if c not in _COLUMNS]
        self.eval_columns = tuple(eval_columns)

    def __repr__(self) -> str:
        return f"PPOPipeline({self.name!r})"

    def run_identity(self, config: PPOConfig) -> dict[str, Any]:
        """What a checkpoint must match to be resumed with ``config``: the pipeline and every
        config field that shapes training (all but the budget, evaluation and output
        fields)."""
        return driver.run_identity(self.name, config, _RESUMABLE)

    def build_graph(self, argv: list[str] | None = None) -> Graph:
        """The collection graph this pipeline runs (for ``streamrl graph``)."""
        config, _ = self.parse_args(argv)
        probe = config.make_env(1)
        try:
            actor, _ = self.make_models(config, probe)
        finally:
            probe.close()
        collector = make_collector(config, actor)
        try:
            graph = collector.graph()  # building the topology starts nothing
        finally:
            collector.shutdown()
        return graph

    def parse_args(self, argv: list[str] | None) -> tuple[PPOConfig, argparse.Namespace]:
        """The config and the run options from command-line flags."""
        return driver.parse_args(self.name, self.doc, self.config_cls, argv,
                                 no_files_help="write no run directory (no metrics, no "
                                               "checkpoint)")

    def main(self, argv: list[str] | None = None) -> int:
        """Train and print a summary (exit status 0 whether or not the target was reached)."""
        return driver.main(self.name, self.parse_args, self.train, argv,
                           summary=_print_summary, identity=self.run_identity)

    def train(self, config: PPOConfig, *, run_dir: Path | None = None, progress: bool = False,
              resume: str | Path | None = None) -> PPOResult:
        """Train PPO as configured; write metrics, config and checkpoints into ``run_dir``
        (nothing is written when it is ``None``). Seeds torch's global generator with
        ``config.seed``; torch's thread count is restored on return."""
        with driver.torch_threads(config.threads):
            eval_env = config.make_eval_env(config.eval_episodes)
            try:
                return self._train(config, eval_env, run_dir, progress, resume)
            finally:
                eval_env.close()

    def _train(self, config: PPOConfig, eval_env: EnvBase, run_dir: Path | None, progress: bool,
               resume: str | Path | None) -> PPOResult:
        name = self.name
        if config.normalize_reward and self.reward_key != "reward":
            raise ValueError(f"{type(config).__name__}.normalize_reward scales the env's "
                             "('next', 'reward'); this pipeline's rewards are "
                             f"{_next_key(self.reward_key)}: expected normalize_reward=False, "
                             "found True")
        torch.manual_seed(config.seed)
        actor, critic = self.make_models(config, eval_env)
        check_recurrence(config, actor)
        loss = make_loss(config, actor, critic, **self.loss_kwargs)
        if self.configure_loss is not None:
            self.configure_loss(loss)
        # fused: one kernel for all parameters (a CPU Adam step on these small nets costs about
        # as much in per-tensor dispatch as in arithmetic)
        optim = torch.optim.Adam(loss.parameters(), lr=config.lr, eps=1e-5, fused=True)
        learner = make_learner(config, loss, optim)
        episodes = _EpisodeReturns(config.num_envs, self.return_key, self.reward_key)
        done = RunProgress()
        collector = make_collector(config, actor)
        parts = dict(policy=actor, value=critic, optimizer=optim, learner=learner,
                     collector=collector, episodes=episodes, progress=done, rng=GlobalRNGState())
        # the envs' state is not saved (uncapturable, or in an async worker running ahead of
        # the batch boundary): nor are their episodes
        saves_envs = self.resume_episodes
        if callable(saves_envs):
            saves_envs = bool(saves_envs(config))
        resume_episodes = saves_envs and config.topology == "sync" and config.ray is None
        if not resume_episodes:
            del parts["collector"], parts["episodes"]
        scaler = None
        if config.normalize_reward:
            scaler = parts["reward_scaler"] = _ReturnScaler(config.num_envs, config.gamma,
                                                            config.clip_reward)
        ckpt = Checkpoint(**parts, match=self.run_identity(config))
        try:
            if resume is not None:
                driver.load_resume(name, resume)  # another pipeline's file: said so first
                ckpt.load(resume)  # everything checked first: a mismatch changes nothing
                if not resume_episodes:
                    # new episodes, from a seed of their own; the discounted returns restart
                    collector.set_seed(config.seed + done.frames)
                    collector.update_policy_weights_()
                    if scaler is not None:
                        scaler.returns.zero_()
            remaining = config.frames - done.frames
            if remaining <= 0:
                raise ValueError(f"the checkpoint is at {done.frames} frames, already at the budget "
                                 f"frames={config.frames}; pass a larger --frames")
            collector.total_frames = remaining
        except BaseException:
            collector.shutdown()
            raise
        frames, iteration = done.frames, done.iteration
        logger = None
        if run_dir is not None:
            run_dir = Path(run_dir)
            driver.write_config(run_dir, config)
            # a resumed run's history goes on in the same files, from the checkpoint's frames
            resume_at = None if resume is None else frames
            logger = run_metrics_logger(run_dir, self.columns, config.logger,
                                        resume_at=resume_at)
        evaluations: list[tuple[int, float]] = []
        eval_s = collect_s = update_s = 0.0
        eval_return: float | None = done.eval_return
        solved_at: int | None = None
        next_eval = (frames // config.eval_interval + 1) * config.eval_interval
        interval = config.checkpoint_interval
        next_save = None if interval is None else (frames // interval + 1) * interval
        bar = _progress(name, config.frames, progress)
        bar.update(frames)
        t0 = time.perf_counter()

        # the state of the last batch boundary, written by save() (a KeyboardInterrupt in the
        # middle of a batch must not save half-updated weights beside the envs of the next batch)
        boundary: list[dict[str, Any] | None] = [None]
        saved_at = [-1]

        def snapshot() -> None:
            if run_dir is not None:
                done.frames, done.iteration, done.eval_return = frames, iteration, eval_return
                boundary[0] = ckpt.snapshot()

        def save() -> None:
            state = boundary[0]
            if state is not None and run_dir is not None and saved_at[0] != state["progress"]["frames"]:
                saved_at[0] = state["progress"]["frames"]
                ckpt.save(run_dir / "checkpoint.pt", snapshot=state,
                          metadata={"config": dataclasses.asdict(config),
                                    "frames": state["progress"]["frames"]})

        batches: Any = iter(collector)
        try:
            while True:
                tc = time.perf_counter()
                batch = next(batches, None)
                collect_s += time.perf_counter() - tc
                if batch is None:
                    break
                frames += batch.numel()
                iteration += 1
                # learner version minus the version that collected the batch (0 in lockstep)
                lag = collector.policy_version - int(batch.get(("collector", "policy_version")).min())
                row: dict[str, Any] = {"iteration": iteration, "frames": frames, "policy_lag": lag}
                due = False
                if next_eval <= frames < config.frames:
                    # evaluate the policy that collected this batch, before training on it (the
                    # last batch is trained on and the final weights evaluated after the loop)
                    next_eval = (frames // config.eval_interval + 1) * config.eval_interval
                    te = time.perf_counter()
                    eval_return, extra = self._evaluation(config, eval_env, actor)
                    eval_s += time.perf_counter() - te
                    row.update(extra)
                    evaluations.append((frames, eval_return))
                    row["eval_return"] = eval_return
                    bar.set_postfix(eval=f"{eval_return:.1f}", refresh=False)
                    if config.target_return is not None and eval_return >= config.target_return:
                        solved_at = frames
                    due = interval is None
                if interval is not None and next_save is not None and frames >= next_save:
                    next_save = (frames // interval + 1) * interval
                    due = True
                finished = episodes.update(batch)
                row["train_episodes"] = len(finished)
                if finished:
                    row["train_return"] = sum(finished) / len(finished)
                if solved_at is None:
                    tu = time.perf_counter()
                    if scaler is not None:
                        scaler.scale(batch)  # after the returns above: those are the env's
                    if self.prepare_batch is not None:
                        self.prepare_batch(batch)
                    row.update(self.update(config, loss, learner, batch, frames))
                    if self.after_update is not None:
                        self.after_update(actor, critic, batch)
                    update_s += time.perf_counter() - tu
                wall = time.perf_counter() - t0
                row.update(wall_s=wall, train_s=wall - eval_s, collect_s=collect_s, update_s=update_s,
                           fps=frames / max(wall, 1e-9))
                if logger is not None:
                    logger.log(row)
                bar.update(batch.numel())
                if solved_at is not None:
                    snapshot()
                    break
                collector.update_policy_weights_()
                snapshot()  # a batch boundary: what a resumed run starts from
                if due:
                    save()
            if solved_at is None:
                # the budget is spent: evaluate the final weights (trained on the last batch too)
                te = time.perf_counter()
                eval_return, extra = self._evaluation(config, eval_env, actor)
                eval_s += time.perf_counter() - te
                evaluations.append((frames, eval_return))
                if config.target_return is not None and eval_return >= config.target_return:
                    solved_at = frames
                if logger is not None:
                    wall = time.perf_counter() - t0
                    logger.log({"iteration": iteration, "frames": frames, "eval_return": eval_return,
                                "wall_s": wall, "train_s": wall - eval_s, **extra})
                if boundary[0] is not None:
                    boundary[0]["progress"]["eval_return"] = eval_return
            save()
        except BaseException:
            save()  # keep what was learned up to the last batch boundary: a run resumes from here
            raise
        finally:
            batches.close()
            bar.close()
            collector.shutdown()
            if logger is not None:
                logger.close()
        wall = time.perf_counter() - t0
        if run_dir is not None and evaluations:
            driver.plot_learning_curve(run_dir, f"PPO {config.env_name}")
        return PPOResult(frames=frames, iterations=iteration, wall_s=wall, train_s=wall - eval_s,
                         eval_s=eval_s, collect_s=collect_s, update_s=update_s,
                         eval_return=eval_return, solved_at=solved_at,
                         evaluations=evaluations, run_dir=run_dir)

    def _evaluation(self, config: PPOConfig, env: EnvBase,
                    actor: nn.Module) -> tuple[float, dict[str, float]]:
        """``evaluate``'s mean return and its extra columns."""
        result = self._evaluate(config, env, actor)
        if not isinstance(result, dict):
            return float(result.mean()), {}
        extra = {k: float(v) for k, v in result.items() if k != "eval_return"}
        unknown = sorted(set(extra) - set(self.eval_columns))
        if "eval_return" not in result or unknown:
            raise ValueError(f"{self.name}: evaluate returned {sorted(result)}; expected "
                             f"'eval_return' and columns of eval_columns "
                             f"{list(self.eval_columns)}")
        return float(result["eval_return"]), extra

    @staticmethod
    def update(config: PPOConfig, loss: ClipPPOLoss, learner: Learner, batch: Any,
               frames: int) -> dict[str, float]:
        """Epochs of minibatch updates on one batch; returns the mean losses and the schedule."""
        # SB3's linear schedules: progress_remaining = 1 - frames / budget, read after collection
        remaining = max(0.0, 1.0 - frames / config.frames)
        lr = config.lr * (remaining if config.anneal_lr else 1.0)
        clip = config.clip_epsilon * (remaining if config.anneal_clip else 1.0)
        for group in learner.optimizer.param_groups:
            group["lr"] = lr
        loss.clip_epsilon = max(clip, 1e-8)  # a zero clip range would freeze the policy anyway
        recurrent = config.sequence_length is not None
        with torch.no_grad(), set_recurrent_mode(True) if recurrent else contextlib.nullcontext():
            loss.value_estimator(batch)  # advantage and value_target, once per batch (as SB3)
        metrics = learner.step({"in": batch})["out"]
        return {**{k: metrics[k] for k in _LOGGED}, "lr": lr, "clip_epsilon": clip}


def _evaluate_deterministic(config: PPOConfig, env: EnvBase, actor: nn.Module) -> torch.Tensor:
    return evaluate_episodes(env, actor, seed=config.eval_seed)


def _print_summary(name: str, config: PPOConfig, result: PPOResult) -> None:
    evaluated = "not evaluated" if result.eval_return is None else f"{result.eval_return:.1f}"
    if result.solved_at is not None:
        status = f"solved: eval return {evaluated} >= {config.target_return:g}"
    elif config.target_return is None:
        status = f"done: eval return {evaluated}"
    else:
        status = f"not solved: eval return {evaluated} < {config.target_return:g}"
    print(f"{name}: {status} after {result.frames:,} frames ({result.iterations} batches)")
    print(f"  wall {result.wall_s:.2f} s: training {result.train_s:.2f} s "
          f"({result.frames / max(result.train_s, 1e-9):,.0f} frames/s; collecting "
          f"{result.collect_s:.2f} s, updating {result.update_s:.2f} s), evaluation "
          f"{result.eval_s:.2f} s ({len(result.evaluations)} x {config.eval_episodes} episodes)")
    if result.run_dir is not None:
        files = "metrics.csv, metrics.jsonl, checkpoint.pt"
        if (result.run_dir / config.logger).is_dir():
            files += f", {config.logger}/"
        if (result.run_dir / "learning_curve.png").exists():
            files += ", learning_curve.png"
        else:
            files += "; no plot: matplotlib is not installed"
        print(f"  run dir: {result.run_dir} ({files})")

