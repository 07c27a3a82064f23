"""The entry points of offline pipelines (learn from a dataset, evaluate online): their run,
result and summary; the command line is :mod:`streamrl.train.driver`'s."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrl.train import driver
from streamrl.train.checkpoint import save_checkpoint
from streamrl.train.metrics import plot_metrics, read_metrics

__all__ = ["OfflinePipeline", "OfflineResult", "print_offline_summary", "train_offline"]


@dataclass
class OfflineResult:
    """What an offline run did: updates, wall time, evaluations (``(updates, mean
    return)``), the first update count whose evaluation reached the target, the learner's
    busy share, the graph report, where the files are."""

    updates: int
    wall_s: float
    eval_return: float | None
    solved_at: int | None
    evaluations: list[tuple[int, float]]
    learner_busy: float
    report: str
    run_dir: Path | None


class OfflinePipeline:
    """The entry points of an offline pipeline file named ``name`` (its module docstring
    ``doc`` is the help text): ``build(config, dataset, run_dir, state)`` makes the
    :class:`~streamrl.ops.OfflineGraph` that trains on ``dataset`` (the config's, loaded
    and closed here); ``config_cls`` is a dataclass
    subclassing :class:`~streamrl.train.OfflineConfig`; ``algorithm`` titles the curve.
    Bound to the module's names as :class:`~streamrl.train.driver.OffPolicyPipeline`'s::

        _pipeline = OfflinePipeline(NAME, "IQL", IQLConfig, build, __doc__)
        train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
        build_graph = _pipeline.build_graph
    """

    def __init__(self, name: str, algorithm: str, config_cls: type,
                 build: Callable[..., Any], doc: str | None):
        driver.check_pipeline(config_cls, build)
        self.name, self.algorithm, self.config_cls = name, algorithm, config_cls
        self.build, self.doc = build, doc

    def train(self, config: Any, *, run_dir: Path | None = None, progress: bool = False,
              resume: str | Path | None = None) -> OfflineResult:
        """Train as configured (one graph run); write metrics, config, checkpoint and plot
        into ``run_dir`` (nothing when ``None``). ``resume``: a ``checkpoint.pt`` to go on
        from (networks, optimizer, the dataset sampler's generator; ``config.updates``
        counts the updates already made). ``progress`` is accepted for the command line's
        sake: an offline run shows no bar."""
        return train_offline(self.name, self.algorithm, self.build, config, run_dir=run_dir,
                             resume=resume)

    def parse_args(self, argv: list[str] | None) -> tuple[Any, argparse.Namespace]:
        """The config and the run options from command-line flags."""
        return driver.parse_args(self.name, self.doc, self.config_cls, argv)

    def main(self, argv: list[str] | None = None) -> int:
        """Train and print a summary and the graph's report (exit statuses as
        :func:`streamrl.train.driver.main`; also 2, with one ``error:`` line, before any
        work when the dataset cannot be loaded or does not fit the env)."""
        return driver.main(self.name, self._checked_args, self.train, argv,
                           summary=print_offline_summary)

    def _checked_args(self, argv: list[str] | None) -> tuple[Any, argparse.Namespace]:
        """:meth:`parse_args`, then the dataset opened once (its cache built) and checked
        against the env: a bad one exits 2 naming what is wrong."""
        config, args = self.parse_args(argv)
        try:
            config.load_dataset().close()
        except (ValueError, OSError, ImportError) as exc:
            raise SystemExit(_usage_error(self.name, f"--dataset {config.dataset}: {exc}")) from None
        return config, args

    def build_graph(self, argv: list[str] | None = None) -> Any:
        """The graph the pipeline runs with the flags ``argv`` (for ``streamrl graph``);
        loads the dataset, starts nothing."""
        config, _ = self.parse_args(argv)
        dataset = config.load_dataset()
        try:
            return self.build(config, dataset, None, None).graph
        finally:
            dataset.close()

    def __repr__(self) -> str:
        return f"OfflinePipeline({self.name!r}, {self.algorithm!r})"


def _usage_error(name: str, message: str) -> int:
    """Print ``message`` as the command's ``error:`` line; the exit status (2)."""
    print(f"streamrl run {name}: error: {message}", file=sys.stderr)
    return 2


def train_offline(name: str, algorithm: str, build: Callable[..., Any], config: Any, *,
                  run_dir: Path | None, resume: str | Path | None) -> OfflineResult:
    """Run the graph ``build(config, dataset, run_dir, state)`` makes once (``dataset``:
    :meth:`~streamrl.train.OfflineConfig.load_dataset`'s, closed at the end; ``state``: the
    checkpoint of pipeline ``name`` at ``resume``, else ``None``) with ``config.threads``
    torch threads; write ``config.json``, ``checkpoint.pt`` (also when the run fails or is
    interrupted) and the learning curve into ``run_dir``. A
    :class:`~streamrl.checkpoint.CheckpointError` before any work when the checkpoint has
    made ``config.updates`` already."""
    from streamrl.checkpoint import CheckpointError  # (streamrl.checkpoint imports train)

    state = None if resume is None else driver.load_resume(name, resume)
    if state is not None and int(state.get("updates", 0)) >= config.updates:
        raise CheckpointError(f"cannot resume from {str(resume)!r}: it is at "
                              f"{state['updates']} updates, already at the budget --updates "
                              f"{config.updates}; pass more --updates")
    with driver.torch_threads(config.threads):
        if run_dir is not None:
            run_dir = Path(run_dir)
            driver.write_config(run_dir, config)
        dataset = config.load_dataset()
        try:
            parts = build(config, dataset, run_dir, state)
            t0 = time.perf_counter()
            try:
                parts.graph.run_sync()
            finally:
                if run_dir is not None:
                    save_checkpoint(run_dir / "checkpoint.pt", parts.checkpoint(config))
            wall = time.perf_counter() - t0
        finally:
            dataset.close()
    evaluations = parts.evaluations
    solved_at = next((u for u, r in evaluations if r >= config.target_return), None)
    if run_dir is not None and evaluations:
        plot_metrics(read_metrics(run_dir), run_dir / "learning_curve.png", x="updates",
                     y=("eval_return",), title=f"{algorithm} {config.env_name} (offline)")
    return OfflineResult(
        updates=parts.learner.updates, wall_s=wall,
        eval_return=evaluations[-1][1] if evaluations else None, solved_at=solved_at,
        evaluations=evaluations,
        learner_busy=parts.graph.stats().operators["learner"].busy_fraction,
        report=parts.graph.report(), run_dir=run_dir,
    )


def print_offline_summary(name: str, config: Any, result: OfflineResult) -> None:
    """The end-of-run lines of an offline run: final evaluation, speed, the report."""
    final = "not evaluated" if result.eval_return is None else f"{result.eval_return:.1f}"
    solved = (f"reached {config.target_return:g} at {result.solved_at:,} updates"
              if result.solved_at is not None else f"never reached {config.target_return:g}")
    rate = result.updates / result.wall_s if result.wall_s > 0 else 0.0
    print(f"{name}: final eval return {final} ({solved}) after {result.updates:,} updates "
          f"on {config.dataset}, {result.wall_s:.1f} s ({rate:,.0f} updates/s)")
    print(f"  learner busy {100 * result.learner_busy:.0f}% of the run")
    print(result.report)
    if result.run_dir is not None:
        print(f"  run dir: {result.run_dir}")
