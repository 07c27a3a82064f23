"""QMIX against VDN and independent DQN on MPE simple_spread (3 agents, 3 landmarks).

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/qmix_spread.py \\
        [--frames 100000] [--seeds 0,1,2] [--mixers qmix,vdn,none] [--root DIR] \\
        [--set FIELD=VALUE ...]

For each seed, ``pipelines/qmix_mpe.py`` trains each mixer (``qmix``: QMIX over the global
state; ``vdn``: the sum of the agents' values; ``none``: independent DQN, each agent on its
own reward) for ``--frames`` team frames with the pipeline's defaults, in lockstep (each
batch collected after the updates the frames before it grant: a seed gives one result).
Printed per mixer: the final evaluation's team return (the team reward, the mean of the
agents' rewards, summed over the 25 steps of an episode; mean over the pipeline's 10
evaluation episodes) for each seed, their mean, and the best evaluation of the run (mean
over seeds), beside a uniformly random policy's return on the same evaluation episodes.
``--set FIELD=VALUE`` (repeatable) changes a field of ``QMixConfig`` for every mixer
(e.g. ``gamma=0.99``).

Measured (2-core CPU, shared; 100,000 team frames, defaults, seeds 0,1,2): final evaluation
QMIX -20.5 / -29.8 / -18.2 (mean -22.9), VDN -15.4 / -16.0 / -17.1 (mean -16.1), independent
DQN -16.4 / -20.2 / -19.5 (mean -18.7); a random policy -26.7 on the same episodes. About
two minutes per run (QMIX 152 s, VDN 122 s, independent DQN 120 s).
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
from streamrl.ops import play_episodes  # noqa: E402
from streamrl.train import field_overrides  # noqa: E402

QMIX = load_pipeline(REPO / "pipelines" / "qmix_mpe.py")


def random_return(config: object) -> float:
    """A uniformly random policy's mean team return on the evaluation episodes."""
    env = QMIX.make_eval_env(config)
    try:
        stats = play_episodes(env, lambda td: env.rand_action(td), seed=config.eval_seed)
    finally:
        env.close()
    return float(stats.returns.mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--mixers", default=",".join(QMIX.MIXERS))
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "streamrl-qmix")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    mixers = args.mixers.split(",")
    if unknown := [m for m in mixers if m not in QMIX.MIXERS]:
        p.error(f"--mixers: unknown {unknown}, expected some of {QMIX.MIXERS}")
    try:
        changed = field_overrides(QMIX.QMixConfig, args.set)
    except ValueError as err:
        p.error(f"--set: {err}")
    label = "".join(f", {k}={v}" for k, v in changed.items())
    finals: dict[str, list[float]] = {m: [] for m in mixers}
    best: dict[str, list[float]] = {m: [] for m in mixers}
    walls = {m: 0.0 for m in mixers}
    for seed in seeds:
        for mixer in mixers:
            config = QMIX.QMixConfig(frames=args.frames, mixer=mixer, seed=seed, lockstep=True,
                                     logger="none", **changed)
            tag = "".join(f"-{k}{v}" for k, v in changed.items())
            t0 = time.perf_counter()
            result = QMIX.train(config, run_dir=args.root / f"{mixer}{tag}-seed{seed}")
            walls[mixer] += time.perf_counter() - t0
            finals[mixer].append(result.evaluations[-1][1])
            best[mixer].append(max(r for _, r in result.evaluations))
            print(f"  (seed {seed}, {mixer}: final {finals[mixer][-1]:.1f}, evaluations "
                  f"{[(f, round(r, 1)) for f, r in result.evaluations]})", file=sys.stderr,
                  flush=True)
    baseline = random_return(QMIX.QMixConfig(**changed))
    print(f"MPE simple_spread (3 agents), {args.frames:,} team frames{label}: final evaluation "
          f"team return (mean over agents, summed over 25 steps; 10 episodes), seeds "
          f"{args.seeds}")
    print("| mixer | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | best eval "
          "(mean) | wall per seed |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for mixer in mixers:
        per_seed = " | ".join(f"{r:.1f}" for r in finals[mixer])
        print(f"| {mixer} | {per_seed} | {statistics.mean(finals[mixer]):.1f} | "
              f"{statistics.mean(best[mixer]):.1f} | {walls[mixer] / len(seeds):.0f} s |")
    print(f"uniformly random policy on the same episodes: {baseline:.1f}", flush=True)


if __name__ == "__main__":
    main()
