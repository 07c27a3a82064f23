"""HIRO against flat TD3 on a PointMaze layout: the success rate of the final policy after a
stated number of frames.

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/hiro_maze.py \\
        [--env PointMaze_UMazeDense-v3] [--frames 30000] [--seeds 0,1,2] [--episodes 50] \\
        [--methods hiro,flat] [--hidden 64] [--root DIR] [--set FIELD=VALUE ...]

Each (method, seed) trains ``pipelines/hiro_pointmaze.py`` (``--flat`` for flat TD3 on the
same env, networks and settings) for ``--frames`` frames, then plays its final deterministic
policy for ``--episodes`` episodes (reset seeds 10000+, side by side, the env's step limit):
an episode succeeds when the ball comes within 0.45 of the goal (PointMaze's success
radius) at any step of it. Prints one row per method: the success rate per seed, their mean,
the mean evaluation return and the wall time per run. ``--set FIELD=VALUE`` (repeatable)
changes a field of ``HIROConfig`` for both methods (e.g. ``goal_range=1.0``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamrl.cli import load_pipeline  # noqa: E402
from streamrl.envs import SerialEnv  # noqa: E402
from streamrl.envs.utils import ExplorationType, set_exploration_type  # noqa: E402
from streamrl.train import field_overrides, load_checkpoint  # noqa: E402

HIRO = load_pipeline(REPO / "pipelines" / "hiro_pointmaze.py")
#: PointMaze's success radius
RADIUS = 0.45


def success_rate(config, run_dir: Path, episodes: int, seed: int = 10_000) -> tuple[float, float]:
    """The share of ``episodes`` deterministic episodes of the checkpoint's policy in which
    the ball reaches the goal (a sub-env's steps after its first episode do not count), and
    their mean return."""
    import gymnasium as gym

    probe = config.make_env()
    try:
        models = HIRO.make_models(config, probe)
    finally:
        probe.close()
    models.policy.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["policy"])
    horizon = gym.spec(config.env_name).max_episode_steps
    env = SerialEnv(episodes, config.make_env)
    try:
        env.set_seed(seed)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout = env.rollout(horizon, models.policy, break_when_any_done=False)
    finally:
        env.close()
    nxt = rollout["next"]
    distance = (nxt["achieved_goal"] - nxt["desired_goal"]).norm(dim=-1).reshape(episodes, -1)
    done = nxt["done"].reshape(episodes, -1).long()
    first = (done.cumsum(-1) - done) == 0
    reached = ((distance <= RADIUS) & first).any(-1).float().mean()
    returns = (nxt["reward"].reshape(episodes, -1) * first).sum(-1).mean()
    return float(reached), float(returns)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="PointMaze_UMazeDense-v3")
    p.add_argument("--frames", type=int, default=30_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--methods", default="hiro,flat")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--eval-interval", type=int, default=10_000)
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "streamrl-hiro")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = p.parse_args()
    try:
        changed = field_overrides(HIRO.HIROConfig, args.set)
    except ValueError as err:
        p.error(f"--set: {err}")
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - {"hiro", "flat"})
    if unknown:
        p.error(f"--methods: expected hiro and/or flat, found {unknown}")
    label = "".join(f", {k}={v}" for k, v in changed.items())
    print(f"{args.env}: success rate of the final deterministic policy after {args.frames} "
          f"frames ({args.episodes} episodes), TD3 hidden {args.hidden}{label}")
    print("| method | success per seed | mean | return (mean) | wall s per run |")
    print("|---|---|---|---|---|")
    for method in methods:
        rates, returns, walls = [], [], []
        for seed in seeds:
            config = HIRO.HIROConfig(env_name=args.env, frames=args.frames, seed=seed,
                                     flat=method == "flat", hidden=args.hidden,
                                     eval_interval=args.eval_interval, logger="none",
                                     **changed)
            run_dir = args.root / f"{method}-seed{seed}"
            t0 = time.perf_counter()
            HIRO.train(config, run_dir=run_dir)
            walls.append(time.perf_counter() - t0)
            rate, ret = success_rate(config, run_dir, args.episodes)
            rates.append(rate)
            returns.append(ret)
            print(f"  ({method} seed {seed}: success {rate:.2f}, return {ret:.1f}, "
                  f"{walls[-1]:.0f} s)", file=sys.stderr, flush=True)
        name = "HIRO (TD3 at both levels)" if method == "hiro" else "flat TD3"
        print(f"| {name} | {' / '.join(f'{r:.2f}' for r in rates)} | "
              f"{statistics.mean(rates):.2f} | {statistics.mean(returns):.1f} | "
              f"{statistics.mean(walls):.0f} |", flush=True)


if __name__ == "__main__":
    main()
