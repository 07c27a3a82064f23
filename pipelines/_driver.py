"""The driver code the pipelines share: the off-policy ``train`` (``dqn_cartpole``,
``sac_pendulum``) and the command line (``parse_args``, ``main``; also ``ppo_cartpole``).

Not a pipeline (its name starts with ``_``, so ``streamrl run`` does not list it). A pipeline
loads it by path, which works however the pipeline itself was imported (``streamrl run``,
:func:`streamrl.cli.load_pipeline`)::

    _driver = load_pipeline(Path(__file__).with_name("_driver.py"))

Each function takes the per-pipeline pieces (name, config and result classes, the graph
builder) as arguments; the pipeline keeps its public ``train``/``parse_args``/``main`` as
thin wrappers. For :func:`train_offpolicy`, ``build(config, run_dir, progress, state)`` must
return parts with ``graph``, ``metrics``, ``learner``, ``buffer`` and ``checkpoint(config)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from streamrl.train import (
    add_config_arguments,
    config_from_args,
    load_checkpoint,
    make_run_dir,
    plot_metrics,
    read_metrics,
    save_checkpoint,
)


def train_offpolicy(name: str, algorithm: str, build: Callable[..., Any], result_cls: type,
                    config: Any, *, run_dir: Path | None, progress: bool,
                    resume: str | Path | None) -> Any:
    """Run the graph ``build`` makes once; write config, checkpoint and plot into ``run_dir``
    (nothing when ``None``) and return a ``result_cls``. ``resume``: a checkpoint of pipeline
    ``name`` to go on from. Torch's thread count is restored on return; the checkpoint is also
    written when the run fails or is interrupted."""
    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        if state.get("pipeline") != name:
            raise ValueError(f"{str(resume)!r} is not a {name} checkpoint (its pipeline: "
                             f"{state.get('pipeline')!r})")
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        if run_dir is not None:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
        parts = build(config, run_dir, progress, state)
        t0 = time.perf_counter()
        try:
            parts.graph.run_sync()
        finally:
            try:
                if run_dir is not None:
                    save_checkpoint(run_dir / "checkpoint.pt", parts.checkpoint(config))
            finally:
                parts.buffer.close()
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    evaluations = parts.metrics.evaluations
    solved_at = next((f for f, r in evaluations if r >= config.target_return), None)
    staleness = [r["staleness"] for r in parts.metrics.rows if "staleness" in r]
    if run_dir is not None and evaluations:
        plot_metrics(read_metrics(run_dir), run_dir / "learning_curve.png",
                     y=("train_return", "eval_return"), title=f"{algorithm} {config.env_name}")
    return result_cls(
        frames=parts.metrics.frames, updates=parts.learner.updates, wall_s=wall,
        eval_return=evaluations[-1][1] if evaluations else None, solved_at=solved_at,
        evaluations=evaluations,
        mean_staleness=sum(staleness) / len(staleness) if staleness else None,
        learner_busy=parts.graph.stats().operators["learner"].busy_fraction,
        report=parts.graph.report(), run_dir=run_dir,
    )


def parse_args(name: str, doc: str | None, config_cls: type,
               argv: list[str] | None, *, no_files_help: str = "write no run directory",
               ) -> tuple[Any, argparse.Namespace]:
    """A ``config_cls`` and the run options from command-line flags (``doc``: the help text)."""
    parser = argparse.ArgumentParser(
        prog=f"streamrl run {name}", description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", default=None,
                        help=f"where to write metrics and checkpoints (default: a fresh "
                             f"runs/{name}-<timestamp>/)")
    parser.add_argument("--runs-root", default="runs", help="parent of the default run dir")
    parser.add_argument("--no-files", action="store_true", help=no_files_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--resume", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint.pt of an earlier run")
    add_config_arguments(parser, config_cls)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(config_cls, args)
    except ValueError as exc:
        parser.error(str(exc))
    return config, args


def main(name: str, parse: Callable[..., tuple[Any, argparse.Namespace]],
         train: Callable[..., Any], argv: list[str] | None,
         summary: Callable[[str, Any, Any], None] | None = None) -> int:
    """Parse ``argv`` with ``parse``, run ``train`` and print ``summary(name, config, result)``
    (default :func:`print_offpolicy_summary`); exit status 0 whether or not the target was
    reached (130 on Ctrl-C)."""
    config, args = parse(argv)
    run_dir = None
    if not args.no_files:
        run_dir = Path(args.run_dir) if args.run_dir else make_run_dir(name, args.runs_root)
    try:
        result = train(config, run_dir=run_dir, progress=not args.no_progress,
                       resume=args.resume)
    except KeyboardInterrupt:
        where = f"; checkpoint: {run_dir / 'checkpoint.pt'}" if run_dir is not None else ""
        print(f"{name}: interrupted{where}", file=sys.stderr)
        return 130
    (summary or print_offpolicy_summary)(name, config, result)
    return 0


def print_offpolicy_summary(name: str, config: Any, result: Any) -> None:
    """The end-of-run lines of an off-policy run: final evaluation, staleness, the report."""
    final = "not evaluated" if result.eval_return is None else f"{result.eval_return:.1f}"
    solved = (f"reached {config.target_return:g} at {result.solved_at:,} frames"
              if result.solved_at is not None else f"never reached {config.target_return:g}")
    print(f"{name}: final eval return {final} ({solved}) after {result.frames:,} frames, "
          f"{result.updates:,} updates, {result.wall_s:.1f} s")
    if result.mean_staleness is not None:
        print(f"  mean staleness {result.mean_staleness:.2f} policy versions")
    # the replay operators block inside the buffer's rate limiter, which the graph counts as
    # busy time: the learner's share says whether learning is what paces the run
    print(f"  learner busy {100 * result.learner_busy:.0f}% of the run (replay sink/source "
          "busy time includes waiting on the rate limiter)")
    print(result.report)
    if result.run_dir is not None:
        print(f"  run dir: {result.run_dir}")
