"""PPO on CartPole-v1: ``streamrl run ppo_cartpole``.

Clipped PPO with the rl-zoo hyper-parameters Stable-Baselines3 uses for CartPole-v1 (8 envs x
32 steps per batch, 20 epochs of full-batch updates, GAE(0.98, 0.8), learning rate and clip
range annealed linearly to 0 over the frame budget, separate 64x64 tanh actor and critic
with orthogonal init, advantage normalisation, gradient norm clipped at 0.5).

Data is collected by a :class:`~streamrl.collectors.SyncDataCollector` (a ``trigger ->
rollout`` graph, in lockstep with the learner, so every batch comes from the current
weights). Every ``eval_interval`` frames the policy plays ``eval_episodes`` deterministic
episodes side by side (argmax actions); the run stops when their mean return reaches
``target_return`` or the frame budget is spent. Batches are evaluated as soon as they are
collected, before the learner trains on them, so "solved at N frames" means what it means
for SB3's callbacks.

A run directory (``runs/ppo_cartpole-<timestamp>/``) receives ``metrics.csv`` and
``metrics.jsonl`` (one row per batch), ``config.json``, ``checkpoint.pt`` and
``learning_curve.png`` when matplotlib is installed. The checkpoint (a
:class:`streamrl.checkpoint.Checkpoint`: written atomically, loadable with
``torch.load(weights_only=True)``) holds the whole run at a batch boundary: policy, value
network, optimizer, learner counters, the collector's envs mid-episode with their carried
observations, the running training returns, the random generators, the progress and the
config. It is written every ``checkpoint_interval`` frames (default: at each evaluation), at
the end, and on Ctrl-C or an error (then the last batch boundary's). ``--resume`` continues
exactly: a run stopped and resumed gives the same metrics rows (timings aside) and weights
as one that ran through; a checkpoint of another pipeline or config is refused before any
work.

    $ streamrl run ppo_cartpole --frames 50000 --seed 1
    $ streamrl graph ppo_cartpole
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.checkpoint import Checkpoint, CheckpointError, GlobalRNGState
from streamrl.collectors import SyncDataCollector
from streamrl.data import OneHot
from streamrl.envs import GymEnv, SerialEnv
from streamrl.graph import Graph
from streamrl.modules import MLP, Categorical, OneHotCategorical, ProbabilisticActor, ValueOperator
from streamrl.objectives import ClipPPOLoss
from streamrl.ops import Learner, check_run_logger, default_run_logger, run_logger
from streamrl.train import (
    MetricsLogger,
    check_field,
    check_positive_ints,
    driver,
    evaluate_episodes,
)

NAME = "ppo_cartpole"

COLUMNS = [
    "iteration", "frames", "wall_s", "train_s", "collect_s", "update_s", "fps", "train_return", "train_episodes",
    "eval_return", "loss_objective", "loss_critic", "entropy", "kl_approx", "clip_fraction",
    "lr", "clip_epsilon",
]


@dataclass
class PPOConfig:
    """Hyper-parameters of the PPO CartPole pipeline (defaults: rl-zoo / SB3 for CartPole-v1).

    ``frames`` is the frame budget and the horizon of the linear schedules (as SB3's
    ``total_timesteps``); training stops earlier once the evaluation mean reaches
    ``target_return`` (``None``: never).
    """

    env_name: str = "CartPole-v1"
    num_envs: int = 8
    steps_per_env: int = 32
    minibatch_size: int = 256
    epochs: int = 20
    gamma: float = 0.98
    gae_lambda: float = 0.8
    lr: float = 1e-3
    anneal_lr: bool = True
    clip_epsilon: float = 0.2
    anneal_clip: bool = True
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    hidden: int = 64
    frames: int = 200_000
    eval_interval: int = 8192
    eval_episodes: int = 20
    eval_seed: int = 10_000
    target_return: float | None = 475.0
    seed: int = 0
    threads: int = 1
    # frames between checkpoints (None: at each evaluation); also written at the end
    checkpoint_interval: int | None = None
    # a streamrl.record logger beside metrics.csv/jsonl: tensorboard (when installed), csv,
    # wandb (offline) or none
    logger: str = default_run_logger()

    def __post_init__(self) -> None:
        check_run_logger(self.logger)
        check_positive_ints(self, "num_envs", "steps_per_env", "minibatch_size", "epochs",
                            "hidden", "frames", "eval_interval", "eval_episodes", "threads")
        if self.checkpoint_interval is not None:
            check_positive_ints(self, "checkpoint_interval")
        for name in ("gamma", "gae_lambda"):
            check_field(self, name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")
        check_field(self, "clip_epsilon", 0.0 < self.clip_epsilon < 1.0, "in (0, 1)")
        check_field(self, "lr", self.lr > 0, "> 0")
        if self.minibatch_size > self.frames_per_batch:
            raise ValueError(
                f"PPOConfig.minibatch_size ({self.minibatch_size}) must not exceed the batch, "
                f"num_envs * steps_per_env = {self.frames_per_batch}"
            )

    @property
    def frames_per_batch(self) -> int:
        """Frames per collected batch: ``num_envs * steps_per_env``."""
        return self.num_envs * self.steps_per_env


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


# ---------------------------------------------------------------------------------- building
def make_env(config: PPOConfig, num_envs: int) -> SerialEnv:
    """``num_envs`` copies of the config's gym env, stepped in this process."""
    return SerialEnv(num_envs, functools.partial(GymEnv, config.env_name))


def _orthogonal_(mlp: nn.Module, last_gain: float) -> None:
    # SB3's init: orthogonal weights (gain sqrt(2) for hidden layers), zero biases; the policy
    # head starts near uniform (gain 0.01), which matters for how fast CartPole is learned.
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        nn.init.orthogonal_(layer.weight, gain=last_gain if i == len(linears) - 1 else math.sqrt(2))
        nn.init.zeros_(layer.bias)


def make_models(config: PPOConfig, env: Any) -> tuple[ProbabilisticActor, ValueOperator]:
    """A categorical actor (``observation -> logits -> action, action_log_prob``; one-hot
    actions for a ``OneHot`` action spec, the gym default) and a value network
    (``observation -> state_value``), separate 2-layer tanh MLPs."""
    obs_dim = env.observation_spec["observation"].shape[-1]
    action_spec = env.action_spec
    for _ in env.batch_size:  # the spec of one env: the actor runs on any number of rows
        action_spec = action_spec[0]
    n_actions = getattr(action_spec, "n", None)
    if n_actions is None:
        raise ValueError(
            f"{NAME} needs a discrete action space, found {type(action_spec).__name__} for "
            f"{config.env_name!r}"
        )
    hidden = [config.hidden, config.hidden]
    policy_net = MLP(in_features=obs_dim, out_features=n_actions, num_cells=hidden,
                     activation_class=nn.Tanh)
    value_net = MLP(in_features=obs_dim, out_features=1, num_cells=hidden, activation_class=nn.Tanh)
    _orthogonal_(policy_net, 0.01)
    _orthogonal_(value_net, 1.0)
    actor = ProbabilisticActor(
        TensorDictModule(policy_net, in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=OneHotCategorical if isinstance(action_spec, OneHot) else Categorical,
        return_log_prob=True,
        spec=action_spec,
        safe=True,  # one-hot samples are float; the env takes the spec's integer dtype
    )
    critic = ValueOperator(value_net, in_keys=["observation"])
    return actor, critic


def make_loss(config: PPOConfig, actor: nn.Module, critic: nn.Module) -> ClipPPOLoss:
    """Clipped PPO loss with an MSE critic and a GAE value estimator."""
    loss = ClipPPOLoss(
        actor, critic,
        clip_epsilon=config.clip_epsilon,
        entropy_bonus=config.entropy_coef > 0,
        entropy_coeff=config.entropy_coef,
        critic_coeff=config.value_coef,
        loss_critic_type="l2",
        normalize_advantage=config.normalize_advantage,
    )
    loss.make_value_estimator(gamma=config.gamma, lmbda=config.gae_lambda)
    return loss


def make_learner(config: PPOConfig, loss: ClipPPOLoss,
                 optim: torch.optim.Optimizer) -> Learner:
    """``epochs`` passes over each batch in shuffled minibatches, the gradient norm clipped."""
    # named, so that the terms are summed in this order whatever order the loss emits them in
    keys = ["loss_objective", "loss_critic"] + (["loss_entropy"] if loss.entropy_bonus else [])
    return Learner(loss, optim, minibatch_size=config.minibatch_size, epochs=config.epochs,
                   shuffle=True, max_grad_norm=config.max_grad_norm, loss_keys=keys)


def make_collector(config: PPOConfig, actor: nn.Module) -> SyncDataCollector:
    """The lockstep collector: ``num_envs x steps_per_env`` frames per batch."""
    collector = SyncDataCollector(
        functools.partial(make_env, config, config.num_envs),
        actor,
        frames_per_batch=config.frames_per_batch,
        total_frames=config.frames,
    )
    collector.set_seed(config.seed)
    return collector


def build_graph(argv: list[str] | None = None) -> Graph:
    """The collection graph this pipeline runs (for ``streamrl graph ppo_cartpole``)."""
    config, _ = parse_args(argv)
    probe = make_env(config, 1)
    try:
        actor, _ = make_models(config, probe)
    finally:
        probe.close()
    collector = make_collector(config, actor)
    try:
        graph = collector.graph()  # building the topology starts nothing
    finally:
        collector.shutdown()
    return graph


# ---------------------------------------------------------------------------------- training
class _EpisodeReturns:
    """Returns of the training episodes that end inside each batch (carried across batches)."""

    def __init__(self, num_envs: int):
        self.running = torch.zeros(num_envs, dtype=torch.float64)

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
        reward = batch.get(("next", "reward")).reshape(self.running.shape[0], -1).double()
        done = batch.get(("next", "done")).reshape(self.running.shape[0], -1)
        finished: list[float] = []
        for t in range(reward.shape[1]):
            self.running += reward[:, t]
            if bool(done[:, t].any()):
                finished.extend(self.running[done[:, t]].tolist())
                self.running[done[:, t]] = 0.0
        return finished


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="frame", unit_scale=True, desc=NAME, disable=not enabled,
                dynamic_ncols=True, file=sys.stderr)


def train(
    config: PPOConfig,
    *,
    run_dir: Path | None = None,
    progress: bool = False,
    resume: str | Path | None = None,
) -> PPOResult:
    """Train PPO as configured; write metrics, config and checkpoints into ``run_dir``
    (nothing is written when it is ``None``). Seeds torch's global generator with
    ``config.seed``; torch's thread count is restored on return."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    eval_env = make_env(config, config.eval_episodes)
    try:
        return _train(config, eval_env, run_dir, progress, resume)
    finally:
        eval_env.close()
        torch.set_num_threads(threads)


class _Progress:
    """The run's counters as a checkpoint component: frames, batches, last evaluation."""

    def __init__(self) -> None:
        self.frames = self.iteration = 0
        self.eval_return: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "iteration": self.iteration,
                "eval_return": self.eval_return}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frames, self.iteration = int(state["frames"]), int(state["iteration"])
        self.eval_return = state["eval_return"]

    def check_state_dict(self, state: Any) -> None:
        keys = {"frames", "iteration", "eval_return"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"expected keys {sorted(keys)}, found {state!r:.100}")


# config fields that may change on resume: the budget (a longer run), evaluation and output
_RESUMABLE = ("frames", "eval_interval", "eval_episodes", "eval_seed", "target_return",
              "threads", "logger", "checkpoint_interval")


def run_identity(config: PPOConfig) -> dict[str, Any]:
    """What a checkpoint must match to be resumed with ``config``: the pipeline and every
    config field that shapes training (all but the budget, evaluation and output fields)."""
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in _RESUMABLE}
    return {"pipeline": NAME, "config": fields}


def _train(config: PPOConfig, eval_env: SerialEnv, run_dir: Path | None, progress: bool,
           resume: str | Path | None) -> PPOResult:
    torch.manual_seed(config.seed)
    actor, critic = make_models(config, eval_env)
    loss = make_loss(config, actor, critic)
    # fused: one kernel for all parameters (a CPU Adam step on these small nets costs about
    # as much in per-tensor dispatch as in arithmetic)
    optim = torch.optim.Adam(loss.parameters(), lr=config.lr, eps=1e-5, fused=True)
    learner = make_learner(config, loss, optim)
    episodes = _EpisodeReturns(config.num_envs)
    done = _Progress()
    collector = make_collector(config, actor)
    ckpt = Checkpoint(policy=actor, value=critic, optimizer=optim, learner=learner,
                      collector=collector, episodes=episodes, progress=done,
                      rng=GlobalRNGState(), match=run_identity(config))
    try:
        if resume is not None:
            try:
                driver.load_resume(NAME, resume)  # another pipeline's file: said so first
            except ValueError as exc:
                raise CheckpointError(str(exc)) from None
            ckpt.load(resume)  # everything checked first: a mismatch changes nothing
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
        extra = run_logger(config.logger, run_dir)
        logger = MetricsLogger(run_dir, COLUMNS, loggers=[] if extra is None else [extra])
    evaluations: list[tuple[int, float]] = []
    eval_s = collect_s = update_s = 0.0
    eval_return: float | None = done.eval_return
    solved_at: int | None = None
    next_eval = (frames // config.eval_interval + 1) * config.eval_interval
    interval = config.checkpoint_interval
    next_save = None if interval is None else (frames // interval + 1) * interval
    bar = _progress(config.frames, progress)
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
        if state is not None and saved_at[0] != state["progress"]["frames"]:
            saved_at[0] = state["progress"]["frames"]
            ckpt.save(run_dir / "checkpoint.pt", snapshot=state,
                      metadata={"config": dataclasses.asdict(config)})

    batches = iter(collector)
    try:
        while True:
            tc = time.perf_counter()
            batch = next(batches, None)
            collect_s += time.perf_counter() - tc
            if batch is None:
                break
            frames += batch.numel()
            iteration += 1
            row: dict[str, Any] = {"iteration": iteration, "frames": frames}
            due = False
            if next_eval <= frames < config.frames:
                # evaluate the policy that collected this batch, before training on it (the
                # last batch is trained on and the final weights evaluated after the loop)
                next_eval = (frames // config.eval_interval + 1) * config.eval_interval
                te = time.perf_counter()
                returns = evaluate_episodes(eval_env, actor, seed=config.eval_seed)
                eval_s += time.perf_counter() - te
                eval_return = float(returns.mean())
                evaluations.append((frames, eval_return))
                row["eval_return"] = eval_return
                bar.set_postfix(eval=f"{eval_return:.1f}", refresh=False)
                if config.target_return is not None and eval_return >= config.target_return:
                    solved_at = frames
                due = interval is None
            if next_save is not None and frames >= next_save:
                next_save = (frames // interval + 1) * interval
                due = True
            finished = episodes.update(batch)
            row["train_episodes"] = len(finished)
            if finished:
                row["train_return"] = sum(finished) / len(finished)
            if solved_at is None:
                tu = time.perf_counter()
                row.update(_update(config, loss, learner, batch, frames))
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
            eval_return = float(evaluate_episodes(eval_env, actor, seed=config.eval_seed).mean())
            eval_s += time.perf_counter() - te
            evaluations.append((frames, eval_return))
            if config.target_return is not None and eval_return >= config.target_return:
                solved_at = frames
            if logger is not None:
                wall = time.perf_counter() - t0
                logger.log({"iteration": iteration, "frames": frames, "eval_return": eval_return,
                            "wall_s": wall, "train_s": wall - eval_s})
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


_LOGGED = ("loss_objective", "loss_critic", "entropy", "kl_approx", "clip_fraction")


def _update(config: PPOConfig, loss: ClipPPOLoss, learner: Learner, batch: Any,
            frames: int) -> dict[str, float]:
    """Epochs of minibatch updates on one batch; returns the mean losses and the schedule."""
    # SB3's linear schedules: progress_remaining = 1 - frames / budget, read after collection
    remaining = max(0.0, 1.0 - frames / config.frames)
    lr = config.lr * (remaining if config.anneal_lr else 1.0)
    clip = config.clip_epsilon * (remaining if config.anneal_clip else 1.0)
    for group in learner.optimizer.param_groups:
        group["lr"] = lr
    loss.clip_epsilon = max(clip, 1e-8)  # a zero clip range would freeze the policy anyway
    with torch.no_grad():
        loss.value_estimator(batch)  # advantage and value_target, once per batch (as SB3)
    metrics = learner.step({"in": batch})["out"]
    return {**{k: metrics[k] for k in _LOGGED}, "lr": lr, "clip_epsilon": clip}


# ---------------------------------------------------------------------------------- command line
def parse_args(argv: list[str] | None) -> tuple[PPOConfig, argparse.Namespace]:
    """The config and the run options from command-line flags."""
    return driver.parse_args(NAME, __doc__, PPOConfig, argv,
                              no_files_help="write no run directory (no metrics, no checkpoint)")


def main(argv: list[str] | None = None) -> int:
    """Train and print a summary (exit status 0 whether or not the target was reached)."""
    return driver.main(NAME, parse_args, train, argv, summary=_print_summary)


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


if __name__ == "__main__":
    sys.exit(main())
