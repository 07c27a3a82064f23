"""OfflineConfig: the fields, checks, dataset, env and graph of an offline pipeline (BC, IQL,
CQL, TD3+BC ...): a dataset to learn from, an env to evaluate in."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from streamrl.envs import DoubleToFloat, EnvBase, GymEnv, SerialEnv, TransformedEnv
from streamrl.ops import (
    Learner,
    OfflineGraph,
    build_offline_graph,
    check_run_logger,
    default_run_logger,
)
from streamrl.train.config import check_field, check_positive_ints

__all__ = ["OfflineConfig"]


@dataclass
class OfflineConfig:
    """What every offline pipeline configures: the ``dataset`` (``"minari:ID"`` or
    ``"d4rl:PATH"``, see :func:`streamrl.data.datasets.load_dataset`; ``dataset_root``: where
    its memory-mapped cache goes, default the datasets' own), the gym env its policy is
    evaluated in (``env_name``; ``None``: the env the dataset names), ``updates`` (gradient
    updates of ``batch_size`` rows; the source draws ``minibatches_per_sample`` of them per
    message), the optimizer's ``lr``, ``gamma``, ``tau`` (soft target updates), the
    networks' ``hidden`` width, ``eval_interval`` (in updates), ``eval_episodes``, and the
    run's ``seed``, ``threads`` and ``logger``. A pipeline subclasses it with its loss's
    fields (TorchRL's argument names) and its own defaults.

    >>> OfflineConfig(dataset="d4rl:/data/pendulum.hdf5", env_name="Pendulum-v1").sample_size
    2560
    >>> OfflineConfig(dataset="pendulum")
    Traceback (most recent call last):
    ...
    ValueError: OfflineConfig.dataset must be '<prefix>:<id>' (e.g. 'minari:ID', 'd4rl:PATH'), found 'pendulum'
    """

    dataset: str = ""
    dataset_root: str | None = None
    env_name: str | None = None
    updates: int = 100_000
    batch_size: int = 256
    minibatches_per_sample: int = 10
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    hidden: int = 256
    eval_interval: int = 10_000
    eval_episodes: int = 10
    eval_seed: int = 10_000
    target_return: float = math.inf
    seed: int = 0
    threads: int = 1
    logger: str = default_run_logger()

    def __post_init__(self) -> None:
        check_run_logger(self.logger)
        check_field(self, "dataset", isinstance(self.dataset, str) and ":" in self.dataset,
                    "'<prefix>:<id>' (e.g. 'minari:ID', 'd4rl:PATH')")
        check_positive_ints(self, "updates", "batch_size", "minibatches_per_sample", "hidden",
                            "eval_interval", "eval_episodes", "threads")
        check_field(self, "gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]")
        check_field(self, "tau", 0.0 < self.tau <= 1.0, "in (0, 1]")
        check_field(self, "lr", self.lr > 0, "> 0")

    @property
    def sample_size(self) -> int:
        """Rows per dataset-source message (split into ``minibatches_per_sample`` updates)."""
        return self.batch_size * self.minibatches_per_sample

    def load_dataset(self) -> Any:
        """The dataset, its float64 fields read as float32 as :meth:`make_env`'s env casts
        its own, checked against that env (``ValueError`` naming the field that does not
        fit)."""
        from streamrl.data.datasets import load_dataset

        options: dict[str, Any] = {"batch_size": self.sample_size}
        if self.dataset_root is not None:
            options["root"] = self.dataset_root
        dataset = load_dataset(self.dataset, **options)
        cast = getattr(dataset, "cast_float64", None)  # (a registered dataset may lack it)
        if cast is not None:
            cast()
        if self.env_name is None:
            self.env_name = dataset_env_name(dataset)
        env = self.make_env()
        try:
            dataset.check_env(env)
        except Exception:
            dataset.close()
            raise
        finally:
            env.close()
        return dataset

    def make_env(self) -> EnvBase:
        """One copy of the gym env, float64 entries cast to float32."""
        if self.env_name is None:
            raise ValueError(f"{type(self).__name__}.env_name is not set and not known yet: "
                             "load the dataset first (its env), or pass --env-name")
        return TransformedEnv(GymEnv(self.env_name), DoubleToFloat())

    def make_eval_env(self) -> SerialEnv:
        """``eval_episodes`` copies of :meth:`make_env`'s env, played side by side."""
        return SerialEnv(self.eval_episodes, self.make_env)

    def graph(self, name: str, dataset: Any, policy: nn.Module, learner: Learner, *,
              saved: Mapping[str, Any], state: Mapping[str, Any] | None,
              run_dir: Path | None, columns: Sequence[str] | None) -> OfflineGraph:
        """The offline graph (:func:`~streamrl.ops.build_offline_graph`) named ``name`` that
        trains ``learner`` on ``dataset`` for ``updates`` updates and evaluates ``policy``
        every ``eval_interval`` of them."""
        dataset.sampler.manual_seed(self.seed)  # a checkpoint's state replaces it
        return build_offline_graph(
            name, dataset, policy, learner, updates=self.updates, sample_size=self.sample_size,
            make_eval_env=self.make_eval_env, eval_interval=self.eval_interval,
            eval_seed=self.eval_seed, saved=saved, state=state, run_dir=run_dir,
            columns=columns, logger=self.logger)


def dataset_env_name(dataset: Any) -> str:
    """The gym id of the env a dataset was recorded in (its metadata's ``env_name``, or the
    ``id`` of its ``env_spec``); ``ValueError`` when it names none."""
    metadata = getattr(dataset, "metadata", None) or {}
    name = metadata.get("env_name")
    spec = metadata.get("env_spec")
    if name is None and isinstance(spec, Mapping):
        name = spec.get("id")
    if name is None and isinstance(spec, str):
        import json

        try:
            name = json.loads(spec).get("id")
        except (ValueError, AttributeError):
            name = None
    if not isinstance(name, str) or not name:
        raise ValueError(f"the dataset names no env (metadata keys: {sorted(metadata)}): "
                         "pass --env-name")
    return name
