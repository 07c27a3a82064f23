"""Offline RL on datasets recorded here (Pendulum-v1 or HalfCheetah-v5): the normalized
return of BC, TD3+BC, IQL and CQL on random, medium, medium-replay and expert data, and (on
Pendulum) offline-to-online IQL against SAC from scratch.

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/offline_training.py \\
        --expert EXPERT/checkpoint.pt --medium MEDIUM/checkpoint.pt \\
        [--env Pendulum-v1] [--updates 5000] [--seeds 0,1,2] [--algos bc,td3bc,iql,cql] \\
        [--episodes N] [--root DIR] [--o2o-frames 6000]

``EXPERT`` and ``MEDIUM`` are run directories of ``sac_pendulum`` or ``sac_mujoco`` (e.g.
``streamrl run sac_pendulum --hidden 64 --frames 10000`` for the expert, a shorter run for
the medium policy). The datasets are recorded once into ``--root`` with ``streamrl dataset
create`` (reused by later runs; ``--force`` records them again), ``--episodes`` episodes
each (the env's preset below by default), under the env's namespace (``pendulum/`` or
``halfcheetah/``):

- ``random-v0``: uniform random actions;
- ``medium-v0``: the medium checkpoint's policy, sampling its actions;
- ``medium-replay-v0``: the medium run's replay buffer (all it collected);
- ``expert-v0``: the expert checkpoint's policy, sampling its actions.

The normalized score is ``100 * (R - R_random) / (R_expert - R_random)`` with ``R_random``
and ``R_expert`` the mean episode returns of the random and expert datasets. Each algorithm
trains ``--updates`` updates of batch 256 per dataset and seed, and its final deterministic
policy is evaluated on 10 episodes (reset seeds 10000+). Hyper-parameters are the
pipelines' defaults except the presets per env:

- Pendulum-v1: 50 episodes per dataset, networks of two 64-unit layers, IQL temperature 0.3
  (with Pendulum's reward scale TorchRL's MuJoCo value 3 puts almost all the weight on a
  few samples; measured with 3: 48.8 +- 15.6 on expert, 31.8 +- 5.6 on medium), CQL
  ``min_q_weight`` 10 (with TorchRL's default 1 CQL scores below BC on medium-replay, 2,200
  transitions: final returns -1454 / -1473 / -1474 on seeds 0-2 against BC's -1290 / -1263
  / -1216; with 10: -919 / -1089 / -880, and -1089 / -930 on seeds 3-4 against BC's -1197
  / -1257; with 5, the CQL paper's MuJoCo value, -1142 / -1077 / -1165 / -1259 / -1296
  loses on seeds 3-4). The price is on random data, where the heavier penalty keeps the
  policy near the random actions: -696 / -718 with 1 on seeds 0-1, -1340 / -1037 with 10
  (BC: -1117 on seed 0); seed 0 on medium and expert improves, -1233 -> -725 and -1045 ->
  -748;
  TD3+BC ``alpha`` 100 (with the paper's 2.5 it ties BC on medium-replay: -4.6 +- 6.0
  normalized against BC's -5.9 +- 3.6, seeds 0-2; with 100: 13.4 +- 2.0, and 14.4 against
  -3.2 on seeds 3-4; it also wins on random, 26.0 against 7.0, and medium, 35.2 against
  24.9, but loses the expert data, 4.9 +- 27.9 against 101.3: the heavier Q term leaves the
  expert's narrow actions; 250 wins medium-replay by more, 30.2, and loses medium too);
- HalfCheetah-v5: 100 episodes (100k steps) per dataset, two 256-unit layers, IQL
  temperature 3 (TorchRL's MuJoCo value), CQL ``min_q_weight`` 1 (TorchRL's default),
  TD3+BC ``alpha`` 2.5 (the paper's).

``--hidden``, ``--iql-temperature``, ``--cql-min-q-weight`` and ``--td3bc-alpha`` override them;
``--cql-bc-steps N`` gives CQL a behaviour-cloning warm-up of N updates (``cql_offline
--bc-steps``).

Each finished run's return is appended to ``ROOT/results.jsonl`` with what it depended on
(env, algorithm, dataset and its size and mean return, seed, updates, hidden units, the
algorithm's options) and the commit it ran at; a later run with the same settings reuses it,
so a long table (HalfCheetah's CQL: ~100 s per 1,000 updates) can be built over several
sittings, or in parts in two processes at once. ``--force`` records the datasets again and
discards the results.

With ``--o2o-frames F`` (Pendulum only): ``iql_offline_to_online`` (``--updates``
pretraining on the medium dataset, then F online frames, half of each batch from the
dataset) against ``sac_pendulum`` from scratch for F frames, same seeds: the online frames
at which each first evaluates at 90 or more normalized (evaluations every 500 frames).
``--o2o-option FIELD=VALUE`` (repeatable) sets a field of its ``IQLOnlineConfig``, e.g.
``--o2o-option online_loss=sac --o2o-option online_lr=1e-3``; SAC from scratch runs at
the same ``updates_per_frame``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamrl.cli import load_pipeline  # noqa: E402
from streamrl.train import field_overrides  # noqa: E402

DATASETS = ("random", "medium", "medium-replay", "expert")
ALGOS = {"bc": ("bc_offline", "BCConfig"), "td3bc": ("td3bc_offline", "TD3BCConfig"),
         "iql": ("iql_offline", "IQLConfig"), "cql": ("cql_offline", "CQLConfig")}
TARGET = 90.0  # normalized score that counts as reaching the expert
# per env: dataset namespace, episodes per dataset, hidden units, IQL temperature, CQL
# penalty weight
PRESETS = {
    "Pendulum-v1": {"namespace": "pendulum", "episodes": 50, "hidden": 64,
                    "iql_temperature": 0.3, "cql_min_q_weight": 10.0, "td3bc_alpha": 100.0},
    "HalfCheetah-v5": {"namespace": "halfcheetah", "episodes": 100, "hidden": 256,
                       "iql_temperature": 3.0, "cql_min_q_weight": 1.0, "td3bc_alpha": 2.5},
}


def _streamrl(*args: str) -> str:
    """Run ``streamrl ARGS`` (this interpreter) and return its standard output."""
    cmd = [sys.executable, "-c", "import sys; from streamrl.cli import main; sys.exit(main())",
           *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"streamrl {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def record(name: str, args: argparse.Namespace) -> dict:
    """Record ``<namespace>/<name>-v0`` unless it exists (or ``--force``); its info."""
    dataset_id = f"{args.namespace}/{name}-v0"
    path = Path(os.environ["MINARI_DATASETS_PATH"]) / dataset_id
    if args.force or not path.exists():
        if name == "medium-replay":
            how = ["--from-replay", str(args.medium)]
        else:
            policy = {"random": "random", "medium": str(args.medium),
                      "expert": str(args.expert)}[name]
            how = [args.env, "--policy", policy, "--episodes", str(args.episodes),
                   "--seed", "0", "--exploration", "random"]
        t0 = time.perf_counter()
        _streamrl("dataset", "create", *how, "--id", dataset_id,
                  *(["--force"] if args.force else []))
        print(f"  recorded {dataset_id} in {time.perf_counter() - t0:.1f} s", flush=True)
    return json.loads(_streamrl("dataset", "info", f"minari:{dataset_id}", "--json"))


def _mean_return(info: dict) -> float:
    for key in ("return_mean", "mean_return"):
        if key in info:
            return float(info[key])
    returns = info.get("returns") or info.get("return") or {}
    return float(returns["mean"])


def _steps(info: dict) -> int | str:
    return info.get("total_steps", info.get("steps", "?"))


def algo_options(args: argparse.Namespace) -> dict[str, dict]:
    """The config fields each algorithm gets beyond its pipeline's defaults (the presets)."""
    return {"iql": {"temperature": args.iql_temperature},
            "cql": {"min_q_weight": args.cql_min_q_weight,
                    **({"bc_steps": args.cql_bc_steps} if args.cql_bc_steps else {})},
            "td3bc": {"alpha": args.td3bc_alpha}}


def train_offline(algo: str, dataset: str, seed: int, args: argparse.Namespace,
                  options: dict) -> float:
    """The final evaluation return of ``algo`` trained on ``dataset``."""
    module, config_name = ALGOS[algo]
    pipeline = load_pipeline(REPO / "pipelines" / f"{module}.py")
    updates = args.updates
    config = getattr(pipeline, config_name)(
        dataset=f"minari:{args.namespace}/{dataset}-v0", updates=updates, hidden=args.hidden,
        eval_interval=updates, eval_episodes=10, seed=seed, logger="none",
        **options.get(algo, {}))
    return pipeline.train(config).eval_return


RESULT_KEYS = ("env", "algo", "dataset", "dataset_steps", "dataset_return", "seed", "updates",
               "hidden", "options")


class Results:
    """The finished runs in ``path`` (JSON lines), matched on :data:`RESULT_KEYS`."""

    def __init__(self, path: Path):
        self.path = path
        self.reused = 0
        self._runs: dict[str, dict] = {}
        if path.exists():
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    run = json.loads(line)
                    self._runs[self._key(run)] = run
                except (ValueError, KeyError) as err:
                    raise SystemExit(f"{path}:{n}: expected a JSON object with the keys "
                                     f"{RESULT_KEYS} and eval_return, found {line[:80]!r} "
                                     f"({err}); delete the line or the file") from err

    @staticmethod
    def _key(run: dict) -> str:
        return json.dumps([run[k] for k in RESULT_KEYS], sort_keys=True)

    def get(self, run: dict) -> float | None:
        found = self._runs.get(self._key(run))
        if found is None:
            return None
        self.reused += 1
        return float(found["eval_return"])

    def add(self, run: dict, eval_return: float, seconds: float) -> None:
        row = {**run, "eval_return": eval_return, "seconds": round(seconds, 1),
               "commit": _commit()}
        self._runs[self._key(run)] = row
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def _commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def first_reaching(evaluations: list[tuple[int, float]], target: float) -> int | None:
    return next((f for f, r in evaluations if r >= target), None)


def offline_to_online(args: argparse.Namespace, seed: int, target: float) -> tuple:
    """Online frames to reach ``target`` (a return): IQL offline-to-online, SAC from scratch."""
    o2o = load_pipeline(REPO / "pipelines" / "iql_offline_to_online.py")
    config = o2o.IQLOnlineConfig(
        dataset="minari:pendulum/medium-v0", updates=args.updates, hidden=args.hidden,
        eval_interval=args.updates, eval_episodes=10, seed=seed, logger="none",
        online_frames=args.o2o_frames, frames_per_batch=50, learning_starts=100,
        online_eval_interval=500, rollout_placement="inline",
        temperature=args.iql_temperature, **args.o2o_options)
    mixed = o2o.train(config)
    sac = load_pipeline(REPO / "pipelines" / "sac_pendulum.py")
    # the same updates per collected frame as the fine-tuning's
    scratch = sac.train(sac.SACConfig(frames=args.o2o_frames, hidden=args.hidden,
                                      eval_interval=500, eval_episodes=10, seed=seed,
                                      updates_per_frame=config.updates_per_frame,
                                      logger="none", rollout_placement="inline"))
    return (first_reaching(mixed.evaluations, target), mixed.evaluations[0][1],
            first_reaching(scratch.evaluations, target))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--expert", type=Path, required=True,
                   help="sac_pendulum / sac_mujoco checkpoint.pt")
    p.add_argument("--medium", type=Path, required=True,
                   help="sac_pendulum / sac_mujoco checkpoint.pt")
    p.add_argument("--env", default="Pendulum-v1", choices=sorted(PRESETS))
    p.add_argument("--updates", type=int, default=5000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--episodes", type=int, help="episodes per dataset (the env's preset)")
    p.add_argument("--hidden", type=int, help="units per hidden layer (the env's preset)")
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "streamrl-offline")
    p.add_argument("--force", action="store_true", help="record the datasets again")
    p.add_argument("--o2o-frames", type=int, default=0)
    p.add_argument("--o2o-option", action="append", default=[], metavar="FIELD=VALUE",
                   help="a field of iql_offline_to_online's config (repeatable)")
    p.add_argument("--iql-temperature", type=float,
                   help="IQL's advantage temperature (the env's preset: 0.3 on Pendulum, "
                        "whose rewards reach -16 per step, where TorchRL's MuJoCo value 3 "
                        "saturates the weights)")
    p.add_argument("--cql-min-q-weight", type=float,
                   help="CQL's penalty weight min_q_weight (the env's preset: 10 on Pendulum, "
                        "where TorchRL's default 1 scores below BC on medium-replay)")
    p.add_argument("--cql-bc-steps", type=int, default=0,
                   help="CQL's behaviour-cloning warm-up: the first N updates train the actor "
                        "on loss_actor_bc (default 0: none, TorchRL's CQLLoss's behaviour)")
    p.add_argument("--td3bc-alpha", type=float,
                   help="TD3+BC's alpha, the Q term's weight against BC (the env's preset: "
                        "100 on Pendulum, where the paper's 2.5 ties BC on medium-replay; "
                        "2.5 on HalfCheetah)")
    args = p.parse_args()
    preset = PRESETS[args.env]
    args.namespace = preset["namespace"]
    for key in ("episodes", "hidden", "iql_temperature", "cql_min_q_weight", "td3bc_alpha"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.o2o_frames and args.env != "Pendulum-v1":
        p.error(f"--o2o-frames: the offline-to-online comparison runs on Pendulum-v1 only, "
                f"found --env {args.env}")
    o2o = load_pipeline(REPO / "pipelines" / "iql_offline_to_online.py")
    try:
        args.o2o_options = field_overrides(o2o.IQLOnlineConfig, args.o2o_option)
    except ValueError as err:
        p.error(f"--o2o-option: {err}")
    os.environ["MINARI_DATASETS_PATH"] = str(args.root / "minari")
    os.environ["STREAMRL_DATASETS_ROOT"] = str(args.root / "cache")
    seeds = [int(s) for s in args.seeds.split(",")]
    algos = args.algos.split(",")
    datasets = args.datasets.split(",")
    options = algo_options(args)

    print(f"{args.env} datasets in {args.root} ({args.episodes} episodes each):")
    if args.force:
        (args.root / "results.jsonl").unlink(missing_ok=True)
    infos = {name: record(name, args) for name in DATASETS}
    args.root.mkdir(parents=True, exist_ok=True)
    results = Results(args.root / "results.jsonl")
    low, high = _mean_return(infos["random"]), _mean_return(infos["expert"])
    for name, info in infos.items():
        print(f"  {name:<14} {_steps(info)} steps, mean "
              f"return {_mean_return(info):8.1f}")

    def normalized(r: float) -> float:
        return 100.0 * (r - low) / (high - low)

    print(f"\nnormalized return after {args.updates} updates (mean +- std over seeds "
          f"{args.seeds}; 0 = random {low:.1f}, 100 = expert {high:.1f}; hidden "
          f"{args.hidden}, IQL temperature {args.iql_temperature:g}, TD3+BC alpha {args.td3bc_alpha:g}, "
          f"CQL min_q_weight {args.cql_min_q_weight:g}"
          f"{f', CQL bc_steps {args.cql_bc_steps}' if args.cql_bc_steps else ''}):")
    print("| algorithm | " + " | ".join(datasets) + " |")
    print("|---|" + "---|" * len(datasets))
    for algo in algos:
        cells = []
        for name in datasets:
            t0 = time.perf_counter()
            scores = []
            for s in seeds:
                run = {"env": args.env, "algo": algo, "dataset": name,
                       "dataset_steps": _steps(infos[name]),
                       "dataset_return": round(_mean_return(infos[name]), 3), "seed": s,
                       "updates": args.updates, "hidden": args.hidden,
                       "options": options.get(algo, {})}
                r = results.get(run)
                if r is None:
                    started = time.perf_counter()
                    r = train_offline(algo, name, s, args, options)
                    results.add(run, r, time.perf_counter() - started)
                scores.append(normalized(r))
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            cells.append(f"{statistics.mean(scores):.1f} +- {sd:.1f}")
            print(f"  ({algo} {name}: {[round(x, 1) for x in scores]}, "
                  f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        print(f"| {algo} | " + " | ".join(cells) + " |", flush=True)
    if results.reused:
        print(f"({results.reused} of the runs above reused from {results.path})")

    if args.o2o_frames:
        target = low + TARGET / 100.0 * (high - low)
        print(f"\nonline frames to a return of {target:.1f} ({TARGET:g} normalized), "
              f"{args.o2o_frames} frames at most"
              f"{f', IQLOnlineConfig fields {args.o2o_options}' if args.o2o_options else ''}:")
        print("| seed | IQL offline-to-online (pretrained eval) | SAC from scratch |")
        print("|---|---|---|")
        for s in seeds:
            mixed, pre, scratch = offline_to_online(args, s, target)
            print(f"| {s} | {mixed if mixed is not None else 'not reached'} "
                  f"({normalized(pre):.1f} normalized at its first online eval) | "
                  f"{scratch if scratch is not None else 'not reached'} |", flush=True)


if __name__ == "__main__":
    main()
