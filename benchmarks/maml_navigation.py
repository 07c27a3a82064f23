"""MAML's adaptation on held-out 2D navigation tasks, beside the pretrained baseline.

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/maml_navigation.py \\
        [--iterations 200] [--seeds 0,1,2] [--eval-tasks 40] [--eval-steps 3] [--root DIR]

For each seed, ``pipelines/maml_navigation.py`` meta-trains MAML (one inner policy-gradient
step, second order) and the paper's "pretrained" baseline (``--inner-steps 0``: the same
policy-gradient loss on the same tasks, no inner step) for ``--iterations`` meta-iterations
of 20 tasks x 20 episodes x 100 steps. Each final policy is then evaluated on the same
``--eval-tasks`` held-out goals: mean episode return with its own parameters (step 0) and
after each of ``--eval-steps`` inner steps (learning rate 0.1, 20 fresh episodes per task per
step). Prints the table (mean over seeds) and each seed's row.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamrl.cli import load_pipeline  # noqa: E402

MAML = load_pipeline(REPO / "pipelines" / "maml_navigation.py")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--eval-tasks", type=int, default=40)
    p.add_argument("--eval-steps", type=int, default=3)
    p.add_argument("--meta-batch-size", type=int, default=20)
    p.add_argument("--episodes-per-task", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "streamrl-maml")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    common = dict(iterations=args.iterations, eval_interval=args.iterations,
                  eval_tasks=args.eval_tasks, eval_steps=args.eval_steps,
                  meta_batch_size=args.meta_batch_size,
                  episodes_per_task=args.episodes_per_task, max_steps=args.max_steps,
                  logger="none")
    methods = {"MAML (1 inner step)": 1, "pretrained (no inner step)": 0}
    results: dict[str, list[list[float]]] = {name: [] for name in methods}
    walls: dict[str, float] = {name: 0.0 for name in methods}
    for seed in seeds:
        for name, inner in methods.items():
            t0 = time.perf_counter()
            result = MAML.train(MAML.MAMLConfig(**common, inner_steps=inner, seed=seed),
                                run_dir=args.root / f"inner{inner}-seed{seed}")
            walls[name] += time.perf_counter() - t0
            results[name].append(result.eval_returns)
            print(f"  (seed {seed}, {name}: {[round(r, 1) for r in result.eval_returns]})",
                  file=sys.stderr, flush=True)
    steps = range(args.eval_steps + 1)
    print(f"2D navigation: mean episode return on {args.eval_tasks} held-out goals after k "
          f"inner steps (mean over seeds {args.seeds}), {args.iterations} meta-iterations")
    print("| method | " + " | ".join(f"{k} steps" for k in steps) + " |")
    print("|---|" + "---|" * len(steps))
    for name, runs in results.items():
        means = [statistics.mean(run[k] for run in runs) for k in steps]
        print(f"| {name} | " + " | ".join(f"{m:.1f}" for m in means) + " |")
    for name, runs in results.items():
        for seed, run in zip(seeds, runs):
            print(f"  {name}, seed {seed}: " + " -> ".join(f"{r:.1f}" for r in run))
    print("wall per seed: " + ", ".join(f"{name} {walls[name] / len(seeds):.0f} s"
                                        for name in methods), flush=True)


if __name__ == "__main__":
    main()
