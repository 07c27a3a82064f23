"""Offline-to-online pipelines: pretrain on a dataset, then fine-tune online with a replay of
the dataset and the fresh rows mixed (the second half of the seed's offline RL)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrl.data import OfflineToOnlineReplayBuffer
from streamrl.ops import build_offpolicy_graph, ratio_limiter
from streamrl.train import driver
from streamrl.train.checkpoint import save_checkpoint
from streamrl.train.config import check_field, check_positive_ints, int_at_least
from streamrl.train.offline import OfflinePipeline
from streamrl.train.offline_config import OfflineConfig

__all__ = ["OfflineToOnlineConfig", "OfflineToOnlinePipeline", "OfflineToOnlineResult"]


@dataclass
class OfflineToOnlineConfig(OfflineConfig):
    """An offline pipeline's fields (``updates`` is the pretraining) plus the online phase:
    ``online_frames`` collected in the env, ``frames_per_batch`` per rollout message,
    ``updates_per_frame`` updates of ``batch_size`` per collected frame once
    ``learning_starts`` frames are in, a replay of ``offline_fraction`` dataset rows and
    the rest from the last ``online_capacity`` collected ones, the fraction lowered to 0
    over ``anneal_frames`` frames (0: kept), evaluations every ``online_eval_interval``
    frames."""

    online_frames: int = 20_000
    frames_per_batch: int = 50
    updates_per_frame: float = 1.0
    learning_starts: int = 1000
    online_capacity: int = 1_000_000
    offline_fraction: float = 0.5
    anneal_frames: int = 0
    online_eval_interval: int = 2000
    rollout_placement: str = "process"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "online_frames", "frames_per_batch", "learning_starts",
                            "online_capacity", "online_eval_interval")
        check_field(self, "updates_per_frame", self.updates_per_frame > 0, "> 0")
        check_field(self, "offline_fraction", 0.0 < self.offline_fraction < 1.0, "in (0, 1)")
        check_field(self, "anneal_frames", int_at_least(self.anneal_frames, 0), "an int >= 0")
        check_field(self, "rollout_placement", self.rollout_placement in ("process", "inline"),
                    "'process' or 'inline'")


@dataclass
class OfflineToOnlineResult:
    """What a run did: the pretraining's updates and evaluations (``(updates, return)``), the
    online frames, updates and evaluations (``(frames, return)``), the first frame count
    whose evaluation reached the target, the wall time of each phase, the online graph's
    report and where the files are."""

    pretrain_updates: int
    pretrain_evaluations: list[tuple[int, float]]
    frames: int
    updates: int
    evaluations: list[tuple[int, float]]
    solved_at: int | None
    eval_return: float | None
    pretrain_s: float
    online_s: float
    report: str
    run_dir: Path | None


class _Anneal:
    """Lowers the mixed replay's offline fraction with the frames collected (stepped by the
    off-policy graph before each publication, as exploration schedules are): the frames its
    limiter has counted, so a resumed run goes on where it was."""

    def __init__(self, buffer: OfflineToOnlineReplayBuffer, frames: int):
        self.buffer, self.frames = buffer, frames

    def step(self, frames: int) -> None:
        limiter = self.buffer.rate_limiter
        done = limiter.inserts if limiter is not None else self.buffer.write_count
        self.buffer.anneal(int(done), self.frames)


class OfflineToOnlinePipeline:
    """The entry points of an offline-to-online pipeline file named ``name``:
    ``make_learner(config, env) -> (policy, learner, saved)`` builds the networks, loss,
    optimizers and :class:`~streamrl.ops.Learner` both phases share (``saved``: the pieces
    a checkpoint holds); ``config_cls`` subclasses :class:`OfflineToOnlineConfig`;
    ``make_online_learner(config, policy, learner, saved, dataset) -> (learner, saved)``,
    when given, turns the pretrained pieces into the online phase's learner at the switch
    (e.g. another loss on the same actor and critics, first fitted on ``dataset``, the
    offline replay buffer; also called, with ``dataset=None``, before a resumed online
    phase loads its checkpoint into what it returns).

    Phase 1 is the offline graph (:func:`~streamrl.ops.build_offline_graph`) for
    ``config.updates`` updates, its metrics in ``run_dir/pretrain``; phase 2 the off-policy
    graph (:func:`~streamrl.ops.build_offpolicy_graph`) with the pretrained pieces, playing
    the policy from the first frame, sampling an :class:`OfflineToOnlineReplayBuffer` of the
    dataset and the collected rows. ``checkpoint.pt`` is written after each phase (and when
    one fails or is interrupted) with its ``phase``; ``--resume`` goes on in the phase it
    names."""

    def __init__(self, name: str, algorithm: str, config_cls: type,
                 make_learner: Callable[..., Any], doc: str | None,
                 make_online_learner: Callable[..., Any] | None = None):
        if not (isinstance(config_cls, type) and issubclass(config_cls, OfflineToOnlineConfig)):
            raise TypeError(f"config_cls must subclass OfflineToOnlineConfig, found "
                            f"{config_cls!r}")
        self.name, self.algorithm, self.config_cls = name, algorithm, config_cls
        self.make_learner, self.doc = make_learner, doc
        self.make_online_learner = make_online_learner
        # the command line and the dataset check of the offline pipelines
        self._cli = OfflinePipeline(name, algorithm, config_cls, self._offline_build, doc)

    def _offline_build(self, config: Any, dataset: Any, run_dir: Path | None,
                       state: dict[str, Any] | None) -> Any:
        probe = config.make_env()
        try:
            policy, learner, saved = self.make_learner(config, probe)
        finally:
            probe.close()
        return config.graph(self.name, dataset, policy, learner, saved=saved, state=state,
                            run_dir=run_dir, columns=None)

    def parse_args(self, argv: list[str] | None) -> tuple[Any, argparse.Namespace]:
        return self._cli.parse_args(argv)

    def main(self, argv: list[str] | None = None) -> int:
        """Train and print a summary (exit statuses as the offline pipelines')."""
        return driver.main(self.name, self._cli._checked_args, self.train, argv,
                           summary=print_offline_to_online_summary)

    def build_graph(self, argv: list[str] | None = None) -> Any:
        """The pretraining graph the pipeline runs first (for ``streamrl graph``)."""
        return self._cli.build_graph(argv)

    def train(self, config: Any, *, run_dir: Path | None = None, progress: bool = False,
              resume: str | Path | None = None) -> OfflineToOnlineResult:
        """Pretrain, then fine-tune online, as the class says."""
        state = None if resume is None else driver.load_resume(self.name, resume)
        with driver.torch_threads(config.threads):
            if run_dir is not None:
                run_dir = Path(run_dir)
                driver.write_config(run_dir, config)
            return self._run(config, run_dir, progress, state)

    def _run(self, config: Any, run_dir: Path | None, progress: bool,
             state: dict[str, Any] | None) -> OfflineToOnlineResult:
        dataset = config.load_dataset()
        mixed = None
        try:
            probe = config.make_env()
            try:
                policy, learner, saved = self.make_learner(config, probe)
            finally:
                probe.close()
            phase = "offline" if state is None else state.get("phase", "offline")
            pre_evals: list[tuple[int, float]] = []
            t0 = time.perf_counter()
            if phase == "offline" and (state is None or state["updates"] < config.updates):
                og = config.graph(self.name, dataset, policy, learner, saved=saved,
                                  state=state, run_dir=None if run_dir is None
                                  else run_dir / "pretrain", columns=None)
                try:
                    og.graph.run_sync()
                finally:
                    self._save(run_dir, {**og.checkpoint(config), "phase": "offline"})
                pre_evals = og.evaluations
                state = None
            elif phase == "offline":  # pretrained already: its pieces, then online afresh
                assert state is not None
                for key, piece in (*saved.items(), ("learner", learner)):
                    piece.load_state_dict(state[key])
                state = None
            pretrain_s = time.perf_counter() - t0
            if self.make_online_learner is not None:
                learner, saved = self.make_online_learner(
                    config, policy, learner, saved,
                    dataset=dataset if phase == "offline" else None)
            mixed = self._mixed_buffer(config, dataset)
            exploration = ([_Anneal(mixed, config.anneal_frames)] if config.anneal_frames
                           else [])
            sample_size = config.sample_size
            opg = build_offpolicy_graph(
                self.name, config.make_env, policy, learner, mixed,
                frames=config.online_frames, frames_per_batch=config.frames_per_batch,
                sample_size=sample_size, make_eval_env=config.make_eval_env,
                eval_interval=max(1, round(config.online_eval_interval
                                           * config.updates_per_frame)),
                eval_seed=config.eval_seed, seed=config.seed, saved=saved, state=state,
                exploration=exploration, rollout_placement=config.rollout_placement,
                run_dir=run_dir, logger=config.logger, progress=progress)
            t1 = time.perf_counter()
            try:
                opg.graph.run_sync()
            finally:
                self._save(run_dir, {**opg.checkpoint(config), "phase": "online"})
            online_s = time.perf_counter() - t1
        finally:
            if mixed is not None:
                mixed.close()
            dataset.close()
        evaluations = opg.metrics.evaluations
        return OfflineToOnlineResult(
            pretrain_updates=config.updates, pretrain_evaluations=pre_evals,
            frames=opg.metrics.frames, updates=learner.updates, evaluations=evaluations,
            solved_at=next((f for f, r in evaluations if r >= config.target_return), None),
            eval_return=evaluations[-1][1] if evaluations else None,
            pretrain_s=pretrain_s, online_s=online_s, report=opg.graph.report(),
            run_dir=run_dir)

    @staticmethod
    def _mixed_buffer(config: Any, dataset: Any) -> OfflineToOnlineReplayBuffer:
        limiter = ratio_limiter(config.updates_per_frame * config.batch_size,
                                learning_starts=config.learning_starts,
                                sample_size=config.sample_size,
                                frames_per_batch=config.frames_per_batch)
        return OfflineToOnlineReplayBuffer(
            dataset, online_capacity=config.online_capacity,
            offline_fraction=config.offline_fraction, rate_limiter=limiter,
            rate_limit_timeout=120.0)

    @staticmethod
    def _save(run_dir: Path | None, state: dict[str, Any]) -> None:
        if run_dir is not None:
            save_checkpoint(run_dir / "checkpoint.pt", state)

    def __repr__(self) -> str:
        return f"OfflineToOnlinePipeline({self.name!r}, {self.algorithm!r})"


def print_offline_to_online_summary(name: str, config: Any,
                                    result: OfflineToOnlineResult) -> None:
    """The end-of-run lines: the pretraining's last evaluation, the online run's."""
    pre = (f"{result.pretrain_evaluations[-1][1]:.1f}" if result.pretrain_evaluations
           else "not run (resumed)")
    final = "not evaluated" if result.eval_return is None else f"{result.eval_return:.1f}"
    solved = (f"reached {config.target_return:g} at {result.solved_at:,} online frames"
              if result.solved_at is not None else f"never reached {config.target_return:g}")
    print(f"{name}: pretrained {result.pretrain_updates:,} updates on {config.dataset} "
          f"(eval {pre}, {result.pretrain_s:.1f} s); online: final eval {final} ({solved}) "
          f"after {result.frames:,} frames, {result.updates:,} updates in all, "
          f"{result.online_s:.1f} s")
    print(result.report)
    if result.run_dir is not None:
        print(f"  run dir: {result.run_dir}")

