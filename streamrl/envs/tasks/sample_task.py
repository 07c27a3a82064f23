"""SampleTask: a transform that gives its env a task of a family at reset and writes the
task into every step's TensorDict."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Categorical, Composite, Unbounded
from streamrl.envs.tasks.family import TaskFamily
from streamrl.envs.transforms.transform import Transform

__all__ = ["SampleTask"]

_RESAMPLE = ("reset", "trial", "never")


class SampleTask(Transform):
    """Draw a task of ``family`` at reset, set it on the gymnasium env underneath, and write
    ``("task", "id")`` (int64, ``[1]``), ``("task", "params")`` (float32,
    ``[family.num_params]``), ``("task", "new")`` and ``("task", "end")`` into the reset's and
    every step's TensorDict; a family that
    changes the objective (:meth:`TaskFamily.reward`) rewrites each step's reward.

    Tasks come from ``tasks`` (a ``[k, num_params]`` table, e.g. held-out tasks: taken in
    order from row ``first``, cycling; the id is the row; a member of a multi-task batch
    keeps row ``first`` with ``resample="never"``) or are drawn from the family with the transform's
    own generator (the id counts the tasks drawn: 0, 1, ...). ``resample="reset"`` gives a
    new task at every reset, ``"trial"`` one every ``episodes_per_trial`` resets (RL^2's
    trials: a recurrent policy keeps its state across the episodes of one task), ``"never"``
    keeps the first (a member of a multi-task batch). ``("task", "new")`` (bool, ``[1]``) is
    True in the data of a reset that started a task and False elsewhere: the reset key of a
    recurrent module that must forget only between tasks (``GRUModule(..., in_keys=[...,
    ("task", "new")])``). ``("task", "end")`` (bool, ``[1]``) is True on the step that ends the
    task's last episode (the next reset draws a new task: every episode end with
    ``"reset"``, every ``episodes_per_trial``-th with ``"trial"``, never with ``"never"``)
    and False elsewhere: RL^2's trial end, the ``done`` of a value estimator that must not
    cut the return at the episode ends inside a trial (the env's done flag as the env under
    this transform reports it).
    The generator is seeded by ``seed`` and again whenever the env is (``env.set_seed(s)``
    seeds it with ``s``), so a seeded env draws a reproducible stream of tasks, and the
    members of a batched env (seeded ``s``, ``s + 1``, ...) draw different ones.

    It belongs inside one unbatched env over a :class:`~streamrl.envs.GymEnv` (batch each
    member: ``SerialEnv(n, lambda: TransformedEnv(GymEnv(...), SampleTask(...)))``), or over
    the streamrl env a family with ``target = "env"`` sets directly (e.g.
    :class:`~streamrl.envs.tasks.NavigationFamily` on a ``PointNavigationEnv``).

    >>> from streamrl.envs import GymEnv, TransformedEnv
    >>> from streamrl.envs.tasks import PendulumFamily
    >>> env = TransformedEnv(GymEnv("Pendulum-v1"), SampleTask(PendulumFamily(), seed=0))
    >>> td = env.reset()
    >>> td["task", "id"].tolist(), td["task", "params"].shape
    ([0], torch.Size([2]))
    >>> env.base_env._env.unwrapped.g == float(td["task", "params"][1])
    True
    """

    def __init__(self, family: TaskFamily, *, tasks: Any = None, resample: str = "reset",
                 seed: int | None = None, first: int = 0, episodes_per_trial: int = 1,
                 task_key: str = "task") -> None:
        if not isinstance(family, TaskFamily):
            raise TypeError(f"family must be a TaskFamily, found {type(family).__name__}")
        if resample not in _RESAMPLE:
            raise ValueError(f"resample must be one of {list(_RESAMPLE)}, found {resample!r}")
        super().__init__()
        if isinstance(episodes_per_trial, bool) or not isinstance(episodes_per_trial, int) or (
                episodes_per_trial < 1):
            raise ValueError(f"episodes_per_trial must be an int >= 1, found "
                             f"{episodes_per_trial!r}")
        self.family, self.resample, self.task_key = family, resample, task_key
        self.episodes_per_trial = episodes_per_trial
        if tasks is not None:
            tasks = torch.as_tensor(tasks, dtype=torch.float32)
            if tasks.ndim != 2 or tasks.shape[1] != family.num_params or not len(tasks):
                raise ValueError(f"tasks must be a [k, {family.num_params}] table of "
                                 f"{family.param_names}, found shape {list(tasks.shape)}")
        if isinstance(first, bool) or not isinstance(first, int) or first < 0 or (
                tasks is not None and first >= len(tasks)) or (tasks is None and first):
            raise ValueError(f"first must be a row of tasks (0 .. {len(tasks) - 1}), found "
                             f"{first!r}" if tasks is not None else
                             f"first picks a row of tasks: without tasks it must be 0, found "
                             f"{first!r}")
        self.tasks, self.first = tasks, first
        self.generator = torch.Generator()
        self._env_seeded(seed)

    # -- the task -----------------------------------------------------------------------
    def _env_seeded(self, seed: int | None) -> None:
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)
        self._drawn = 0  # tasks drawn since the seed
        self._episodes = 0  # resets since the task was drawn
        self._new = False  # whether the last reset drew a task
        self.task_id: int | None = None
        self.params: torch.Tensor | None = None

    def _next_task(self) -> tuple[int, torch.Tensor]:
        k = self._drawn
        self._drawn += 1
        if self.tasks is not None:
            row = (self.first + k) % len(self.tasks)
            return row, self.tasks[row]
        return k, self.family.sample(1, self.generator)[0]

    def _target(self) -> Any:
        """What the family's ``apply`` acts on: the gymnasium env under a ``GymEnv``, or the
        base env itself for a family whose ``target`` is ``"env"``."""
        env = self.parent
        while env is not None and hasattr(env, "base_env"):
            env = env.base_env
        if self.family.target == "env" and env is not None:
            return env
        if env is None or not hasattr(env, "_env"):
            raise TypeError(f"SampleTask sets tasks on a gymnasium env: expected a GymEnv "
                            f"under it (batch each member: SerialEnv(n, lambda: "
                            f"TransformedEnv(GymEnv(...), SampleTask(...)))), found "
                            f"{type(env).__name__}")
        return env._env

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        new = self.params is None or self.resample == "reset" or (
            self.resample == "trial" and self._episodes >= self.episodes_per_trial)
        if new:
            self.task_id, self.params = self._next_task()
            self.family.apply(self._target(), self.params)
            self._episodes = 0
        self._episodes += 1
        self._new = new
        return td

    def _ends_task(self, done: torch.Tensor) -> torch.Tensor:
        """Whether a step whose done flag is ``done`` ends the task (see the class doc)."""
        if self.resample == "reset" or (self.resample == "trial"
                                        and self._episodes >= self.episodes_per_trial):
            return done.bool()
        return torch.zeros_like(done, dtype=torch.bool)

    def _write(self, td: TensorDictBase, new: bool = False,
               end: torch.Tensor | None = None) -> TensorDictBase:
        if self.params is None:
            raise RuntimeError("SampleTask: step before the first reset (no task yet)")
        shape = td.batch_size
        td.set((self.task_key, "id"), torch.full((*shape, 1), self.task_id, dtype=torch.int64))
        td.set((self.task_key, "params"), self.params.expand(*shape, -1).clone())
        td.set((self.task_key, "new"), torch.full((*shape, 1), new, dtype=torch.bool))
        if end is None:
            end = torch.zeros((*shape, 1), dtype=torch.bool)
        td.set((self.task_key, "end"), end.reshape(*shape, 1))
        return td

    # -- the transform ------------------------------------------------------------------
    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError("SampleTask sets an env's task: use it inside a TransformedEnv")

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._write(td_reset, new=self._new)

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        self._write(next_td, end=self._ends_task(next_td.get("done")))
        assert self.params is not None
        reward = self.family.reward(next_td, self.params)
        if reward is not None:
            old = next_td.get("reward")
            next_td.set("reward", reward.to(old.dtype).reshape(old.shape))
        return next_td

    def transform_observation_spec(self, spec: Any) -> Any:
        """Add the task's id, parameters and new-task and task-end flags under ``task_key``."""
        shape, device = spec.shape, getattr(spec, "device", None)
        spec[self.task_key] = Composite(
            id=Unbounded((*shape, 1), dtype=torch.int64, device=device),
            params=Unbounded((*shape, self.family.num_params), dtype=torch.float32,
                             device=device),
            new=Categorical(2, (*shape, 1), dtype=torch.bool, device=device),
            end=Categorical(2, (*shape, 1), dtype=torch.bool, device=device),
            shape=shape)
        return spec

    def __repr__(self) -> str:
        held = "" if self.tasks is None else f", tasks={len(self.tasks)}"
        return f"SampleTask({self.family!r}, resample={self.resample!r}{held})"
