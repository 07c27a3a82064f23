"""HIRO on PointMaze: ``streamrl run hiro_pointmaze``.

Data-efficient hierarchical RL (Nachum et al. 2018) as one concurrent graph: a high-level
TD3 policy proposes a relative goal (a displacement of the ball's position) every
``goal_every`` steps, a low-level TD3 policy is rewarded for reaching it, and each level has
its own replay and learner, fed from one rollout::

    rollout (process) --+--> low replay ==> low learner --> weight sync --> metrics
      (HeldDecision +   |                                      |   evaluator
       low policy)      +--> segments --> high replay ==> high learner --> (its stats)

- the rollout plays ``HeldDecision(high policy, every=goal_every, goal_mode="relative")``
  followed by the low policy: the held goal's absolute target ``s + g`` is carried as
  ``("hrl", "anchor")``, so the low level's goal at each step is ``anchor - s``, HIRO's goal
  transition ``h(s, g, s') = s + g - s'``; the low level reads the observation and that goal;
- the env reward of each step trains the high level (summed over its segments by the
  :class:`~streamrl.ops.SegmentBatcher`), ``GoalReachingReward``'s ``-||s + g - s'||``
  (``("hrl", "reward")``) the low level;
- the low level trains as ``td3_mujoco``'s learner from the low replay (ratio-limited); the
  high level from its own replay of segments, ``high_updates_per_segment`` updates per
  stored segment (:class:`~streamrl.ops.ReplayDraws`), each sampled batch's goals relabelled
  first by HIRO's off-policy correction (:func:`~streamrl.objectives.hiro_relabel`, with the
  low policy of the moment: the candidate goal that makes the stored low-level actions most
  likely);
- both learners step under one lock, and the weight sync publishes the whole hierarchy
  after each low-level message (the high level's newest weights travel with it).

The env is gymnasium-robotics' ``PointMaze_UMazeDense-v3`` (a ball pushed through a U-shaped
maze towards a goal; reward ``exp(-distance to the goal)``; 300 steps; the ``goals`` extra).
Goals are displacements of ``achieved_goal`` (the ball's x, y) within ``+-goal_range``.
``--flat`` trains flat TD3 on the same env, networks and settings (observation and desired
goal in, action out): the baseline. Any gymnasium-robotics maze runs by ``--env-name``,
AntMaze too (``--env-name AntMaze_UMazeDense-v5``; its cells are 4 wide: set
``--goal-range`` to what the ant covers in ``goal_every`` steps).

The run directory is ``td3_mujoco``'s (``config.json``, metrics, TensorBoard,
``checkpoint.pt`` with both levels' networks, optimizers, buffers and the open segments:
``--resume``; ``learning_curve.png``) and ``goals.png``: the maze, the ball's path in one
evaluation episode and the goals the high level proposed along it (arrows from the ball's
position to ``s + g``).

    $ streamrl run hiro_pointmaze --frames 100000 --seed 1
    $ streamrl run hiro_pointmaze --flat              # flat TD3
    $ streamrl graph hiro_pointmaze
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.cli import load_pipeline
from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.data.specs import Bounded
from streamrl.envs import DoubleToFloat, EnvBase, GoalReachingReward, GymEnv, TransformedEnv
from streamrl.graph import Sink
from streamrl.modules import (
    MLP,
    AdditiveGaussianModule,
    HeldDecision,
    TanhModule,
    ValueOperator,
)
from streamrl.objectives import hiro_relabel
from streamrl.ops import LastRow, OffPolicyGraph, ReplayDraws, ReplaySink, SegmentBatcher
from streamrl.train import check_field, check_positive_ints, driver

NAME = "hiro_pointmaze"

# TD3's config fields and learner, for both levels
_td3 = load_pipeline(Path(__file__).with_name("td3_mujoco.py"))

COLUMNS = [
    "frames", "wall_s", "fps", "updates", "batches", "train_return", "train_episodes",
    "eval_return", "eval_return_std", "eval_frames", "loss_actor", "loss_qvalue",
    "high_updates", "high_loss_qvalue", "high_loss_actor", "relabelled", "policy_version",
    "batch_policy_version", "staleness", "staleness_max", "collector_version", "eval_s",
]

#: the observation entry goals are displacements of (PointMaze: the ball's x, y)
GOAL_KEY = "achieved_goal"
#: what the flat policy and the high level read
TASK_INPUTS = ["observation", "desired_goal"]


@dataclass
class HIROConfig(_td3.TD3Config):
    """Hyper-parameters of HIRO on PointMaze (TD3 at both levels, ``td3_mujoco``'s fields;
    HIRO's goal every 10 steps, 8 relabelling candidates around the travelled
    displacement). ``exploration_noise`` is in units of the action's half-range,
    ``high_exploration_noise`` in units of ``goal_range``. ``goal_range`` 0.5: about what the
    ball covers in 10 steps (0.13 from rest at full force, 0.5 at its top speed), as HIRO
    bounds goals by what the low level can reach in one segment."""

    env_name: str = "PointMaze_UMazeDense-v3"
    frames: int = 100_000
    learning_starts: int = 1000
    init_random_frames: int | None = 0  # the hierarchy acts from the first frame
    eval_interval: int = 10_000
    eval_episodes: int = 10
    target_return: float = float("inf")
    exploration_noise: float = 0.2
    flat: bool = False
    goal_every: int = 10
    goal_range: float = 0.5
    high_exploration_noise: float = 0.25
    high_batch_size: int = 128
    high_updates_per_segment: float = 1.0
    high_learning_starts: int = 100
    high_buffer_size: int = 100_000
    relabel_candidates: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "goal_every", "high_batch_size", "high_learning_starts",
                            "high_buffer_size")
        check_field(self, "high_exploration_noise", self.high_exploration_noise >= 0, ">= 0")
        check_field(self, "goal_range", self.goal_range > 0, "> 0")
        check_field(self, "high_updates_per_segment", self.high_updates_per_segment > 0, "> 0")
        check_field(self, "relabel_candidates", isinstance(self.relabel_candidates, int)
                    and self.relabel_candidates >= 0, "an int >= 0")

    @property
    def goal_spec(self) -> Bounded:
        """The high level's action: a displacement of ``achieved_goal`` within the range."""
        return Bounded(-self.goal_range, self.goal_range, shape=(2,))

    def make_env(self) -> EnvBase:
        """The goal env, float64 entries cast to float32; for the hierarchy, with what the
        held goal needs (:meth:`HeldDecision.transform_env`) and the low level's reward."""
        env = TransformedEnv(GymEnv(self.env_name), DoubleToFloat())
        if self.flat:
            return env
        env = held_goal(self, nn.Identity()).transform_env(env)
        return TransformedEnv(env, GoalReachingReward(goal_key=GOAL_KEY))


def held_goal(config: HIROConfig, high_policy: Any) -> HeldDecision:
    """The goal held for ``goal_every`` steps, as a displacement of ``achieved_goal``."""
    return HeldDecision(high_policy, config.goal_spec, every=config.goal_every,
                        goal_mode="relative", goal_key=GOAL_KEY)


class _GoalFromAnchor(nn.Module):
    """The low level's goal at a step: the held target minus where the ball is."""

    def forward(self, anchor: torch.Tensor, reached: torch.Tensor) -> torch.Tensor:
        return anchor - reached


def _low_goal() -> TensorDictModule:
    return TensorDictModule(_GoalFromAnchor(), in_keys=[("hrl", "anchor"), GOAL_KEY],
                            out_keys=["low_goal"])


def _td3_pair(config: HIROConfig, inputs: list[Any], widths: int, spec: Any,
              out_key: Any) -> tuple[TensorDictSequential, ValueOperator]:
    """A tanh-squashed deterministic actor of ``inputs`` (``widths`` wide in all) into
    ``spec``'s bounds and a Q-network of ``inputs`` and the action."""
    hidden = [config.hidden] * 2
    act_dim = spec.shape[-1]
    actor = TensorDictSequential(
        TensorDictModule(MLP(in_features=widths, out_features=act_dim, num_cells=hidden,
                             activation_class=nn.ReLU), in_keys=inputs,
                         out_keys=["action_param"]),
        TanhModule(["action_param"], [out_key], spec=spec),
    )
    qnet = MLP(in_features=widths + act_dim, out_features=1, num_cells=hidden,
               activation_class=nn.ReLU)
    return actor, ValueOperator(qnet, in_keys=[*inputs, "action"])


def _noise(spec: Any, sigma: float) -> AdditiveGaussianModule:
    """Gaussian exploration noise of ``sigma`` half-ranges, clipped into ``spec``."""
    return AdditiveGaussianModule(spec, sigma_init=sigma, sigma_end=sigma,
                                  annealing_num_steps=1, std=(spec.high - spec.low) / 2)


@dataclass
class Models:
    """The networks of a run: the rollout's policy and, per level, the actor and critic
    (the high ones ``None`` for flat TD3)."""

    policy: TensorDictSequential
    actor: TensorDictSequential
    qvalue: Any
    high_actor: TensorDictSequential | None = None
    high_qvalue: Any = None


def make_models(config: HIROConfig, env: Any) -> Models:
    """Flat TD3's networks (observation and desired goal in), or HIRO's: a high actor of
    the same inputs proposing a goal, a low actor of the observation and its goal."""
    spec = env.action_spec
    if getattr(spec, "low", None) is None or getattr(spec, "high", None) is None:
        raise ValueError(f"{NAME} needs a bounded continuous action space, found "
                         f"{type(spec).__name__} for {config.env_name!r}")
    obs = env.observation_spec
    missing = [k for k in ("observation", GOAL_KEY, "desired_goal") if k not in obs.keys()]
    if missing:
        raise ValueError(f"{NAME} needs a goal env (observation, achieved_goal, desired_goal), "
                         f"found observation keys {sorted(obs.keys())} for {config.env_name!r}")
    task_width = sum(obs[k].shape[-1] for k in TASK_INPUTS)
    if config.flat:
        actor, qvalue = _td3_pair(config, TASK_INPUTS, task_width, spec, "action")
        return Models(TensorDictSequential(actor, _noise(spec, config.exploration_noise)),
                      actor, qvalue)
    if obs[GOAL_KEY].shape[-1] != config.goal_spec.shape[-1]:
        raise ValueError(f"{NAME}: goals are displacements of {GOAL_KEY!r}, "
                         f"{list(obs[GOAL_KEY].shape)}; expected 2 entries")
    goal_spec = config.goal_spec
    high_actor, high_qvalue = _td3_pair(config, TASK_INPUTS, task_width, goal_spec, "action")
    high_policy = TensorDictSequential(
        high_actor, _noise(goal_spec, config.high_exploration_noise),
        TensorDictModule(nn.Identity(), in_keys=["action"], out_keys=[("hrl", "decision")]))
    low_inputs = ["observation", "low_goal"]
    low_width = obs["observation"].shape[-1] + goal_spec.shape[-1]
    low_actor, low_q = _td3_pair(config, low_inputs, low_width, spec, "action")
    actor = TensorDictSequential(_low_goal(), low_actor)
    qvalue = TensorDictSequential(_low_goal(), low_q)
    policy = TensorDictSequential(held_goal(config, high_policy), actor,
                                  _noise(spec, config.exploration_noise))
    return Models(policy, actor, qvalue, high_actor, high_qvalue)


class Relabel:
    """The high replay's sampling transform: HIRO's off-policy correction of each sampled
    segment's goal, scored with the low actor as it is now (no gradients)."""

    def __init__(self, config: HIROConfig, low_actor: TensorDictSequential) -> None:
        self.low_actor, self.candidates = low_actor, config.relabel_candidates
        self.range = config.goal_range
        self.relabelled = 0.0  # share of the last batch whose goal changed

    def _mean_action(self, observation: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        td = TensorDict({"observation": observation, "low_goal": goal},
                        batch_size=observation.shape[:-1])
        return self.low_actor[1:](td)["action"]  # past the goal module: the goal is given

    def __call__(self, batch: Any) -> Any:
        with torch.no_grad():
            hiro_relabel(batch, self._mean_action, goal_low=-self.range, goal_high=self.range,
                         num_candidates=self.candidates, goal_key=GOAL_KEY)
        self.relabelled = float((batch["hrl", "relabel_index"] != 0).float().mean())
        return batch


def build(config: HIROConfig, run_dir: Path | None, progress: bool,
          state: dict[str, Any] | None = None) -> OffPolicyGraph:
    """The concurrent graph of ``config`` (both levels, or flat TD3), restored from
    ``state`` (a checkpoint)."""
    torch.manual_seed(config.seed)
    probe = config.make_env()
    try:
        models = make_models(config, probe)
        spec = probe.action_spec
        with torch.no_grad():  # checks the keys once
            models.policy(probe.reset())
    finally:
        probe.close()
    low, saved = _td3.make_learner(config, models.actor, models.qvalue, spec,
                                   reward_key=None if config.flat else ("hrl", "reward"))
    saved["policy"] = models.policy
    if config.flat:
        return config.graph(NAME, models.policy, low, saved=saved, state=state,
                            run_dir=run_dir, progress=progress, columns=COLUMNS)
    high, high_saved = _td3.make_learner(config, models.high_actor, models.high_qvalue,
                                         config.goal_spec, lock=low.lock,
                                         minibatch_size=config.high_batch_size)
    relabel = Relabel(config, models.actor)
    high_buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(config.high_buffer_size),
                                         transform=relabel)
    segments = SegmentBatcher(keep_steps=("observation", GOAL_KEY, "action"),
                              max_length=config.goal_every)
    draws = ReplayDraws(high_buffer, config.high_batch_size,
                        draws_per_row=config.high_updates_per_segment,
                        learning_starts=config.high_learning_starts)
    stats = LastRow()
    saved.update({f"high_{k}": v for k, v in high_saved.items()})
    saved.update(high_learner=high, high_buffer=high_buffer, segments=segments,
                 high_draws=draws)
    extras = {"high_updates": lambda: high.updates,
              "high_loss_qvalue": stats.reader("loss_qvalue"),
              "high_loss_actor": stats.reader("loss_actor"),
              "relabelled": lambda: relabel.relabelled}
    og = config.graph(NAME, models.policy, low, saved=saved, state=state, run_dir=run_dir,
                      progress=progress, columns=COLUMNS, extra_metrics=extras)
    g = og.graph
    seg = g.add(segments, name="segments")
    sink = g.add(ReplaySink(high_buffer, emit_counts=True), name="high_replay_sink",
                 placement="thread")
    source = g.add(draws, name="high_replay_source", placement="thread")
    learn = g.add(high, name="high_learner", placement="thread")
    out = g.add(Sink(stats.update), name="high_stats")
    g.connect(g["rollout"], seg).connect(seg, sink).connect(sink, source)
    g.connect(source, learn, capacity=2).connect(learn, out)
    return og


# ---------------------------------------------------------------------------------- the picture
def draw_goals(config: HIROConfig, run_dir: Path, *, seed: int | None = None) -> Path | None:
    """``goals.png`` in ``run_dir``: the maze, the ball's path in one deterministic episode of
    the checkpoint's policy and the goals proposed along it. ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from streamrl.envs.utils import ExplorationType, set_exploration_type
    from streamrl.train import load_checkpoint

    env = config.make_env()
    try:
        models = make_models(config, env)
        models.policy.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["policy"])
        env.set_seed(config.eval_seed if seed is None else seed)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            episode = env.rollout(10_000, models.policy)
        maze = _unwrapped(env).maze
    finally:
        env.close()
    path = episode["next", GOAL_KEY].numpy()
    start = episode[GOAL_KEY][0].numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    scale = maze.maze_size_scaling
    for i, row in enumerate(maze.maze_map):
        for j, cell in enumerate(row):
            if cell == 1:
                x = (j - maze.map_width / 2 + 0.5) * scale
                y = (maze.map_length / 2 - i - 0.5) * scale
                ax.add_patch(plt.Rectangle((x - scale / 2, y - scale / 2), scale, scale,
                                           color="0.3"))
    ax.plot([start[0], *path[:, 0]], [start[1], *path[:, 1]], color="tab:blue", lw=1.5,
            label="ball")
    goal = episode["desired_goal"][0].numpy()
    ax.scatter([goal[0]], [goal[1]], marker="*", s=200, color="tab:green", label="task goal",
               zorder=3)
    if not config.flat:
        new = episode["hrl", "new"].reshape(-1).numpy()
        at = episode[GOAL_KEY][new].numpy()
        target = episode["hrl", "anchor"][new].numpy()
        ax.quiver(at[:, 0], at[:, 1], target[:, 0] - at[:, 0], target[:, 1] - at[:, 1],
                  angles="xy", scale_units="xy", scale=1, color="tab:red", width=0.006,
                  label="proposed goals")
    half_w, half_l = maze.map_width * scale / 2, maze.map_length * scale / 2
    ax.set_xlim(-half_w, half_w)
    ax.set_ylim(-half_l, half_l)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(f"{'TD3' if config.flat else 'HIRO'} on {config.env_name}, one evaluation "
                 "episode", fontsize=8)
    out = run_dir / "goals.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _unwrapped(env: Any) -> Any:
    """The gymnasium env under a streamrl env's transforms."""
    while hasattr(env, "base_env"):
        env = env.base_env
    return env._env.unwrapped


# ---------------------------------------------------------------------------------- entry points
_pipeline = driver.OffPolicyPipeline(NAME, "HIRO", HIROConfig, build, __doc__)
parse_args, build_graph = _pipeline.parse_args, _pipeline.build_graph


def train(config: HIROConfig, *, run_dir: Path | None = None, progress: bool = False,
          resume: str | Path | None = None) -> Any:
    """Train as configured (see :class:`~streamrl.train.driver.OffPolicyPipeline`), then
    draw ``goals.png`` into ``run_dir``."""
    result = _pipeline.train(config, run_dir=run_dir, progress=progress, resume=resume)
    if run_dir is not None and (Path(run_dir) / "checkpoint.pt").exists():
        draw_goals(config, Path(run_dir))
    return result


def main(argv: list[str] | None = None) -> int:
    """Train from command-line flags, print a summary and the graph's report."""
    return driver.main(NAME, parse_args, train, argv)


if __name__ == "__main__":
    sys.exit(main())
