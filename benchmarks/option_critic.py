"""Option-critic against a flat actor-critic in Four Rooms, with the goal moved midway.

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/option_critic.py \\
        [--frames 400000] [--seeds 0,1,2] [--options 4] [--window 20000] [--root DIR] \\
        [--set FIELD=VALUE ...] [--no-flat]

For each seed, ``pipelines/optioncritic_fourrooms.py`` trains option-critic (``--options``
options) and the flat baseline (``--num-options 1``: the same agent with one option) for
``--frames`` frames; at half the budget the goal moves from the east hallway to a cell of the
lower-right room (the option-critic paper's transfer setting). Printed per method, mean over
seeds: the frames until an evaluation first needs at most 40 steps to the goal (first goal),
the mean steps to the goal of the training episodes that ended in the ``--window`` frames
after the move (how fast the agent recovers), the last evaluation's mean steps, and the
mean termination probability of the options the agent held over the last tenth of training
(an option then lasts about 1 / that many steps; 1 for the flat agent, which re-decides
every step). ``--set FIELD=VALUE`` (repeatable) changes a field of option-critic's
``OptionCriticConfig`` (e.g. ``termination_reg=0.1``, a larger deliberation cost);
``--no-flat`` leaves the flat baseline out.
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
from streamrl.train import field_overrides, read_metrics  # noqa: E402

OC = load_pipeline(REPO / "pipelines" / "optioncritic_fourrooms.py")


def summarise(run_dir: Path, moved_at: int, window: int
              ) -> tuple[float | None, float, float, float]:
    """(frames to the first evaluation <= 40 steps, mean training steps to the goal in the
    window after the move, the last evaluation, the mean termination probability over the
    last tenth of the rows)."""
    rows = read_metrics(run_dir)
    evals = [(r["frames"], r["eval_steps"]) for r in rows if r.get("eval_steps") is not None]
    first = next((f for f, s in evals if s <= 40 and f <= moved_at), None)
    after = [r for r in rows if moved_at < r["frames"] <= moved_at + window
             and r.get("train_steps") is not None]
    episodes = sum(r["train_episodes"] for r in after)
    recovery = sum(r["train_steps"] * r["train_episodes"] for r in after) / max(episodes, 1)
    probs = [r["termination_prob"] for r in rows if r.get("termination_prob") is not None]
    tail = probs[-max(1, len(probs) // 10):]
    return first, recovery, evals[-1][1], statistics.mean(tail)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=400_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--options", type=int, default=4)
    p.add_argument("--window", type=int, default=20_000)
    p.add_argument("--eval-interval", type=int, default=20_000)
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "streamrl-oc")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--no-flat", action="store_true")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        changed = field_overrides(OC.OptionCriticConfig, args.set)
    except ValueError as err:
        p.error(f"--set: {err}")
    label = "".join(f", {k}={v}" for k, v in changed.items())
    methods = {f"option-critic ({args.options} options{label})": args.options}
    if not args.no_flat:
        methods["flat actor-critic (1 option)"] = 1
    results: dict[str, list[tuple[float | None, float, float, float]]] = {m: [] for m in methods}
    walls = {m: 0.0 for m in methods}
    for seed in seeds:
        for name, options in methods.items():
            config = OC.OptionCriticConfig(frames=args.frames, goal_move_at=args.frames // 2,
                                           num_options=options, seed=seed,
                                           eval_interval=args.eval_interval, logger="none",
                                           **(changed if options > 1 else {}))
            tag = "".join(f"-{k}{v}" for k, v in changed.items()) if options > 1 else ""
            run = args.root / f"options{options}{tag}-seed{seed}"
            t0 = time.perf_counter()
            result = OC.train(config, run_dir=run)
            walls[name] += time.perf_counter() - t0
            results[name].append(summarise(run, result.goal_moved_at, args.window))
            print(f"  (seed {seed}, {name}: {results[name][-1]})", file=sys.stderr, flush=True)
    print(f"Four Rooms, {args.frames} frames, goal moved at {args.frames // 2} "
          f"(mean over seeds {args.seeds})")
    print("| method | frames to <= 40 steps (first goal) | steps to the goal, first "
          f"{args.window} frames after the move | last evaluation (steps) | termination "
          "probability, last tenth |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        reached = [r[0] for r in runs if r[0] is not None]
        first = (f"{statistics.mean(reached):,.0f}" + ("" if len(reached) == len(runs)
                                                      else f" ({len(reached)} of {len(runs)})")
                 if reached else "never")
        print(f"| {name} | {first} | {statistics.mean(r[1] for r in runs):.1f} | "
              f"{statistics.mean(r[2] for r in runs):.1f} | "
              f"{statistics.mean(r[3] for r in runs):.2f} |")
    for name, runs in results.items():
        for seed, run in zip(seeds, runs):
            first = "never" if run[0] is None else f"{run[0]:,}"
            print(f"  {name}, seed {seed}: first goal {first}, after the move {run[1]:.1f}, "
                  f"last {run[2]:.1f}, termination {run[3]:.2f}")
    print("wall per seed: " + ", ".join(f"{n} {walls[n] / len(seeds):.0f} s" for n in methods),
          flush=True)


if __name__ == "__main__":
    main()
