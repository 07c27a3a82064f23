"""SAC with and without hindsight relabelling on a goal env: the success rate of the final
policy after a stated number of frames.

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/her_goals.py \\
        [--env PointMaze_UMaze-v3] [--frames 30000] [--seeds 0,1,2] [--episodes 50] \\
        [--her-ratios 0.8,0] [--hidden 256] [--root DIR]

Each (HER ratio, seed) trains ``pipelines/sac_her.py`` (``--her-ratio 0`` is SAC on the same
goal-conditioned networks without relabelling) for ``--frames`` frames, then plays its final
deterministic policy for ``--episodes`` episodes (reset seeds 10000+): an episode succeeds
when it earns any reward (PointMaze's sparse reward is 1 within 0.45 of the goal, else 0).
Prints one row per HER ratio: the success rate per seed, their mean, and the wall time.
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
from streamrl.train import load_checkpoint  # noqa: E402

HER = load_pipeline(REPO / "pipelines" / "sac_her.py")


def success_rate(config, run_dir: Path, episodes: int, seed: int = 10_000) -> float:
    """The share of ``episodes`` episodes of the checkpoint's deterministic policy that earn
    any reward (played side by side for the env's step limit, reset seeds ``seed`` + k; a
    sub-env's steps after its first episode ends do not count)."""
    import gymnasium as gym

    probe = config.make_env()
    try:
        actor, _ = HER.make_models(config, probe)
    finally:
        probe.close()
    actor.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt")["policy"])
    horizon = gym.spec(config.env_name).max_episode_steps
    env = SerialEnv(episodes, config.make_env)
    try:
        env.set_seed(seed)
        with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
            rollout = env.rollout(horizon, actor, break_when_any_done=False)
    finally:
        env.close()
    rewards = rollout["next", "reward"].reshape(episodes, -1)
    done = rollout["next", "done"].reshape(episodes, -1).long()
    first_episode = (done.cumsum(-1) - done) == 0
    return float(((rewards * first_episode).sum(-1) > 0).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="PointMaze_UMaze-v3")
    p.add_argument("--frames", type=int, default=30_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--her-ratios", default="0.8,0")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--eval-interval", type=int, default=10_000)
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "streamrl-her")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    ratios = [float(r) for r in args.her_ratios.split(",")]
    print(f"{args.env}: success rate of the final deterministic policy after {args.frames} "
          f"frames ({args.episodes} episodes), SAC hidden {args.hidden}")
    print("| her_ratio | success per seed | mean | wall s per run |")
    print("|---|---|---|---|")
    for ratio in ratios:
        rates, walls = [], []
        for seed in seeds:
            config = HER.SACHERConfig(env_name=args.env, frames=args.frames, seed=seed,
                                      her_ratio=ratio, hidden=args.hidden,
                                      eval_interval=args.eval_interval, logger="none")
            run_dir = args.root / f"her{ratio:g}-seed{seed}"
            t0 = time.perf_counter()
            HER.train(config, run_dir=run_dir)
            walls.append(time.perf_counter() - t0)
            rates.append(success_rate(config, run_dir, args.episodes))
            print(f"  (her_ratio {ratio:g} seed {seed}: {rates[-1]:.2f}, {walls[-1]:.0f} s)",
                  file=sys.stderr, flush=True)
        print(f"| {ratio:g} | {' / '.join(f'{r:.2f}' for r in rates)} | "
              f"{statistics.mean(rates):.2f} | {statistics.mean(walls):.0f} |", flush=True)


if __name__ == "__main__":
    main()
