"""MAML on 2D navigation: ``streamrl run maml_navigation``.

Model-agnostic meta-learning (Finn et al. 2017) on the paper's 2D navigation family: a point
moved by a Gaussian policy towards a goal it does not observe (a
:class:`~streamrl.envs.custom.PointNavigationEnv`; each task is a goal drawn by a
:class:`~streamrl.envs.tasks.NavigationFamily` from ``[-goal_range, goal_range]^2``). The
policy must find the goal from the rewards of its first episodes and go there after one
gradient step on them.

Each meta-iteration draws ``meta_batch_size`` tasks and plays ``episodes_per_task``
episodes of each, all in one batched env (one block of rows per task), collected by a
:class:`~streamrl.collectors.SyncDataCollector`. The inner loss is REINFORCE with a
time-step baseline (the mean return-to-go of the task's episodes at that step; advantages
normalised per task); ``inner_steps`` steps of learning rate ``inner_lr`` on it give each
task its adapted parameters (:func:`~streamrl.objectives.maml_adapt_tasks`, every task at
once under ``vmap``), each step on fresh episodes of the policy it adapts. The tasks are then
played again with the adapted parameters (a :class:`~streamrl.modules.TaskwiseModule` runs
each block of rows with its task's parameters), and the same loss on those episodes,
differentiated through the inner steps (second order; ``first_order`` drops it), is the
outer loss: Adam on its mean over the tasks (the paper used TRPO). ``inner_steps=0`` is the
paper's "pretrained" baseline: the same loss on the tasks' episodes with no inner step (plain
multi-task training), adapted the same way at evaluation. Episodes have a fixed
horizon ``max_steps`` (the env's ``tolerance`` is ``None``: no early end), so every
collected batch is one episode per row; the policy's Gaussian actions are stored as sampled
(the env clips the move), so their log-probabilities are exact.

Every ``eval_interval`` meta-iterations (and at the end), adaptation is measured on a fixed
table of ``eval_tasks`` held-out goals (drawn with ``eval_seed``, with torch's random
generators forked, so evaluating changes nothing in training): the mean episode return with
the meta-learned parameters (``eval_return/step_0``) and after each of ``eval_steps`` inner
steps (``eval_return/step_k``; first order, each on fresh episodes); ``eval_return`` is the
return after ``inner_steps`` steps, the quantity trained for.

A run directory (``runs/maml_navigation-<timestamp>/``) receives ``metrics.csv`` /
``metrics.jsonl`` (one row per meta-iteration), ``config.json``, ``checkpoint.pt`` (policy,
optimizer, counters and random generators: ``--resume`` continues exactly; written every
``checkpoint_interval`` meta-iterations, at each evaluation when unset, at the end and on
Ctrl-C or an error) and ``learning_curve.png`` when matplotlib is installed.

    $ streamrl run maml_navigation --iterations 300 --seed 1
    $ streamrl graph maml_navigation
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.checkpoint import Checkpoint, GlobalRNGState
from streamrl.collectors import SyncDataCollector
from streamrl.envs.custom import PointNavigationEnv
from streamrl.envs.tasks import NavigationFamily
from streamrl.graph import Graph
from streamrl.modules import (
    MLP,
    AddStateIndependentNormalScale,
    IndependentNormal,
    ProbabilisticActor,
    TaskwiseModule,
)
from streamrl.objectives import maml_adapt_tasks, maml_task_losses
from streamrl.objectives.value.functional import reverse_linear_scan
from streamrl.ops import check_run_logger, default_run_logger, run_metrics_logger
from streamrl.train import RunProgress, driver
from streamrl.train.config import check_field, check_positive_ints

NAME = "maml_navigation"


@dataclass
class MAMLConfig:
    """Hyper-parameters of MAML on 2D navigation (defaults: the paper's, section 5.2, with
    Adam in place of TRPO for the outer step). ``iterations`` is the budget in
    meta-iterations; each collects ``(inner_steps + 1) * meta_batch_size *
    episodes_per_task * max_steps`` frames. ``inner_steps=0``: no meta-learning (the
    pretrained baseline)."""

    meta_batch_size: int = 20
    episodes_per_task: int = 20
    max_steps: int = 100
    goal_range: float = 0.5
    inner_lr: float = 0.1
    inner_steps: int = 1
    first_order: bool = False
    lr: float = 3e-3
    gamma: float = 0.99
    hidden: int = 100
    iterations: int = 200
    eval_interval: int = 20
    eval_tasks: int = 40
    eval_steps: int = 3
    eval_seed: int = 10_000
    seed: int = 0
    threads: int = 1
    # meta-iterations between checkpoints (None: at each evaluation); also written at the end
    checkpoint_interval: int | None = None
    # a streamrl.record logger beside metrics.csv/jsonl: tensorboard, csv, wandb or none
    logger: str = default_run_logger()

    def __post_init__(self) -> None:
        check_run_logger(self.logger)
        check_positive_ints(self, "meta_batch_size", "episodes_per_task", "max_steps",
                            "hidden", "iterations", "eval_interval",
                            "eval_tasks", "eval_steps", "threads")
        if self.checkpoint_interval is not None:
            check_positive_ints(self, "checkpoint_interval")
        check_field(self, "inner_steps", isinstance(self.inner_steps, int)
                    and not isinstance(self.inner_steps, bool) and self.inner_steps >= 0,
                    "an int >= 0")
        for name in ("inner_lr", "lr", "goal_range"):
            check_field(self, name, getattr(self, name) > 0, "> 0")
        check_field(self, "gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]")
        if self.episodes_per_task < 2:
            raise ValueError(f"{type(self).__name__}.episodes_per_task must be >= 2 (the "
                             f"baseline is the mean over a task's episodes), found "
                             f"{self.episodes_per_task}")

    @property
    def family(self) -> NavigationFamily:
        return NavigationFamily(goal=(-self.goal_range, self.goal_range))

    def eval_table(self) -> torch.Tensor:
        """The held-out goals, ``[eval_tasks, 2]``."""
        return self.family.sample(self.eval_tasks, torch.Generator().manual_seed(self.eval_seed))

    def train_tasks(self, iteration: int) -> torch.Tensor:
        """The goals of meta-iteration ``iteration`` (1, 2 ...), ``[meta_batch_size, 2]``: a
        function of the seed and the iteration, so a resumed run draws the same ones."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration)
        return self.family.sample(self.meta_batch_size, generator)


# fields a resumed run may change: the budget, evaluation and output
_RESUMABLE = ("iterations", "eval_interval", "eval_tasks", "eval_steps", "eval_seed",
              "threads", "checkpoint_interval", "logger")


def run_identity(config: MAMLConfig) -> dict[str, Any]:
    """What a checkpoint must match to be resumed with ``config``."""
    return driver.run_identity(NAME, config, _RESUMABLE)


# ------------------------------------------------------------------------------------ the policy
def make_policy(config: MAMLConfig) -> tuple[nn.Module, TaskwiseModule, ProbabilisticActor]:
    """The policy network (``observation -> (loc, scale)``: a ReLU MLP and a state-independent
    scale), the :class:`~streamrl.modules.TaskwiseModule` around it that plays each task's
    adapted parameters, and the actor that samples actions from it."""
    net = nn.Sequential(
        MLP(in_features=2, out_features=2, num_cells=[config.hidden, config.hidden],
            activation_class=nn.ReLU),
        AddStateIndependentNormalScale(2),
    )
    taskwise = TaskwiseModule(net)
    actor = ProbabilisticActor(TensorDictModule(taskwise, ["observation"], ["loc", "scale"]),
                               in_keys=["loc", "scale"], distribution_class=IndependentNormal)
    return net, taskwise, actor


def policy_gradient_loss(net: nn.Module, data: TensorDictBase) -> torch.Tensor:
    """REINFORCE: ``-mean(log pi(action | observation) * advantage)`` over one task's steps
    (vmap-able: the inner and the outer loss of MAML)."""
    loc, scale = net(data["observation"])
    log_prob = torch.distributions.Normal(loc, scale, validate_args=False).log_prob(
        data["action"]).sum(-1)
    return -(log_prob * data["advantage"]).mean()


def task_data(batch: TensorDictBase, tasks: int, gamma: float) -> TensorDictBase:
    """The policy-gradient data of a batch of one episode per row (``[tasks * episodes,
    steps]``, a block of rows per task) as ``[tasks, episodes * steps]``: observation, action
    and advantage (the discounted return-to-go minus the mean over the task's episodes at
    that step, normalised over the task)."""
    reward = batch["next", "reward"].squeeze(-1)
    done = batch["next", "done"].squeeze(-1)
    returns = reverse_linear_scan(reward, gamma * (~done).to(reward.dtype))
    returns = returns.reshape(tasks, -1, returns.shape[-1])
    advantage = returns - returns.mean(1, keepdim=True)
    flat = advantage.reshape(tasks, -1)
    flat = (flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-8)
    return TensorDict({
        "observation": batch["observation"].reshape(tasks, flat.shape[1], -1),
        "action": batch["action"].reshape(tasks, flat.shape[1], -1),
        "advantage": flat,
    }, batch_size=[tasks])


# ----------------------------------------------------------------------------- playing the tasks
@dataclass
class Play:
    """The episodes of one play of the tasks: their policy-gradient data (``[tasks, ...]``),
    the mean episode return and the frames."""

    data: TensorDictBase
    mean_return: float
    frames: int


class TaskRollouts:
    """``tasks`` tasks played side by side, ``episodes_per_task`` episodes each, in one
    batched env (a block of rows per task) by a lockstep collector: :meth:`play` sets the
    goals and each task's parameters, and collects one episode per row."""

    def __init__(self, config: MAMLConfig, actor: ProbabilisticActor,
                 taskwise: TaskwiseModule, tasks: int) -> None:
        self.config, self.taskwise, self.tasks = config, taskwise, tasks
        rows = tasks * config.episodes_per_task
        self.env = PointNavigationEnv(batch_size=[rows], max_steps=config.max_steps,
                                      tolerance=None)
        self.collector = SyncDataCollector(self.env, actor,
                                           frames_per_batch=rows * config.max_steps,
                                           total_frames=-1)
        self._batches: Any = None

    def play(self, goals: torch.Tensor, params: TensorDictBase | None) -> Play:
        """One episode per row: task ``k``'s rows go to ``goals[k]`` with ``params[k]`` (or
        all with the policy's own parameters for ``None``)."""
        self.config.family.apply(self.env, goals.repeat_interleave(self.config.episodes_per_task, 0))
        if self._batches is None:
            self._batches = iter(self.collector)
        self.taskwise.task_params = None if params is None else params.detach()
        try:
            batch = next(self._batches)
        finally:
            self.taskwise.task_params = None
        if not (bool((batch["step"][:, 0] == 0).all()) and bool(batch["next", "done"][:, -1].all())):
            raise RuntimeError("TaskRollouts: a batch must be one whole episode per row")
        return Play(task_data(batch, self.tasks, self.config.gamma),
                    float(batch["next", "reward"].sum(-2).mean()), batch.numel())

    def graph(self) -> Graph:
        return self.collector.graph()

    def close(self) -> None:
        if self._batches is not None:
            self._batches.close()
        self.collector.shutdown()


def adapt_and_play(config: MAMLConfig, net: nn.Module, rollouts: TaskRollouts,
                   goals: torch.Tensor, steps: int, first_order: bool
                   ) -> tuple[TensorDictBase, list[Play]]:
    """Play the tasks with the policy's parameters, then after each of ``steps`` inner steps
    (each on the episodes of the parameters it adapts): the adapted parameters (a function
    of the policy's, to second order unless ``first_order``) and the ``steps + 1`` plays."""
    params = TensorDict.from_module(net)
    plays = [rollouts.play(goals, None)]
    for _ in range(steps):
        params = maml_adapt_tasks(net, params, policy_gradient_loss, plays[-1].data, steps=1,
                                  lr=config.inner_lr, first_order=first_order)
        plays.append(rollouts.play(goals, params))
    return params, plays


def evaluate(config: MAMLConfig, net: nn.Module, rollouts: TaskRollouts) -> list[float]:
    """The held-out tasks' mean episode return before adaptation and after each of
    ``eval_steps`` inner steps (first order), with torch's generators forked and seeded with
    ``eval_seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.eval_seed)
        _, plays = adapt_and_play(config, net, rollouts, config.eval_table(), config.eval_steps,
                                  first_order=True)
    return [p.mean_return for p in plays]


# ------------------------------------------------------------------------------------ training
def columns(config: MAMLConfig) -> list[str]:
    """The metrics columns of a run."""
    return (["iteration", "frames", "wall_s", "train_return", "train_return_adapted",
             "loss_outer", "eval_return"]
            + [f"eval_return/step_{k}" for k in range(config.eval_steps + 1)])


@dataclass
class MAMLResult:
    """What a run did: the budget spent, each evaluation (iteration, returns after 0 ..
    eval_steps inner steps) and where the files are."""

    iterations: int
    frames: int
    wall_s: float
    evaluations: list[tuple[int, list[float]]]
    run_dir: Path | None

    @property
    def eval_returns(self) -> list[float] | None:
        """The last evaluation's returns after 0 .. eval_steps inner steps."""
        return self.evaluations[-1][1] if self.evaluations else None


def train(config: MAMLConfig, *, run_dir: Path | None = None, progress: bool = False,
          resume: str | Path | None = None) -> MAMLResult:
    """Meta-train as configured; write metrics, config and checkpoints into ``run_dir``
    (nothing when ``None``). Seeds torch's global generator with ``config.seed``."""
    with driver.torch_threads(config.threads):
        torch.manual_seed(config.seed)
        net, taskwise, actor = make_policy(config)
        optim = torch.optim.Adam(net.parameters(), lr=config.lr)
        done = RunProgress()
        ckpt = Checkpoint(policy=net, optimizer=optim, progress=done, rng=GlobalRNGState(),
                          match=run_identity(config))
        if resume is not None:
            driver.load_resume(NAME, resume)
            ckpt.load(resume)  # everything checked first: a mismatch changes nothing
            if done.iteration >= config.iterations:
                raise ValueError(f"the checkpoint is at {done.iteration} meta-iterations, "
                                 f"already at the budget iterations={config.iterations}; "
                                 "pass a larger --iterations")
        train_rollouts = TaskRollouts(config, actor, taskwise, config.meta_batch_size)
        eval_rollouts = TaskRollouts(config, actor, taskwise, config.eval_tasks)
        try:
            return _train(config, net, optim, ckpt, done, train_rollouts, eval_rollouts,
                          run_dir, progress, resume is not None)
        finally:
            train_rollouts.close()
            eval_rollouts.close()


def _train(config: MAMLConfig, net: nn.Module, optim: torch.optim.Optimizer, ckpt: Checkpoint,
           done: RunProgress, train_rollouts: TaskRollouts, eval_rollouts: TaskRollouts,
           run_dir: Path | None, progress: bool, resumed: bool) -> MAMLResult:
    logger = None
    if run_dir is not None:
        run_dir = Path(run_dir)
        driver.write_config(run_dir, config)
        logger = run_metrics_logger(run_dir, columns(config), config.logger,
                                    resume_at=done.frames if resumed else None)
    from tqdm.auto import tqdm

    bar = tqdm(total=config.iterations, initial=done.iteration, unit="it", desc=NAME,
               disable=not progress, dynamic_ncols=True, file=sys.stderr)
    evaluations: list[tuple[int, list[float]]] = []
    boundary: list[dict[str, Any] | None] = [None]

    def save() -> None:
        if run_dir is not None and boundary[0] is not None:
            ckpt.save(run_dir / "checkpoint.pt", snapshot=boundary[0],
                      metadata={"config": dataclasses.asdict(config),
                                "iteration": boundary[0]["progress"]["iteration"],
                                "frames": boundary[0]["progress"]["frames"]})

    interval = config.checkpoint_interval
    t0 = time.perf_counter()
    try:
        while done.iteration < config.iterations:
            iteration = done.iteration + 1
            adapted, plays = adapt_and_play(config, net, train_rollouts,
                                            config.train_tasks(iteration), config.inner_steps,
                                            config.first_order)
            post = plays[-1]  # the episodes of the adapted parameters
            loss = maml_task_losses(net, adapted, policy_gradient_loss, post.data).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
            done.iteration = iteration
            done.frames += sum(p.frames for p in plays)
            row: dict[str, Any] = {"iteration": iteration, "frames": done.frames,
                                   "train_return": plays[0].mean_return,
                                   "train_return_adapted": post.mean_return,
                                   "loss_outer": float(loss.detach())}
            last = iteration == config.iterations
            evaluated = iteration % config.eval_interval == 0 or last
            if evaluated:
                returns = evaluate(config, net, eval_rollouts)
                evaluations.append((iteration, returns))
                done.eval_return = returns[min(config.inner_steps, config.eval_steps)]
                row["eval_return"] = done.eval_return
                row.update({f"eval_return/step_{k}": r for k, r in enumerate(returns)})
                bar.set_postfix(before=f"{returns[0]:.1f}", after=f"{returns[1]:.1f}",
                                refresh=False)
            row["wall_s"] = time.perf_counter() - t0
            if logger is not None:
                logger.log(row)
            bar.update(1)
            if run_dir is not None:
                boundary[0] = ckpt.snapshot()
                if last or (evaluated if interval is None else iteration % interval == 0):
                    save()
    except BaseException:
        save()  # the last meta-iteration boundary: a run resumes from here
        raise
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    if run_dir is not None and evaluations:
        driver.plot_learning_curve(run_dir, "MAML 2D navigation")
    return MAMLResult(iterations=done.iteration, frames=done.frames,
                      wall_s=time.perf_counter() - t0, evaluations=evaluations, run_dir=run_dir)


# ---------------------------------------------------------------------------------- entry points
def parse_args(argv: list[str] | None) -> tuple[MAMLConfig, Any]:
    """The config and the run options from command-line flags."""
    return driver.parse_args(NAME, __doc__, MAMLConfig, argv)


def _summary(name: str, config: MAMLConfig, result: MAMLResult) -> None:
    returns = result.eval_returns
    steps = ("not evaluated" if returns is None else
             " -> ".join(f"{r:.1f}" for r in returns) + f" (0 .. {len(returns) - 1} inner steps)")
    print(f"{name}: held-out return {steps} after {result.iterations} meta-iterations, "
          f"{result.frames:,} frames, {result.wall_s:.1f} s")
    if result.run_dir is not None:
        print(f"  run dir: {result.run_dir}")


def main(argv: list[str] | None = None) -> int:
    """Meta-train and print the held-out returns before and after adaptation."""
    return driver.main(NAME, parse_args, train, argv, summary=_summary, identity=run_identity)


def build_graph(argv: list[str] | None = None) -> Graph:
    """The collection graph of the training tasks (for ``streamrl graph``)."""
    config, _ = parse_args(argv)
    _, taskwise, actor = make_policy(config)
    rollouts = TaskRollouts(config, actor, taskwise, config.meta_batch_size)
    try:
        return rollouts.graph()
    finally:
        rollouts.close()


if __name__ == "__main__":
    sys.exit(main())
