"""The driver of pipeline files: what ``streamrl run NAME`` and ``python pipelines/NAME.py``
do around a pipeline's graph.

A pipeline file holds its config dataclass, its networks and one graph; this module gives
it its entry points:

* :class:`OffPolicyPipeline`: ``train``, ``parse_args``, ``main`` and ``build_graph`` of an
  off-policy pipeline, from its name, config class and graph builder.
* :func:`parse_args`: the run options (``--run-dir``, ``--runs-root``, ``--no-files``,
  ``--no-progress``, ``--resume``) and one flag per config field.
* :func:`main`: parse, check the run's paths (:func:`check_run_paths`: a writable run
  directory, a ``--resume`` checkpoint of this pipeline), train into the run directory,
  print a summary; exit status 0 (2 with one ``error:`` line for a bad path, before any
  work; 130 on Ctrl-C, after the checkpoint is written; 1 with one ``error:`` line when the
  disk fails a write).
* :func:`train_offpolicy`: run an off-policy graph once (e.g. one that
  :func:`streamrl.ops.build_offpolicy_graph` built), write ``config.json``, ``checkpoint.pt``
  and ``learning_curve.png``, and return an :class:`OffPolicyResult`.
* :func:`load_resume`, :func:`write_config`, :func:`plot_learning_curve`: the pieces of it
  that a pipeline with its own loop (``ppo_cartpole``) uses too.

>>> from dataclasses import dataclass
>>> @dataclass
... class Config:
...     frames: int = 1000
>>> config, args = parse_args("demo", "A demo pipeline.", Config, ["--frames", "64", "--no-files"])
>>> config.frames, args.no_files, args.resume
(64, True, None)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import sys
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from streamrl.errors import name_file
from streamrl.train.checkpoint import load_checkpoint, remove_temporaries, save_checkpoint
from streamrl.train.config import add_config_arguments, config_from_args
from streamrl.train.metrics import plot_metrics, read_metrics
from streamrl.train.run_dir import make_run_dir, writable_dir

__all__ = [
    "OffPolicyPipeline",
    "OffPolicyResult",
    "check_pipeline",
    "check_run_paths",
    "checkpoint_frames",
    "load_resume",
    "main",
    "parse_args",
    "plot_learning_curve",
    "print_offpolicy_summary",
    "torch_threads",
    "train_offpolicy",
    "write_config",
]


@dataclass
class OffPolicyResult:
    """What an off-policy run did: frames, updates, evaluations (``(frames, mean return)``),
    staleness (the mean over learner messages, and ``max_staleness``: the oldest row's lag
    over the run), the learner's busy share, the graph report, where the files are."""

    frames: int
    updates: int
    wall_s: float
    eval_return: float | None
    solved_at: int | None
    evaluations: list[tuple[int, float]]
    mean_staleness: float | None
    learner_busy: float
    report: str
    run_dir: Path | None
    max_staleness: float | None = None


class OffPolicyPipeline:
    """The entry points of an off-policy pipeline file named ``name``, whose module docstring
    ``doc`` is its help text: ``build(config, run_dir, progress, state)`` makes its
    :class:`~streamrl.ops.OffPolicyGraph` from a ``config_cls`` (a dataclass with
    ``env_name``, ``target_return`` and ``threads`` fields), and ``algorithm`` titles its
    learning curve.

    A pipeline file binds the methods to its module names, which ``streamrl run`` and
    ``streamrl graph`` look for::

        _pipeline = OffPolicyPipeline(NAME, "DQN", DQNConfig, _build, __doc__)
        train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
        build_graph = _pipeline.build_graph
    """

    def __init__(self, name: str, algorithm: str, config_cls: type,
                 build: Callable[..., Any], doc: str | None, *,
                 resumable: Collection[str] = ()):
        check_pipeline(config_cls, build)
        self.name, self.algorithm, self.config_cls = name, algorithm, config_cls
        self.build, self.doc = build, doc
        #: the config fields a resumed run may change (the others must match the checkpoint)
        self.resumable = (*OFFPOLICY_RESUMABLE, *resumable)

    def train(self, config: Any, *, run_dir: Path | None = None, progress: bool = False,
              resume: str | Path | None = None) -> OffPolicyResult:
        """Train as configured (one concurrent graph run); write metrics, config, checkpoint
        and plot into ``run_dir`` (nothing when ``None``). ``resume``: a ``checkpoint.pt``
        to go on from (networks, optimizer, replay buffer, limiter counters; the frame
        budget ``config.frames`` counts the frames already collected). Torch's thread count
        is restored on return. The checkpoint is also written when the run fails or is
        interrupted (Ctrl-C)."""
        return train_offpolicy(self.name, self.algorithm, self.build, config, run_dir=run_dir,
                               progress=progress, resume=resume, resumable=self.resumable)

    def parse_args(self, argv: list[str] | None) -> tuple[Any, argparse.Namespace]:
        """The config and the run options from command-line flags."""
        return parse_args(self.name, self.doc, self.config_cls, argv)

    def main(self, argv: list[str] | None = None) -> int:
        """Train, print a summary and the graph's report; exit status 0 whether or not the
        target was reached (130 on Ctrl-C)."""
        return main(self.name, self.parse_args, self.train, argv)

    def build_graph(self, argv: list[str] | None = None) -> Any:
        """The graph the pipeline runs with the flags ``argv`` (for ``streamrl graph``);
        starts nothing."""
        config, _ = self.parse_args(argv)
        return self.build(config, None, False, None).graph

    def __repr__(self) -> str:
        return f"OffPolicyPipeline({self.name!r}, {self.algorithm!r})"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` for the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_identity(name: str, config: Any, resumable: Collection[str]) -> dict[str, Any]:
    """What a checkpoint of pipeline ``name`` must match to be resumed with ``config`` (a
    dataclass): the pipeline and every field but the ``resumable`` ones (those a resumed
    run may change: the budget, evaluation and output), as
    :class:`streamrl.checkpoint.Checkpoint`'s ``match``.

    >>> @dataclasses.dataclass
    ... class Cfg:
    ...     lr: float = 0.1
    ...     frames: int = 10
    >>> run_identity("demo", Cfg(), ("frames",))
    {'pipeline': 'demo', 'config': {'lr': 0.1}}
    """
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in resumable}
    return {"pipeline": name, "config": fields}


def check_pipeline(config_cls: type, build: Callable[..., Any]) -> None:
    """What a pipeline's entry points are made of: a config dataclass and a callable that
    builds its graph (``TypeError`` naming what was found otherwise)."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config_cls must be a dataclass, found {config_cls!r}")
    if not callable(build):
        raise TypeError(f"build must be callable, found {type(build).__name__}")


def load_resume(name: str, path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at ``path``; a :class:`streamrl.checkpoint.CheckpointError` (a
    ``ValueError``) naming the path unless it is a readable checkpoint file that pipeline
    ``name`` wrote: it does not exist, is a directory, cannot be read, is not a streamrl
    checkpoint (and why, briefly), or is another pipeline's. ``mmap=True``: its tensors are
    mapped, not read (a cheap check of a large checkpoint, e.g. with a replay buffer)."""
    from streamrl.checkpoint import CheckpointError  # (streamrl.checkpoint imports train)

    shown = repr(str(path))
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"cannot resume from {shown}: it does not exist")
    if path.is_dir():
        raise CheckpointError(f"cannot resume from {shown}: it is a directory, expected a "
                              "checkpoint file (e.g. <run dir>/checkpoint.pt)")
    try:
        try:
            state = load_checkpoint(path, mmap=mmap)
        except Exception:
            if not mmap:
                raise
            state = load_checkpoint(path)  # not a zip file: the plain load says why
    except OSError as exc:
        raise CheckpointError(f"cannot resume from {shown}: it cannot be read "
                              f"({exc.strerror or exc})") from None
    except Exception as exc:  # torch's unpickler on a file of another kind, a truncated zip...
        why = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]  # its first sentence
        why = why if len(why) <= 100 else why[:97] + "..."
        raise CheckpointError(f"cannot resume from {shown}: it is not a streamrl checkpoint "
                              f"({type(exc).__name__}: {why})") from None
    if "pipeline" not in state:
        raise CheckpointError(f"cannot resume from {shown}: it is not a streamrl pipeline "
                              f"checkpoint (no 'pipeline' entry; its keys: "
                              f"{sorted(map(str, state))[:8]})")
    if state["pipeline"] != name:
        raise CheckpointError(f"{shown} is not a {name} checkpoint (its pipeline: "
                              f"{state['pipeline']!r})")
    return state


def write_config(run_dir: Path, config: Any) -> None:
    """Create ``run_dir`` (and its parents) and write the ``config`` dataclass into its
    ``config.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.json"
    try:
        path.write_text(json.dumps(dataclasses.asdict(config), indent=2))
    except OSError as exc:
        name_file(exc, path)
        raise


def plot_learning_curve(run_dir: Path, title: str) -> None:
    """``run_dir/learning_curve.png``: training and evaluation returns against frames, from
    the run's metrics (nothing without matplotlib)."""
    plot_metrics(read_metrics(run_dir), run_dir / "learning_curve.png",
                 y=("train_return", "eval_return"), title=title)


#: config fields every off-policy run may change when it resumes: the budget, evaluation,
#: output, and where and how in step the graph runs
OFFPOLICY_RESUMABLE = ("frames", "eval_interval", "eval_episodes", "eval_seed", "target_return",
                       "threads", "logger", "rollout_placement", "ray", "ray_actors",
                       "max_policy_lag", "lockstep")


def check_resumed_config(name: str, config: Any, state: dict[str, Any],
                         resumable: Collection[str]) -> None:
    """``ValueError`` naming every field of the dataclass ``config`` that differs from the
    checkpoint ``state``'s config (its value there and here), ``resumable`` ones aside; a
    checkpoint without a config is not checked."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        return
    here = dataclasses.asdict(config)

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return bool(a == b)

    changed = [f"{k}={saved[k]!r} (this run: {here[k]!r})" for k in here
               if k in saved and k not in resumable and not same(saved[k], here[k])]
    if changed:
        raise ValueError(f"{name}: cannot resume: the checkpoint was trained with "
                         f"{', '.join(changed)}; a resumed run may change only "
                         f"{', '.join(sorted(set(resumable)))}")


def train_offpolicy(name: str, algorithm: str, build: Callable[..., Any], config: Any, *,
                    run_dir: Path | None, progress: bool,
                    resume: str | Path | None,
                    resumable: Collection[str] = OFFPOLICY_RESUMABLE) -> OffPolicyResult:
    """Run the graph ``build(config, run_dir, progress, state)`` makes once (an
    :class:`~streamrl.ops.OffPolicyGraph`; ``state``: the checkpoint of pipeline ``name`` at
    ``resume``, else ``None``) with ``config.threads`` torch threads; write ``config.json``,
    ``checkpoint.pt`` and the learning curve (titled ``algorithm`` and ``config.env_name``)
    into ``run_dir`` (nothing when ``None``). A run is solved at the first evaluation that
    reaches ``config.target_return``. Torch's thread count is restored on return; the
    checkpoint is also written when the run fails or is interrupted. A checkpoint trained
    with other config values than ``resumable`` ones is refused before any work
    (:func:`check_resumed_config`)."""
    state = None if resume is None else load_resume(name, resume)
    if state is not None:
        check_resumed_config(name, config, state, resumable)
    with torch_threads(config.threads):
        if run_dir is not None:
            run_dir = Path(run_dir)
            write_config(run_dir, config)
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
    evaluations = parts.metrics.evaluations
    solved_at = next((f for f, r in evaluations if r >= config.target_return), None)
    staleness = [r["staleness"] for r in parts.metrics.rows if "staleness" in r]
    oldest = [r["staleness_max"] for r in parts.metrics.rows if "staleness_max" in r]
    if run_dir is not None and evaluations:
        plot_learning_curve(run_dir, f"{algorithm} {config.env_name}")
    return OffPolicyResult(
        frames=parts.metrics.frames, updates=parts.learner.updates, wall_s=wall,
        eval_return=evaluations[-1][1] if evaluations else None, solved_at=solved_at,
        evaluations=evaluations,
        mean_staleness=sum(staleness) / len(staleness) if staleness else None,
        learner_busy=parts.graph.stats().operators["learner"].busy_fraction,
        report=parts.graph.report(), run_dir=run_dir,
        max_staleness=max(oldest) if oldest else None,
    )


def parse_args(name: str, doc: str | None, config_cls: type, argv: list[str] | None, *,
               no_files_help: str = "write no run directory",
               ) -> tuple[Any, argparse.Namespace]:
    """A ``config_cls`` and the run options from command-line flags (``doc``: the help
    text; the program is ``streamrl run name``). Bad flags or config values exit with
    argparse's status 2 and a usage line."""
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


def checkpoint_frames(state: dict[str, Any]) -> int | None:
    """The frames a pipeline's checkpoint had collected: its ``frames`` entry (an off-policy
    pipeline's) or its manifest's ``metadata["frames"]`` (a
    :class:`streamrl.checkpoint.Checkpoint`'s, e.g. a PPO pipeline's); ``None`` when it
    says neither."""
    frames = state.get("frames")
    if frames is None:
        manifest = state.get("checkpoint")
        metadata = manifest.get("metadata") if isinstance(manifest, dict) else None
        frames = metadata.get("frames") if isinstance(metadata, dict) else None
    return frames if isinstance(frames, int) and not isinstance(frames, bool) else None


def check_run_paths(name: str, args: argparse.Namespace, config: Any = None,
                    identity: Callable[[Any], dict[str, Any]] | None = None) -> Path | None:
    """Check a run's paths before any work starts and return its run directory (``None``
    with ``--no-files``): the ``--resume`` checkpoint is a checkpoint of pipeline ``name``
    (:func:`load_resume`) whose ``identity(config)`` entries, when given, match (see
    :class:`streamrl.checkpoint.Checkpoint`'s ``match``); the run directory (``--run-dir``,
    else a fresh one under ``--runs-root``) is created and writable, and the temporary
    files of a checkpoint write killed midway are removed from it. ``ValueError`` naming
    the flag, the path and what is wrong with it otherwise."""
    from streamrl.checkpoint import Checkpoint, CheckpointError  # (it imports train)

    if args.resume is not None:
        state = load_resume(name, args.resume, mmap=True)  # read again, in full, by train
        if identity is not None:  # loads nothing: compares the run's identity only
            try:
                Checkpoint(match=identity(config)).load(args.resume)
            except CheckpointError as exc:
                raise CheckpointError(f"cannot resume: {exc}") from None
        done, budget = checkpoint_frames(state), getattr(config, "frames", None)
        if done is not None and isinstance(budget, int) and done >= budget:
            raise CheckpointError(f"cannot resume from {str(args.resume)!r}: it is at {done} "
                                  f"frames, already at the budget --frames {budget}; pass a "
                                  "larger --frames")
    if args.no_files:
        return None
    flag = "--run-dir" if args.run_dir else "--runs-root"
    try:
        run_dir = (writable_dir(args.run_dir) if args.run_dir
                   else make_run_dir(name, args.runs_root))
    except ValueError as exc:
        raise ValueError(f"{flag} {exc}") from None
    remove_temporaries(run_dir / "checkpoint.pt")
    return run_dir


def main(name: str, parse: Callable[..., tuple[Any, argparse.Namespace]],
         train: Callable[..., Any], argv: list[str] | None,
         summary: Callable[[str, Any, Any], None] | None = None, *,
         identity: Callable[[Any], dict[str, Any]] | None = None) -> int:
    """Parse ``argv`` with ``parse``, check the run's paths (:func:`check_run_paths`), run
    ``train(config, run_dir=, progress=, resume=)`` and print ``summary(name, config,
    result)`` (default :func:`print_offpolicy_summary`). Exit status: 0 whether or not the
    target was reached; 2 with one ``error:`` line when a path is wrong (a run directory
    that cannot be written, a ``--resume`` checkpoint that is missing, unreadable, not a
    streamrl checkpoint, another pipeline's or, with ``identity``, another config's),
    before any work; 130 on Ctrl-C, after the checkpoint is written; 1 with one
    ``error:`` line naming the file when the disk fails a write during the run (full,
    read-only), after the checkpoint of the last consistent state is kept."""
    config, args = parse(argv)
    prog = f"streamrl run {name}"
    try:
        run_dir = check_run_paths(name, args, config, identity)
    except ValueError as exc:  # CheckpointError included
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    from streamrl.checkpoint import CheckpointError  # (streamrl.checkpoint imports train)

    try:
        result = train(config, run_dir=run_dir, progress=not args.no_progress,
                       resume=args.resume)
    except CheckpointError as exc:  # raised before any work: nothing to clean up
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = f"; checkpoint: {run_dir / 'checkpoint.pt'}" if run_dir is not None else ""
        print(f"{name}: interrupted{where}", file=sys.stderr)
        return 130
    except Exception as exc:
        disk = _disk_error(exc)
        if disk is None:  # not the disk: a bug, shown with its traceback
            raise
        last = run_dir / "checkpoint.pt" if run_dir is not None else None
        where = f"; last checkpoint: {last}" if last is not None and last.is_file() else ""
        print(f"{prog}: error: {disk}{where}", file=sys.stderr)
        return 1
    (summary or print_offpolicy_summary)(name, config, result)
    return 0


# what a file that cannot be written says when the fault is the disk's, not the program's
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def _disk_error(exc: BaseException | None) -> OSError | None:
    """The ``OSError`` of a full (or read-only, or failing) disk naming its file that
    ``exc`` is or was caused by (e.g. inside an operator's error), else ``None``."""
    for _ in range(8):  # a cause chain, not a cycle
        if exc is None:
            return None
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS and exc.filename is not None:
            return exc
        exc = exc.__cause__
    return None


def print_offpolicy_summary(name: str, config: Any, result: OffPolicyResult) -> None:
    """The end-of-run lines of an off-policy run: final evaluation, staleness, the report."""
    final = "not evaluated" if result.eval_return is None else f"{result.eval_return:.1f}"
    solved = (f"reached {config.target_return:g} at {result.solved_at:,} frames"
              if result.solved_at is not None else f"never reached {config.target_return:g}")
    print(f"{name}: final eval return {final} ({solved}) after {result.frames:,} frames, "
          f"{result.updates:,} updates, {result.wall_s:.1f} s")
    if result.mean_staleness is not None:
        oldest = "" if result.max_staleness is None else f", oldest row {result.max_staleness:g}"
        bound = getattr(config, "max_policy_lag", None)
        bound = "" if bound is None else f" (bound: max_policy_lag={bound})"
        print(f"  mean staleness {result.mean_staleness:.2f} policy versions{oldest}{bound}")
    # the replay operators block inside the buffer's rate limiter, which the graph counts as
    # busy time: the learner's share says whether learning is what paces the run
    print(f"  learner busy {100 * result.learner_busy:.0f}% of the run (replay sink/source "
          "busy time includes waiting on the rate limiter)")
    print(result.report)
    if result.run_dir is not None:
        print(f"  run dir: {result.run_dir}")
