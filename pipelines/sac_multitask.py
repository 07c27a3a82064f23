"""Multi-task SAC on a task family: ``streamrl run sac_multitask``.

The concurrent SAC graph of ``sac_pendulum`` on a batched env whose members play different
tasks of one family (``--family pendulum``: Pendulum-v1 with its mass and gravity drawn per
task; ``halfcheetah-vel`` / ``halfcheetah-dir``: HalfCheetah-v5 running at a target velocity
or in a direction; ``metaworld-mt1``: Meta-World's reach-v3 goals; ``metaworld-mt10``: MT10's
classes, one goal each with ``--num-tasks 10``; both where the optional metaworld package is
installed): ``--num-tasks`` tasks drawn once with ``--task-seed``, one member per
task (:class:`~streamrl.envs.tasks.SampleTask`, the task's ``("task", "id")`` and parameters
in every step). The actor and the critics read a learned embedding of the task id
(:class:`~streamrl.modules.TaskEmbedding`) beside the observation, so one network serves
every task. The metrics report ``train_return/task_<k>`` and ``eval_return/task_<k>`` per
task beside the means (the evaluation plays ``--eval-episodes`` members, the tasks in turn).

``--task K`` trains on task ``K`` of the same table only (every member plays it): the
single-task baseline, with the same networks, for the same frames.

    $ streamrl run sac_multitask --frames 20000 --num-tasks 4 --hidden 64
    $ streamrl run sac_multitask --frames 5000 --num-tasks 4 --task 2 --hidden 64
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.cli import load_pipeline
from streamrl.envs import (
    Compose,
    DoubleToFloat,
    EnvBase,
    GymEnv,
    PadObservation,
    SerialEnv,
    TransformedEnv,
)
from streamrl.envs.tasks import (
    HalfCheetahDirFamily,
    HalfCheetahVelFamily,
    MetaWorldFamily,
    PendulumFamily,
    SampleTask,
    TaskFamily,
)
from streamrl.modules import (
    MLP,
    TaskEmbedding,
)
from streamrl.train import check_field, check_positive_ints, driver

NAME = "sac_multitask"

_sac = load_pipeline(Path(__file__).with_name("sac_pendulum.py"))

FAMILIES: dict[str, Any] = {
    "pendulum": PendulumFamily,
    "halfcheetah-vel": HalfCheetahVelFamily,
    "halfcheetah-dir": HalfCheetahDirFamily,
    # built once: a Meta-World benchmark resets each class's env 50 times to list its goals
    "metaworld-mt1": functools.cache(lambda: MetaWorldFamily("MT1", "reach-v3")),
    "metaworld-mt10": functools.cache(lambda: MetaWorldFamily("MT10")),
}

#: columns per task, for up to this many tasks
MAX_TASK_COLUMNS = 16
COLUMNS = [*_sac.COLUMNS,
           *[f"train_return/task_{k}" for k in range(MAX_TASK_COLUMNS)],
           *[f"eval_return/task_{k}" for k in range(MAX_TASK_COLUMNS)]]


@dataclass
class SACMultiTaskConfig(_sac.SACConfig):
    """SAC's fields (``sac_pendulum``'s defaults) plus the family, the number of tasks and
    the seed that draws them, the task embedding's size, and ``task`` (one task only: the
    single-task baseline). ``env_name`` is the family's."""

    family: str = "pendulum"
    num_tasks: int = 4
    task_seed: int = 0
    embedding: int = 8
    task: int | None = None
    eval_episodes: int = 8
    env_name: str = ""

    def __post_init__(self) -> None:
        check_field(self, "family", self.family in FAMILIES, f"one of {sorted(FAMILIES)}")
        check_positive_ints(self, "num_tasks", "embedding")
        check_field(self, "num_tasks", self.num_tasks <= MAX_TASK_COLUMNS,
                    f"at most {MAX_TASK_COLUMNS}")
        check_field(self, "task", self.task is None or (
            isinstance(self.task, int) and 0 <= self.task < self.num_tasks),
            f"None or a task in 0 .. {self.num_tasks - 1}")
        family_env = FAMILIES[self.family]().env_name
        check_field(self, "env_name", self.env_name in ("", family_env),
                    f"the {self.family} family's {family_env!r} (or left out)")
        self.env_name = family_env
        super().__post_init__()

    def make_family(self) -> TaskFamily:
        return FAMILIES[self.family]()

    def task_table(self) -> torch.Tensor:
        """The ``num_tasks`` tasks, ``[num_tasks, params]``, drawn with ``task_seed``."""
        return self.make_family().sample(self.num_tasks,
                                         torch.Generator().manual_seed(self.task_seed))

    def _member(self, row: int) -> EnvBase:
        family, table = self.make_family(), self.task_table()
        sampler = SampleTask(family, tasks=table, first=row, resample="never")
        if isinstance(family, MetaWorldFamily):
            # the env of the task's class; PadObservation: one spec over the classes' bounds
            return TransformedEnv(family.make_env(task=int(table[row, 0])),
                                  Compose(DoubleToFloat(), PadObservation(39), sampler))
        return TransformedEnv(
            GymEnv(family.env_name, info_keys=list(family.info_keys) or None),
            Compose(DoubleToFloat(), sampler))

    def _rows(self, n: int) -> list[int]:
        return [self.task if self.task is not None else k % self.num_tasks for k in range(n)]

    def make_env(self) -> EnvBase:
        """One member per task (every member plays ``task`` when it is set)."""
        return SerialEnv(self.num_tasks, [lambda r=r: self._member(r)
                                          for r in self._rows(self.num_tasks)])

    def make_eval_env(self) -> SerialEnv:
        """``eval_episodes`` members, the tasks in turn (``task`` only when it is set)."""
        return SerialEnv(self.eval_episodes, [lambda r=r: self._member(r)
                                              for r in self._rows(self.eval_episodes)])


def make_models(config: SACMultiTaskConfig, env: Any) -> tuple[Any, Any]:
    """A tanh-Gaussian actor and a Q-network, each reading a task embedding beside the
    observation (and the action)."""
    spec = env.action_spec
    obs_dim = env.observation_spec["observation"].shape[-1]
    act_dim = spec.shape[-1]
    hidden = [config.hidden] * 2

    def embed() -> TensorDictModule:
        return TensorDictModule(TaskEmbedding(config.num_tasks, config.embedding),
                                in_keys=[("task", "id")], out_keys=["task_embedding"])

    actor = _sac.tanh_actor(
        TensorDictSequential(
            embed(),
            TensorDictModule(MLP(in_features=obs_dim + config.embedding,
                                 out_features=2 * act_dim, num_cells=hidden,
                                 activation_class=nn.ReLU),
                             in_keys=["observation", "task_embedding"], out_keys=["params"])),
        spec[0])
    qvalue = TensorDictSequential(
        embed(),
        TensorDictModule(MLP(in_features=obs_dim + config.embedding + act_dim, out_features=1,
                             num_cells=hidden, activation_class=nn.ReLU),
                         in_keys=["observation", "task_embedding", "action"],
                         out_keys=["state_action_value"]))
    return actor, qvalue


# build(config, run_dir, progress, state=None): sac_pendulum's concurrent SAC graph with
# these networks on config.make_env()'s batch of tasks
build = functools.partial(_sac.build, name=NAME, models=make_models, columns=COLUMNS)


# ---------------------------------------------------------------------------------- entry points
_pipeline = driver.OffPolicyPipeline(NAME, "multi-task SAC", SACMultiTaskConfig, build, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
