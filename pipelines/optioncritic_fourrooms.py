"""Option-critic in Four Rooms: ``streamrl run optioncritic_fourrooms``.

The option-critic architecture (Bacon, Harb and Precup 2017) in the four-rooms gridworld
(:class:`~streamrl.envs.FourRoomsEnv`: 104 cells, moves that slip with probability 1/3,
reward 1 at the goal, the east hallway at first). One network reads the agent's cell
(one-hot) and gives every option ``w`` its value ``Q(s, w)``, its termination probability
``beta(s, w)`` and its intra-option policy ``pi_w(a | s)``. The agent holds an option until
it terminates (``beta`` sampled at each step), then picks the next one epsilon-greedily on
``Q`` (a :class:`~streamrl.modules.HeldDecision`, ``("hrl", "decision")`` in the data), and
acts with that option's policy.

``num_envs`` envs step side by side (one batched env, a lockstep
:class:`~streamrl.collectors.SyncDataCollector`); each batch of ``steps_per_env`` steps is
one Adam step on :class:`~streamrl.objectives.OptionCriticLoss` (one-step targets on arrival,
the intra-option policy gradient, the termination gradient with the deliberation cost
``termination_reg``, an entropy bonus). ``--num-options 1`` is the flat actor-critic baseline
(one option that never needs to end: the same code, no hierarchy).

The paper's transfer experiment: at ``goal_move_at`` frames the goal moves to a cell of the
lower-right room (drawn with ``seed``, the same cell for every env and the evaluation); the
logged steps to the goal show how fast each agent recovers. Every ``eval_interval`` frames,
``eval_episodes`` episodes from seeded starts with the current policy (options picked and
ended as in training): ``eval_steps`` is their mean length (steps to the goal; episodes are
cut at ``max_steps``).

A run directory (``runs/optioncritic_fourrooms-<timestamp>/``) receives ``metrics.csv`` /
``metrics.jsonl``, ``config.json``, ``checkpoint.pt`` (network, optimizer, counters and
random generators; ``--resume`` starts new episodes from there), ``learning_curve.png`` and
``options.png``: each cell coloured by the option the agent picks there, its termination
probability as the marker's size (with matplotlib).

    $ streamrl run optioncritic_fourrooms --frames 400000 --seed 1
    $ streamrl run optioncritic_fourrooms --num-options 1   # flat actor-critic
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.checkpoint import Checkpoint, GlobalRNGState
from streamrl.collectors import SyncDataCollector
from streamrl.data.specs import Categorical
from streamrl.envs import EnvBase, FourRoomsEnv
from streamrl.envs.custom.four_rooms import EAST_HALLWAY
from streamrl.envs.utils import ExplorationType
from streamrl.graph import Graph
from streamrl.modules import MLP, HeldDecision
from streamrl.objectives import OptionCriticLoss
from streamrl.ops import check_run_logger, default_run_logger, play_episodes, run_metrics_logger
from streamrl.train import RunProgress, driver, plot_metrics, read_metrics
from streamrl.train.config import check_field, check_positive_ints

NAME = "optioncritic_fourrooms"

#: the lower-right room's cells (rows 8-11, columns 7-11): where the goal moves
LOWER_RIGHT = [(r, c) for r in range(8, 12) for c in range(7, 12)]


@dataclass
class OptionCriticConfig:
    """Hyper-parameters of option-critic in Four Rooms (the paper's: 4 options, gamma 0.99,
    epsilon 0.01 for picking options, no deliberation cost, ``termination_reg``: the A2OC
    follow-up's is 0.01, with which the options here stop ending; Adam on batches of
    ``num_envs x steps_per_env`` steps in place of per-step SGD on a table).
    ``hidden=0`` makes the heads linear in the one-hot cell (the paper's tabular
    parametrisation)."""

    num_options: int = 4
    num_envs: int = 16
    steps_per_env: int = 8
    lr: float = 3e-3
    gamma: float = 0.99
    termination_reg: float = 0.0
    entropy_coef: float = 0.01
    epsilon: float = 0.01
    hidden: int = 0
    max_steps: int = 1000
    frames: int = 400_000
    goal_move_at: int | None = 200_000
    eval_interval: int = 20_000
    eval_episodes: int = 32
    eval_seed: int = 10_000
    seed: int = 0
    threads: int = 1
    logger: str = default_run_logger()

    def __post_init__(self) -> None:
        check_run_logger(self.logger)
        check_positive_ints(self, "num_options", "num_envs", "steps_per_env", "max_steps",
                            "frames", "eval_interval", "eval_episodes", "threads")
        check_field(self, "hidden", isinstance(self.hidden, int) and self.hidden >= 0,
                    "an int >= 0")
        check_field(self, "lr", self.lr > 0, "> 0")
        for name in ("gamma", "epsilon"):
            check_field(self, name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")
        if self.goal_move_at is not None:
            check_field(self, "goal_move_at", 0 < self.goal_move_at < self.frames,
                        f"None or in (0, frames={self.frames})")

    @property
    def frames_per_batch(self) -> int:
        return self.num_envs * self.steps_per_env

    def moved_goal(self) -> tuple[int, int]:
        """The goal's cell after the move: one of the lower-right room, drawn with ``seed``."""
        generator = torch.Generator().manual_seed(self.seed)
        return LOWER_RIGHT[int(torch.randint(len(LOWER_RIGHT), (), generator=generator))]


_RESUMABLE = ("frames", "eval_interval", "eval_episodes", "eval_seed", "threads", "logger")


def run_identity(config: OptionCriticConfig) -> dict[str, Any]:
    """What a checkpoint must match to be resumed with ``config``."""
    return driver.run_identity(NAME, config, _RESUMABLE)


# ---------------------------------------------------------------------------------- networks
class OptionHeads(nn.Module):
    """``observation -> (Q(s, .), beta(s, .), intra-option logits)``: a trunk (linear in the
    one-hot cell with ``hidden=0``, else a ReLU layer of ``hidden`` units) and three heads."""

    def __init__(self, cells: int, options: int, actions: int, hidden: int) -> None:
        super().__init__()
        width = cells if hidden == 0 else hidden
        self.trunk = (nn.Identity() if hidden == 0 else
                      MLP(in_features=cells, out_features=hidden, num_cells=[],
                          activate_last_layer=True, activation_class=nn.ReLU))
        self.options, self.actions = options, actions
        self.head = nn.Linear(width, options * (2 + actions))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head(self.trunk(obs))
        n = self.options
        q, beta, logits = out[..., :n], out[..., n:2 * n].sigmoid(), out[..., 2 * n:]
        return q, beta, logits.unflatten(-1, (n, self.actions))


class _PickOption(nn.Module):
    """Epsilon-greedy over the option values."""

    def __init__(self, heads: OptionHeads, epsilon: float) -> None:
        super().__init__()
        self.heads, self.epsilon = heads, epsilon

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        q = self.heads(obs)[0]
        greedy = q.argmax(-1, keepdim=True)
        random = torch.randint(q.shape[-1], greedy.shape)
        explore = torch.rand(greedy.shape) < self.epsilon
        return torch.where(explore, random, greedy)


class _ActInOption(nn.Module):
    """A sample of the held option's policy."""

    def __init__(self, heads: OptionHeads) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, obs: torch.Tensor, option: torch.Tensor) -> torch.Tensor:
        logits = self.heads(obs)[2]
        mine = logits.gather(-2, option.long().unsqueeze(-1).expand(
            *option.shape, logits.shape[-1])).squeeze(-2)
        return torch.distributions.Categorical(logits=mine).sample()


def make_agent(config: OptionCriticConfig) -> tuple[OptionHeads, HeldDecision, nn.Module]:
    """The network, the held option (picked epsilon-greedily, ended by sampling ``beta``)
    and the policy over options the collectors run."""
    heads = OptionHeads(104, config.num_options, 4, config.hidden)

    def terminate(td: TensorDictBase) -> torch.Tensor:
        beta = heads(td["observation"])[1]
        held = beta.gather(-1, td["hrl", "decision"].long())
        return torch.rand(held.shape) < held

    high = TensorDictModule(_PickOption(heads, config.epsilon), ["observation"],
                            [("hrl", "decision")])
    held = HeldDecision(high, Categorical(config.num_options, shape=(1,)), terminate=terminate)
    low = TensorDictModule(_ActInOption(heads), ["observation", ("hrl", "goal")], ["action"])
    return heads, held, TensorDictSequential(held, low)


def make_env(config: OptionCriticConfig, held: HeldDecision, num_envs: int,
             seed: int) -> EnvBase:
    """``num_envs`` four-rooms envs in one batch, with what the held option needs."""
    env = FourRoomsEnv(batch_size=[num_envs], max_steps=config.max_steps, seed=seed,
                       goal=EAST_HALLWAY)
    return held.transform_env(env)


def make_loss(config: OptionCriticConfig, heads: OptionHeads) -> OptionCriticLoss:
    network = TensorDictModule(heads, ["observation"],
                               ["option_values", "termination_probs", "option_logits"])
    return OptionCriticLoss(network, gamma=config.gamma, termination_reg=config.termination_reg,
                            entropy_coeff=config.entropy_coef)


# ---------------------------------------------------------------------------------- training
COLUMNS = ["iteration", "frames", "wall_s", "train_steps", "train_episodes", "eval_steps",
           "goal_moved", "loss_critic", "loss_actor", "loss_termination", "entropy",
           "option_value", "termination_prob"]


@dataclass
class OptionCriticResult:
    """What a run did: frames, each evaluation ``(frames, mean steps to the goal)``, the
    frame the goal moved at and where the files are."""

    frames: int
    wall_s: float
    evaluations: list[tuple[int, float]]
    goal_moved_at: int | None
    run_dir: Path | None


def _evaluate(config: OptionCriticConfig, policy: nn.Module, env: EnvBase) -> float:
    stats = play_episodes(env, policy, exploration_type=ExplorationType.RANDOM,
                          seed=config.eval_seed, max_steps=config.max_steps, truncate=True)
    return float(stats.lengths.float().mean())


def train(config: OptionCriticConfig, *, run_dir: Path | None = None, progress: bool = False,
          resume: str | Path | None = None) -> OptionCriticResult:
    """Train as configured; write metrics, config, checkpoints and pictures into ``run_dir``
    (nothing when ``None``). Seeds torch's global generator with ``config.seed``."""
    with driver.torch_threads(config.threads):
        torch.manual_seed(config.seed)
        heads, held, policy = make_agent(config)
        loss = make_loss(config, heads)
        optim = torch.optim.Adam(heads.parameters(), lr=config.lr)
        done = RunProgress()
        ckpt = Checkpoint(network=heads, optimizer=optim, progress=done, rng=GlobalRNGState(),
                          match=run_identity(config))
        if resume is not None:
            driver.load_resume(NAME, resume)
            ckpt.load(resume)
            if done.frames >= config.frames:
                raise ValueError(f"the checkpoint is at {done.frames} frames, already at the "
                                 f"budget frames={config.frames}; pass a larger --frames")
        env = make_env(config, held, config.num_envs, config.seed + done.frames)
        eval_env = make_env(config, held, config.eval_episodes, config.eval_seed)
        collector = SyncDataCollector(env, policy, frames_per_batch=config.frames_per_batch,
                                      total_frames=config.frames - done.frames)
        try:
            return _train(config, heads, policy, loss, optim, ckpt, done, env, eval_env,
                          collector, run_dir, progress, resume is not None)
        finally:
            collector.shutdown()
            eval_env.close()


def _move_goal(config: OptionCriticConfig, *envs: EnvBase) -> None:
    for env in envs:
        env.base_env.goal = config.moved_goal()


def _train(config: OptionCriticConfig, heads: OptionHeads, policy: nn.Module,
           loss: OptionCriticLoss, optim: torch.optim.Optimizer, ckpt: Checkpoint,
           done: RunProgress, env: EnvBase, eval_env: EnvBase, collector: SyncDataCollector,
           run_dir: Path | None, progress: bool, resumed: bool) -> OptionCriticResult:
    logger = None
    if run_dir is not None:
        run_dir = Path(run_dir)
        driver.write_config(run_dir, config)
        logger = run_metrics_logger(run_dir, COLUMNS, config.logger,
                                    resume_at=done.frames if resumed else None)
    moved = config.goal_move_at is not None and done.frames >= config.goal_move_at
    if moved:
        _move_goal(config, env, eval_env)
    from tqdm.auto import tqdm

    bar = tqdm(total=config.frames, initial=done.frames, unit="frame", unit_scale=True,
               desc=NAME, disable=not progress, dynamic_ncols=True, file=sys.stderr)
    evaluations: list[tuple[int, float]] = []
    moved_at = config.goal_move_at if moved else None
    next_eval = (done.frames // config.eval_interval + 1) * config.eval_interval
    t0 = time.perf_counter()
    try:
        for batch in collector:
            done.frames += batch.numel()
            done.iteration += 1
            out = loss(batch.reshape(-1))
            total = out["loss_critic"] + out["loss_actor"] + out["loss_termination"] + out[
                "loss_entropy"]
            optim.zero_grad()
            total.backward()
            nn.utils.clip_grad_norm_(heads.parameters(), 1.0)
            optim.step()
            ended = batch["next", "done"].squeeze(-1)
            lengths = batch["next", "step"].squeeze(-1)[ended].float()
            row: dict[str, Any] = {"iteration": done.iteration, "frames": done.frames,
                                   "train_episodes": int(ended.sum()), "goal_moved": int(moved)}
            if len(lengths):
                row["train_steps"] = float(lengths.mean())
            row.update({k: float(out[k].detach()) for k in
                        ("loss_critic", "loss_actor", "loss_termination", "entropy",
                         "option_value", "termination_prob")})
            if done.frames >= next_eval or done.frames >= config.frames:
                next_eval = (done.frames // config.eval_interval + 1) * config.eval_interval
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(config.eval_seed)
                    steps = _evaluate(config, policy, eval_env)
                evaluations.append((done.frames, steps))
                done.eval_return = steps
                row["eval_steps"] = steps
                bar.set_postfix(steps=f"{steps:.0f}", refresh=False)
            if (not moved and config.goal_move_at is not None
                    and done.frames >= config.goal_move_at):
                _move_goal(config, env, eval_env)  # from the next batch on
                moved, moved_at = True, done.frames
            row["wall_s"] = time.perf_counter() - t0
            if logger is not None:
                logger.log(row)
            bar.update(batch.numel())
    finally:
        bar.close()
        if logger is not None:
            logger.close()
        if run_dir is not None:
            ckpt.save(run_dir / "checkpoint.pt",
                      metadata={"config": dataclasses.asdict(config), "frames": done.frames})
    if run_dir is not None:
        plot_metrics(read_metrics(run_dir), run_dir / "learning_curve.png",
                     y=("train_steps", "eval_steps"), title="option-critic, Four Rooms: steps to the goal")
        draw_options(heads, env.base_env, run_dir / "options.png")
    return OptionCriticResult(frames=done.frames, wall_s=time.perf_counter() - t0,
                              evaluations=evaluations, goal_moved_at=moved_at, run_dir=run_dir)


def draw_options(heads: OptionHeads, env: FourRoomsEnv, path: Path) -> Path | None:
    """``path``: each free cell coloured by the option with the highest value there (the one
    picked greedily), marker size the probability that it ends in the cell; the goal
    starred. ``None`` (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    with torch.no_grad():
        q, beta, _ = heads(torch.eye(env.num_cells))
    option = q.argmax(-1)
    ends = beta.gather(-1, option.unsqueeze(-1)).squeeze(-1)
    fig, ax = plt.subplots(figsize=(5, 5))
    try:
        ax.imshow(~env.free.numpy(), cmap="Greys")
        rows, cols = env.cells[:, 0].numpy(), env.cells[:, 1].numpy()
        points = ax.scatter(cols, rows, c=option.numpy(), s=30 + 200 * ends.numpy(),
                            cmap="tab10", vmin=0, vmax=9)
        goal = env.goal.reshape(-1, 2)[0].tolist()
        ax.scatter([goal[1]], [goal[0]], marker="*", s=300, c="gold", edgecolors="black")
        ax.legend(*points.legend_elements(), title="option", loc="upper right", fontsize=7)
        ax.set_title("greedy option per cell (size: termination probability)")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- entry points
def parse_args(argv: list[str] | None) -> tuple[OptionCriticConfig, Any]:
    """The config and the run options from command-line flags."""
    return driver.parse_args(NAME, __doc__, OptionCriticConfig, argv)


def _summary(name: str, config: OptionCriticConfig, result: OptionCriticResult) -> None:
    last = result.evaluations[-1][1] if result.evaluations else float("nan")
    moved = ("" if result.goal_moved_at is None
             else f"; the goal moved at {result.goal_moved_at:,} frames")
    print(f"{name}: {last:.1f} steps to the goal (evaluation) after {result.frames:,} frames, "
          f"{result.wall_s:.1f} s{moved}")
    if result.run_dir is not None:
        print(f"  run dir: {result.run_dir}")


def main(argv: list[str] | None = None) -> int:
    """Train and print the last evaluation."""
    return driver.main(NAME, parse_args, train, argv, summary=_summary, identity=run_identity)


def build_graph(argv: list[str] | None = None) -> Graph:
    """The collection graph (for ``streamrl graph``)."""
    config, _ = parse_args(argv)
    _, held, policy = make_agent(config)
    env = make_env(config, held, config.num_envs, config.seed)
    collector = SyncDataCollector(env, policy, frames_per_batch=config.frames_per_batch,
                                  total_frames=config.frames)
    try:
        return collector.graph()
    finally:
        collector.shutdown()


if __name__ == "__main__":
    sys.exit(main())
