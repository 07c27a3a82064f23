"""RL^2's adaptation on held-out navigation tasks: the return of a trial's first episode
(before adaptation) against its last (after), for the trained agent and for the untrained
initial policy of the same seed, per seed and in the mean.

    $ python benchmarks/rl2_navigation.py --frames 2457600 --seeds 0,1,2

Each seed trains ``pipelines/rl2_navigation.py`` with its defaults (a run directory under
``--out``, default a temporary one) and reads the final evaluation from its metrics: one
trial of ``episodes_per_trial`` episodes on each of the ``eval_episodes`` held-out tasks
(drawn with ``eval_seed``, never trained on), deterministic actions. The untrained
reference is the initial networks of the seed (built as the pipeline builds them) on the
same tasks. Adaptation shows as last > first for the trained agent and last ~ first for
the untrained one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's streamrl, run from anywhere

from streamrl.cli import load_pipeline  # noqa: E402

RL2 = load_pipeline(ROOT / "pipelines" / "rl2_navigation.py")


def untrained(config) -> dict[str, float]:
    """The seed's initial policy on the held-out trials (the pipeline's seeding)."""
    env = config.make_eval_env(config.eval_episodes)
    try:
        torch.manual_seed(config.seed)
        actor, _ = RL2.make_models(config, env)
        return RL2.evaluate_trials(config, env, actor)
    finally:
        env.close()


def trained(config, run_dir: Path) -> tuple[dict[str, float], float]:
    """Train; the final evaluation's row of ``metrics.jsonl`` and the wall time."""
    t0 = time.perf_counter()
    RL2.train(config, run_dir=run_dir)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if r.get("eval_first_return") is not None][-1]
    return {k: final[k] for k in ("eval_return", "eval_first_return", "eval_last_return")}, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=2_457_600)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=None, help="where the run dirs go")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out = args.out or Path(tempfile.mkdtemp(prefix="rl2_navigation-"))
    rows = []
    print(f"RL^2 on PointNavigation, {args.frames:,} frames per seed; held-out trials, "
          "mean return of the first episode -> the last")
    for seed in seeds:
        config = RL2.RL2Config(frames=args.frames, seed=seed, logger="none")
        before = untrained(config)
        after, wall = trained(config, out / f"seed{seed}")
        rows.append((before, after))
        print(f"seed {seed}: untrained {before['eval_first_return']:.2f} -> "
              f"{before['eval_last_return']:.2f}; trained {after['eval_first_return']:.2f} -> "
              f"{after['eval_last_return']:.2f} ({wall:.0f} s)", flush=True)

    def mean(i: int, key: str) -> float:
        return sum(r[i][key] for r in rows) / len(rows)

    print(f"mean over {len(rows)} seeds: untrained {mean(0, 'eval_first_return'):.2f} -> "
          f"{mean(0, 'eval_last_return'):.2f}; trained {mean(1, 'eval_first_return'):.2f} -> "
          f"{mean(1, 'eval_last_return'):.2f}")
    print(f"run dirs: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
