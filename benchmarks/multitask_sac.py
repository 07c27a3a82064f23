"""Multi-task SAC against single-task SAC at the same total frames, per task.

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/multitask_sac.py \\
        [--family pendulum] [--num-tasks 4] [--frames 20000] [--seeds 0,1,2] [--hidden 64] \\
        [--root DIR]

For each seed: ``pipelines/sac_multitask.py`` trains one agent on the ``--num-tasks`` tasks
(drawn with ``--task-seed``, one env member per task) for ``--frames`` frames, and the
single-task baseline trains one agent per task (``--task k``, every member playing it) for
``--frames / --num-tasks`` frames each: the same frames per task, the same total. Each final
policy is evaluated deterministically, two episodes per task. Prints the table of mean
return per task (mean over seeds) and the task parameters.
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
from streamrl.train import read_metrics  # noqa: E402

MT = load_pipeline(REPO / "pipelines" / "sac_multitask.py")


def final_task_returns(run_dir: Path, num_tasks: int) -> dict[int, float]:
    """``eval_return/task_<k>`` of the run's last evaluation row."""
    rows = [r for r in read_metrics(run_dir) if r.get("eval_return") is not None]
    last = rows[-1]
    return {k: float(last[f"eval_return/task_{k}"]) for k in range(num_tasks)
            if last.get(f"eval_return/task_{k}") is not None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="pendulum")
    p.add_argument("--num-tasks", type=int, default=4)
    p.add_argument("--task-seed", type=int, default=0)
    p.add_argument("--frames", type=int, default=20_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--root", type=Path,
                   default=Path(tempfile.gettempdir()) / "streamrl-multitask")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    k_tasks = args.num_tasks
    per_task = args.frames // k_tasks
    common = dict(family=args.family, num_tasks=k_tasks, task_seed=args.task_seed,
                  hidden=args.hidden, eval_episodes=2 * k_tasks, logger="none")
    table = MT.SACMultiTaskConfig(**common).task_table()
    multi: dict[int, list[float]] = {k: [] for k in range(k_tasks)}
    single: dict[int, list[float]] = {k: [] for k in range(k_tasks)}
    walls = {"multi": 0.0, "single": 0.0}
    for seed in seeds:
        run = args.root / f"multi-seed{seed}"
        t0 = time.perf_counter()
        MT.train(MT.SACMultiTaskConfig(**common, frames=args.frames, seed=seed,
                                       eval_interval=args.frames), run_dir=run)
        walls["multi"] += time.perf_counter() - t0
        for k, ret in final_task_returns(run, k_tasks).items():
            multi[k].append(ret)
        for k in range(k_tasks):
            run = args.root / f"task{k}-seed{seed}"
            t0 = time.perf_counter()
            MT.train(MT.SACMultiTaskConfig(**common, frames=per_task, seed=seed, task=k,
                                           eval_interval=per_task), run_dir=run)
            walls["single"] += time.perf_counter() - t0
            single[k].append(final_task_returns(run, k_tasks)[k])
        print(f"  (seed {seed}: multi {[round(v[-1], 1) for v in multi.values()]}, single "
              f"{[round(v[-1], 1) for v in single.values()]})", file=sys.stderr, flush=True)
    names = MT.SACMultiTaskConfig(**common).make_family().param_names
    print(f"{args.family}: final deterministic return per task (2 episodes, mean over seeds "
          f"{args.seeds}); multi-task SAC {args.frames} frames over {k_tasks} tasks, single-task "
          f"SAC {per_task} frames per task; hidden {args.hidden}")
    print(f"| task | {', '.join(names)} | multi-task | single-task |")
    print("|---|---|---|---|")
    for k in range(k_tasks):
        params = ", ".join(f"{v:.2f}" for v in table[k].tolist())
        print(f"| {k} | {params} | {statistics.mean(multi[k]):.1f} | "
              f"{statistics.mean(single[k]):.1f} |")
    mean_multi = statistics.mean(statistics.mean(v) for v in multi.values())
    mean_single = statistics.mean(statistics.mean(v) for v in single.values())
    print(f"| mean | | {mean_multi:.1f} | {mean_single:.1f} |")
    print(f"wall: multi-task {walls['multi'] / len(seeds):.0f} s per seed, single-task "
          f"{walls['single'] / len(seeds):.0f} s per seed (all tasks)", flush=True)


if __name__ == "__main__":
    main()
