"""MetricsSink: merges collector, learner and evaluation streams into metric rows."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.graph import Operator
from streamrl.ops._per_task import per_task_means
from streamrl.ops.metrics_logger import MetricsLogger, check_run_logger, run_metrics_logger

__all__ = ["MetricsSink"]

_PORTS = ("collector", "learner", "eval")


class MetricsSink(Operator):
    """Writes metric rows (``streamrl.train.MetricsLogger``) and drives a progress bar.

    Input ports (``input_mode="any"``; ``inputs=`` picks a subset):

    * ``collector``: the collected batches (fan them out from the rollout): counts ``frames``
      and the returns of the training episodes that end in them (``train_return``, the mean
      over the episodes finished since the previous row, and ``train_episodes``; with
      ``return_key``, an episode's return is that entry at its done step, e.g. a
      ``RewardSum``'s ``("next", "episode_reward")``, the unclipped score of an Atari env
      whose rewards are clipped, instead of the sum of ``("next", "reward")``).
      ``return_key`` may also map names to such entries, one per agent group (``{"agent":
      ("next", "agent", "episode_reward")}``, entries ``[*B, n_agents, 1]``): each row then
      has ``train_return/<name>``, the mean per-agent return of that group's episodes, and
      ``train_return`` / ``train_episodes`` are the first name's. It also reads
      the newest batch's ``("collector", "policy_version")`` (``collector_version``: with the
      learner's ``policy_version`` it shows how far the acting policy lags); when the batches
      carry a ``("task", "id")`` (:class:`~streamrl.envs.tasks.SampleTask`), each row also
      has ``train_return/task_<id>`` per task among the episodes it counts;
    * ``learner``: dicts from a :class:`~streamrl.ops.Learner` (through a
      :class:`~streamrl.ops.WeightSync`): losses, ``updates``, ``policy_version``,
      ``staleness``; one row every ``log_every`` of them;
    * ``eval``: dicts from an :class:`~streamrl.ops.Evaluator`: a row with ``eval_return``
      (:attr:`evaluations` lists it at the message's ``eval_frames`` when it has them: the
      frames collected for the weights evaluated, which may lie behind the frames counted
      when it arrives, which the row's ``frames`` keeps).

    Every row also holds ``frames``, ``wall_s`` and ``fps``. Rows are kept in :attr:`rows`
    and written to ``directory`` (``metrics.csv`` / ``metrics.jsonl``, opened in :meth:`open`)
    when given, and to a :mod:`streamrl.record` logger in ``directory/<logger>/`` (``logger``:
    ``"tensorboard"``, ``"csv"``, ``"wandb"`` or ``"none"``, see
    :func:`~streamrl.ops.metrics_logger.run_logger`); only keys in ``columns`` are written (the first row's keys when ``None``).
    ``resume_at``: a resumed run's checkpoint frame count: the history in ``directory`` is
    kept up to it and appended to (see :class:`~streamrl.ops.metrics_logger.MetricsLogger`).
    :attr:`evaluations` lists ``(frames, eval_return)``. The bar counts frames up to
    ``total_frames`` and shows the last evaluation.
    """

    outputs = ()
    input_mode = "any"
    state_keys = ("frames",)

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        *,
        columns: Sequence[str] | None = None,
        inputs: Sequence[str] = _PORTS,
        total_frames: int | None = None,
        progress: bool = False,
        desc: str | None = None,
        log_every: int = 1,
        logger: str = "none",
        return_key: Any = None,
        resume_at: int | None = None,
    ):
        inputs = tuple(inputs)
        if not inputs or any(p not in _PORTS for p in inputs) or len(set(inputs)) != len(inputs):
            raise ValueError(f"inputs must be distinct names among {_PORTS}, got {inputs!r}")
        if not isinstance(log_every, int) or isinstance(log_every, bool) or log_every < 1:
            raise ValueError(f"log_every must be a positive int, got {log_every!r}")
        if total_frames is not None and (not isinstance(total_frames, int) or total_frames < 1):
            raise ValueError(f"total_frames must be a positive int or None, got {total_frames!r}")
        check_run_logger(logger)
        self.logger_kind = logger
        self.resume_at = resume_at
        if isinstance(return_key, Mapping):
            if not return_key or not all(isinstance(k, str) and k for k in return_key):
                raise ValueError(f"return_key as a mapping needs names (non-empty strings) "
                                 f"to entries, found {dict(return_key)!r}")
            return_key = dict(return_key)
        self.return_key = return_key
        # with named return keys: each name's finished episodes (mean over its agents)
        self._named: dict[str, list[float]] = (
            {name: [] for name in return_key} if isinstance(return_key, dict) else {})
        self.inputs = inputs
        self.directory = directory
        self.columns = list(columns) if columns is not None else None
        self.total_frames = total_frames
        self.progress = progress
        self.desc = desc
        self.log_every = log_every
        self.frames = 0
        self.rows: list[dict[str, Any]] = []
        self.evaluations: list[tuple[int, float]] = []
        self.logger: MetricsLogger | None = None
        self._bar: Any = None
        self._running: torch.Tensor | None = None
        self._finished: list[float] = []
        # the ("task", "id") of each finished episode, when the batches carry one
        self._finished_tasks: list[int] = []
        self._learner_msgs = 0
        self._collector_version: int | None = None
        self._t0 = time.perf_counter()

    def open(self) -> None:
        self._t0 = time.perf_counter()
        if self.directory is not None:
            self.logger = run_metrics_logger(self.directory, self.columns, self.logger_kind,
                                             resume_at=self.resume_at)
        if self.progress:
            from tqdm.auto import tqdm

            # a resumed run sets ``frames`` before opening: the bar starts there
            self._bar = tqdm(total=self.total_frames, initial=self.frames, unit="frame",
                             unit_scale=True, desc=self.desc, dynamic_ncols=True,
                             file=sys.stderr)
        return None

    def step(self, inputs: dict[str, Any]) -> None:
        if "collector" in inputs:
            self._collect(inputs["collector"])
        if "learner" in inputs:
            msg = self._check_dict(inputs["learner"], "learner")
            self._learner_msgs += 1
            if self._learner_msgs % self.log_every == 0:
                self._write(msg)
        if "eval" in inputs:
            msg = self._check_dict(inputs["eval"], "eval")
            if "eval_return" not in msg:
                raise KeyError(f"MetricsSink: an eval message has no 'eval_return': {sorted(msg)}")
            # an evaluator that knows the frames collected for the weights it played says so
            # (they may lie behind the frames counted by now; the row keeps both)
            self.evaluations.append((int(msg.get("eval_frames", self.frames)),
                                     float(msg["eval_return"])))
            if self._bar is not None:
                self._bar.set_postfix(eval=f"{msg['eval_return']:.1f}", refresh=False)
            self._write(msg)
        return None

    @staticmethod
    def _check_dict(msg: Any, port: str) -> dict[str, Any]:
        if not isinstance(msg, dict):
            raise TypeError(f"MetricsSink: the {port!r} port takes dicts, found {type(msg).__name__}")
        return msg

    def _collect(self, batch: Any) -> None:
        if not isinstance(batch, TensorDictBase):
            raise TypeError(
                f"MetricsSink: the 'collector' port takes TensorDict batches, found "
                f"{type(batch).__name__}"
            )
        n = batch.numel()
        self.frames += n
        if self._bar is not None:
            self._bar.update(n)
        version = batch.get(("collector", "policy_version"), None)
        if version is not None and version.numel():
            self._collector_version = int(version.max())
        reward = batch.get(("next", "reward"), None)
        done = batch.get(("next", "done"), None)
        # a return entry needs no root reward (a multi-agent env has one per group)
        if done is None or (reward is None and self.return_key is None):
            return
        # [*envs, T]: time is the last batch dim; every other dim is a sub-env
        steps = batch.batch_size[-1] if batch.batch_dims else 1
        task = batch.get(("task", "id"), None)
        if self._named:
            ended = done.reshape(-1)
            for name, key in self.return_key.items():
                score = batch.get(key, None)
                if score is None:
                    raise KeyError(f"MetricsSink: return_key {name!r}: {key!r} is not in the "
                                   f"collected batch")
                # [*B, n_agents, 1] rows: the mean over a group's agents
                per_agent = score.reshape(ended.shape[0], -1)[ended].double().mean(-1)
                self._named[name].extend(per_agent.tolist())
            return
        if self.return_key is not None:
            score = batch.get(self.return_key, None)
            if score is None:
                raise KeyError(f"MetricsSink: return_key {self.return_key!r} is not in the "
                               f"collected batch")
            ended = done.reshape(-1)
            self._finished.extend(score.reshape(ended.shape[0], -1)[ended, 0].tolist())
            if task is not None:
                self._finished_tasks.extend(task.reshape(ended.shape[0], -1)[ended, 0].tolist())
            return
        reward = reward.reshape(-1, steps).double()
        done = done.reshape(-1, steps)
        tasks = None if task is None else task.reshape(reward.shape[0], steps, -1)[..., 0]
        if self._running is None or self._running.shape[0] != reward.shape[0]:
            self._running = torch.zeros(reward.shape[0], dtype=torch.float64)
        for t in range(steps):
            self._running += reward[:, t]
            d = done[:, t]
            if bool(d.any()):
                self._finished.extend(self._running[d].tolist())
                if tasks is not None:
                    self._finished_tasks.extend(tasks[d, t].tolist())
                self._running[d] = 0.0

    def _write(self, msg: dict[str, Any]) -> None:
        wall = time.perf_counter() - self._t0
        row: dict[str, Any] = {"frames": self.frames, "wall_s": wall,
                               "fps": self.frames / max(wall, 1e-9)}
        if self._collector_version is not None:
            row["collector_version"] = self._collector_version
        if self._named and any(self._named.values()):
            first = next(iter(self._named))
            for name, finished in self._named.items():
                if finished:
                    row[f"train_return/{name}"] = sum(finished) / len(finished)
            if self._named[first]:
                row["train_return"] = row[f"train_return/{first}"]
                row["train_episodes"] = len(self._named[first])
            self._named = {name: [] for name in self._named}
        if self._finished:
            row["train_return"] = sum(self._finished) / len(self._finished)
            row["train_episodes"] = len(self._finished)
            if len(self._finished_tasks) == len(self._finished):
                row.update(per_task_means("train_return", self._finished, self._finished_tasks))
            self._finished, self._finished_tasks = [], []
        row.update(msg)
        self.rows.append(row)
        if self.logger is not None:
            columns = self.logger.columns
            self.logger.log(row if columns is None else {k: v for k, v in row.items()
                                                         if k in columns})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.logger is not None:
            self.logger.close()

    def __repr__(self) -> str:
        return f"MetricsSink(inputs={self.inputs}, rows={len(self.rows)})"
