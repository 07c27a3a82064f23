"""Command line: ``streamrl run PIPELINE``, ``streamrl graph PIPELINE``.

A pipeline is a Python file with a ``main(argv) -> int`` function (and, to be drawn by
``streamrl graph``, a ``build_graph(argv) -> Graph`` function). It is named by its path
(``pipelines/ppo_cartpole.py``) or by its name (``ppo_cartpole``), looked up in
``./pipelines/`` and then in the ``pipelines/`` directory of the streamrl source tree.
``streamrl run demo`` runs the built-in demo.

``streamrl dataset create`` records a Minari dataset (episodes of a random policy or of a
pipeline checkpoint's actor, or a checkpoint's replay buffer); ``streamrl dataset info``
summarises one (``minari:ID``, ``d4rl:PATH`` or a Minari dataset directory).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_BUILTIN = ("demo",)


def pipeline_dirs() -> list[Path]:
    """Where pipeline names are looked up, in order."""
    dirs = [Path.cwd() / "pipelines", Path(__file__).resolve().parent.parent / "pipelines"]
    extra = os.environ.get("STREAMRL_PIPELINES")
    if extra:
        dirs = [Path(p) for p in extra.split(os.pathsep) if p] + dirs
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def available_pipelines() -> list[str]:
    """The names ``streamrl run`` accepts (built-ins and the pipeline files it can find)."""
    names = set(_BUILTIN)
    for d in pipeline_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.py") if not p.name.startswith("_"))
    return sorted(names)


def resolve_pipeline(spec: str) -> Path | None:
    """The file a pipeline path or name refers to, or ``None`` when there is none."""
    path = Path(spec)
    if spec.endswith(".py") or os.sep in spec or (os.altsep and os.altsep in spec):
        return path if path.is_file() else None
    if not spec.isidentifier() or spec.startswith("_"):
        return None
    for d in pipeline_dirs():
        candidate = d / f"{spec}.py"
        if candidate.is_file():
            return candidate
    return None


def load_pipeline(path: str | Path) -> ModuleType:
    """Import a pipeline file as a module (its name: ``streamrl_pipeline_<stem>``)."""
    path = Path(path)
    name = f"streamrl_pipeline_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import a pipeline from {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    # registered before running it: dataclasses and pickling look the module up by name
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    # importable nowhere else: Ray actors receive it by value
    from streamrl._utils.ray_init import mark_local_module

    mark_local_module(module)
    return module


def _pipeline(parser: argparse.ArgumentParser, spec: str, needs: str) -> ModuleType:
    path = resolve_pipeline(spec)
    if path is None:
        parser.error(
            f"unknown pipeline {spec!r}: expected a pipeline file (path ending in .py) or one "
            f"of {', '.join(available_pipelines())}"
        )
    module = load_pipeline(path)
    if not callable(getattr(module, needs, None)):
        parser.error(f"pipeline file {str(path)!r} defines no {needs}(argv) function")
    return module


def _add_create_parser(commands: Any) -> argparse.ArgumentParser:
    create = commands.add_parser(
        "create", help="record a Minari dataset",
        description="Play episodes of a policy in a gym env and write them as a Minari "
                    "dataset (under $MINARI_DATASETS_PATH or ~/.minari/datasets), or write "
                    "the replay buffer of an off-policy checkpoint (--from-replay).")
    create.add_argument("env", nargs="?", help="gymnasium id (with --from-replay: the "
                        "checkpoint's env by default)")
    create.add_argument("--policy", help="'random' (uniform actions) or a checkpoint.pt of "
                        "sac_pendulum, sac_mujoco or td3_mujoco")
    create.add_argument("--episodes", type=int, default=10, help="episodes to play (10)")
    create.add_argument("--seed", type=int, default=0,
                        help="episode k resets with seed SEED + k (0)")
    create.add_argument("--id", required=True, dest="dataset_id",
                        help="Minari id, (namespace/)name-vN")
    create.add_argument("--exploration", choices=("deterministic", "random"),
                        default="deterministic",
                        help="the policy's mode (deterministic, default) or samples from its "
                             "distribution (random; a deterministic actor such as TD3's is "
                             "unchanged: use --noise)")
    create.add_argument("--noise", type=float, default=0.0,
                        help="Gaussian action noise, in half-ranges of the action bounds (0)")
    create.add_argument("--from-replay", metavar="CHECKPOINT",
                        help="write the replay buffer of an off-policy checkpoint instead")
    create.add_argument("--algorithm", help="algorithm name stored in the metadata")
    create.add_argument("--description", help="description stored in the metadata (default: "
                        "how the data was made)")
    create.add_argument("--ref-min-score", type=float, help="reference score of a random policy")
    create.add_argument("--ref-max-score", type=float, help="reference score of an expert")
    create.add_argument("--force", action="store_true",
                        help="replace an existing dataset of that id")
    return create


def _load_policy_module(name: str) -> ModuleType:
    path = resolve_pipeline(name)
    if path is None:
        raise ValueError(f"pipeline {name!r} (named by the checkpoint): expected a pipeline "
                         f"file, found none in {', '.join(map(str, pipeline_dirs()))}")
    return load_pipeline(path)


def _dataset_create(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from streamrl.train import checkpoint_policy as cp
    from streamrl.train.datasets import dataset_from_replay, record_dataset

    common = dict(algorithm_name=args.algorithm, description=args.description,
                  ref_min_score=args.ref_min_score, ref_max_score=args.ref_max_score,
                  force=args.force)
    try:
        if args.from_replay is not None:
            if args.policy is not None:
                parser.error("--from-replay writes a checkpoint's replay buffer: expected no "
                             "--policy with it")
            state = cp.load_checkpoint_state(args.from_replay, mmap=True)
            if "buffer" not in state:
                raise ValueError(f"checkpoint {args.from_replay!r} ({state['pipeline']}): "
                                 f"expected a replay buffer ('buffer', an off-policy "
                                 f"pipeline's checkpoint), found none")
            env_id = cp.checkpoint_env_name(state, args.from_replay)
            if args.env is not None and args.env != env_id:
                raise ValueError(f"env {args.env!r}: the checkpoint's run was in {env_id!r}")
            common["algorithm_name"] = args.algorithm or state["pipeline"]
            rec = dataset_from_replay(state["buffer"], env_id, args.dataset_id,
                                      source=f"{state['pipeline']} checkpoint "
                                             f"{args.from_replay}", **common)
        else:
            if args.env is None or args.policy is None:
                parser.error("expected ENV and --policy random|CHECKPOINT (or --from-replay "
                             "CHECKPOINT)")
            policy: Any = "random"
            if args.policy != "random":
                from streamrl.envs import GymEnv

                state = cp.load_checkpoint_state(args.policy)
                env_id = cp.checkpoint_env_name(state, args.policy)
                if env_id != args.env:
                    raise ValueError(f"env {args.env!r}: checkpoint {args.policy!r} was "
                                     f"trained in {env_id!r}")
                probe = GymEnv(env_id)
                try:
                    policy, name = cp.policy_from_checkpoint(
                        state, probe, _load_policy_module, path=args.policy)
                finally:
                    probe.close()
                common["algorithm_name"] = args.algorithm or name
            rec = record_dataset(args.env, policy, args.episodes, args.seed,
                                 args.dataset_id, exploration=args.exploration,
                                 noise=args.noise, **common)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    returns = rec.returns
    mean = sum(returns) / len(returns)
    print(f"wrote {args.dataset_id}: {len(returns)} episodes, {sum(rec.lengths)} steps, "
          f"return mean {mean:.2f} (min {min(returns):.2f}, max {max(returns):.2f}) "
          f"at {rec.path}")
    return 0


def _dataset_info(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from streamrl.train.dataset_info import dataset_info, format_info

    try:
        summary = dataset_info(args.dataset)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    print(json.dumps(summary, indent=2) if args.json else format_info(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamrl`` command."""
    parser = argparse.ArgumentParser(prog="streamrl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline: 'demo', a name in pipelines/ or a path",
                         description="Run a pipeline; arguments after its name go to it "
                                     "(streamrl run ppo_cartpole --help lists them).")
    run.add_argument("pipeline")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the pipeline")
    graph = sub.add_parser("graph", help="print a pipeline's graph (text or Mermaid)")
    graph.add_argument("pipeline")
    graph.add_argument("--mermaid", action="store_true", help="print a Mermaid flowchart")
    graph.add_argument("args", nargs=argparse.REMAINDER,
                       help="pipeline arguments that change the graph")
    sub.add_parser("list", help="list the pipelines 'streamrl run' can find")
    dataset = sub.add_parser("dataset", help="create or describe an offline dataset")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    create = _add_create_parser(dataset_commands)
    info = dataset_commands.add_parser(
        "info", help="summarise a dataset: minari:ID, d4rl:PATH or a Minari dataset directory")
    info.add_argument("dataset", help="minari:ID, d4rl:PATH or a Minari dataset directory")
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.command == "dataset":
        if args.dataset_command == "create":
            return _dataset_create(create, args)
        return _dataset_info(info, args)
    if args.command == "list":
        for name in available_pipelines():
            print(name)
        return 0
    if args.command == "run":
        if args.pipeline == "demo":
            from streamrl._demo import main as demo

            return demo(args.args)
        module = _pipeline(run, args.pipeline, "main")
        code = module.main(args.args)
        return 0 if code is None else int(code)
    if args.command == "graph":
        if "--mermaid" in args.args:  # flags after the pipeline name land in args.args
            args.args = [a for a in args.args if a != "--mermaid"]
            args.mermaid = True
        if args.pipeline == "demo":
            from streamrl._demo import build

            g, _ = build(8, 50_000, 1024, "process")
        else:
            g = _pipeline(graph, args.pipeline, "build_graph").build_graph(args.args)
        print(g.to_mermaid() if args.mermaid else g)
        return 0
    return 0  # pragma: no cover (argparse requires a command)


if __name__ == "__main__":
    sys.exit(main())
