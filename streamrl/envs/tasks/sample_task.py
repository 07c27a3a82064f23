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

    **A natively batched env** (``batch_size=[N]``, a family with ``target = "env"``, e.g.
    ``PointNavigationEnv(batch_size=[N])``): every row has a task of its own, and row ``i``
    behaves exactly as the ``i``-th member of a ``SerialEnv`` of unbatched envs would: it
    draws the task stream of a generator seeded ``seed + i`` (``env.set_seed(s)``: ``s +
    i``), or takes the table's rows in order from row ``(first + i) % k`` (so ``first=0``
    puts held-out task ``i`` on row ``i``); its ids, trial counter and flags are its own. A
    partial reset (a ``"_reset"`` mask) moves only the rows it resets on; the family's
    ``apply(env, params, rows=rows)`` sets the new tasks of those rows only (``rows``: their
    flat indices, ``params``: ``[len(rows), num_params]``), and :meth:`TaskFamily.reward`
    gets the per-row parameters ``[*batch_size, num_params]``. A batched env with a family
    that sets tasks on a gymnasium env is refused (batch its members instead).

    >>> from streamrl.envs import PointNavigationEnv
    >>> from streamrl.envs.tasks import NavigationFamily
    >>> table = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    >>> nav = TransformedEnv(PointNavigationEnv(batch_size=[3]),
    ...                      SampleTask(NavigationFamily(), tasks=table))
    >>> td = nav.reset()
    >>> td["task", "id"].flatten().tolist(), torch.equal(nav.base_env.goal, table[[0, 1, 0]])
    ([0, 1, 0], True)
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
        self._seed = seed
        self._rows: _Rows | None = None  # a batched env's per-row state, from its first reset
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

    def _base(self) -> Any:
        env = self.parent
        while env is not None and hasattr(env, "base_env"):
            env = env.base_env
        return env

    def _target(self, env: Any = None) -> Any:
        """What the family's ``apply`` acts on: the gymnasium env under a ``GymEnv``, or the
        base env itself for a family whose ``target`` is ``"env"``."""
        if env is None:
            env = self._base()
        if self.family.target == "env" and env is not None:
            return env
        if env is None or not hasattr(env, "_env"):
            raise TypeError(f"SampleTask sets tasks on a gymnasium env: expected a GymEnv "
                            f"under it (batch each member: SerialEnv(n, lambda: "
                            f"TransformedEnv(GymEnv(...), SampleTask(...)))), found "
                            f"{type(env).__name__}")
        return env._env

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        base = self._base()
        batch = getattr(base, "batch_size", torch.Size())
        if self._rows is not None or len(batch):
            self._reset_rows(base, batch, td)
            return td
        new = self.params is None or self.resample == "reset" or (
            self.resample == "trial" and self._episodes >= self.episodes_per_trial)
        if new:
            self.task_id, self.params = self._next_task()
            self.family.apply(self._target(), self.params)
            self._episodes = 0
        self._episodes += 1
        self._new = new
        return td

    def _reset_rows(self, base: Any, batch: torch.Size, td: TensorDictBase | None) -> None:
        """The reset of a batched env: the rows of the ``"_reset"`` mask (all without one, or
        at the first reset) count an episode and move to their next task when theirs is
        over."""
        if self.family.target != "env":
            raise TypeError(
                f"SampleTask on a batched env sets one task per row, through a family with "
                f"target 'env': expected a family with target 'env' or an unbatched GymEnv "
                f"under it (batch each member: SerialEnv(n, lambda: TransformedEnv(GymEnv(...), "
                f"SampleTask(...)))), found {type(base).__name__} with batch_size "
                f"{list(batch)} and {type(self.family).__name__} (target "
                f"{self.family.target!r})")
        rows = self._rows
        if rows is None or rows.batch_size != batch:
            rows = self._rows = _Rows(batch, self._seed, self.family.num_params)
        mask = None if td is None or rows.params is None else td.get("_reset", None)
        if mask is None:
            reset = torch.ones(rows.n, dtype=torch.bool)
        elif mask.numel() != rows.n:
            raise ValueError(f"SampleTask: expected a '_reset' mask of {rows.n} rows (batch_size "
                             f"{list(batch)}), found shape {list(mask.shape)}")
        else:
            reset = mask.reshape(rows.n).bool().cpu()
        if rows.params is None or self.resample == "reset":
            new = reset.clone()
        elif self.resample == "trial":
            new = reset & (rows.episodes >= self.episodes_per_trial)
        else:
            new = torch.zeros_like(reset)
        if bool(new.any()):
            which = new.nonzero().flatten()
            _, params = rows.next_tasks(which, self.family, self.tasks, self.first)
            self.family.apply(self._target(base), params, rows=which)
            rows.episodes[which] = 0
        rows.episodes[reset] += 1
        rows.new = new

    def _ends_task(self, done: torch.Tensor) -> torch.Tensor:
        """Whether a step whose done flag is ``done`` ends the task (see the class doc)."""
        if self._rows is not None:
            if self.resample == "reset":
                return done.bool()
            if self.resample == "never":
                return torch.zeros_like(done, dtype=torch.bool)
            last = self._rows.episodes >= self.episodes_per_trial
            return done.bool() & last.reshape(done.shape).to(done.device)
        if self.resample == "reset" or (self.resample == "trial"
                                        and self._episodes >= self.episodes_per_trial):
            return done.bool()
        return torch.zeros_like(done, dtype=torch.bool)

    def _write(self, td: TensorDictBase, new: bool = False,
               end: torch.Tensor | None = None) -> TensorDictBase:
        if self._rows is not None:
            return self._rows.write(td, self.task_key, self._rows.new if new else None, end)
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
        return self._write(td_reset, new=self._new or self._rows is not None)

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        self._write(next_td, end=self._ends_task(next_td.get("done")))
        params = self.params if self._rows is None else self._rows.batched_params()
        assert params is not None
        reward = self.family.reward(next_td, params)
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


class _Rows:
    """The task state of a batched env, one entry per row (flattened batch): row ``i``'s
    generator (seeded ``seed + i``), tasks drawn, episodes of the current task, the task's
    id and parameters, and whether the last reset gave it a new task."""

    def __init__(self, batch_size: torch.Size, seed: int | None, num_params: int) -> None:
        self.batch_size, self.n = batch_size, batch_size.numel()
        self.generators = [torch.Generator() for _ in range(self.n)]
        for i, g in enumerate(self.generators):
            if seed is None:
                g.seed()
            else:
                g.manual_seed(seed + i)
        self.drawn = torch.zeros(self.n, dtype=torch.int64)
        self.episodes = torch.zeros(self.n, dtype=torch.int64)
        self.new = torch.zeros(self.n, dtype=torch.bool)
        self.ids = torch.zeros(self.n, dtype=torch.int64)
        self.params: torch.Tensor | None = None
        self.num_params = num_params

    def next_tasks(self, which: torch.Tensor, family: TaskFamily, tasks: torch.Tensor | None,
                   first: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Move rows ``which`` to their next task; their ids and parameters."""
        k = self.drawn[which]
        if tasks is not None:
            ids = (first + which + k) % len(tasks)
            params = tasks[ids]
        else:
            ids = k
            params = torch.cat([family.sample(1, self.generators[int(i)]) for i in which])
        self.drawn[which] += 1
        if self.params is None:
            self.params = torch.zeros(self.n, self.num_params)
        self.ids[which] = ids
        self.params[which] = params
        return ids, params

    def batched_params(self) -> torch.Tensor:
        assert self.params is not None
        return self.params.reshape(*self.batch_size, -1)

    def write(self, td: TensorDictBase, key: str, new: torch.Tensor | None,
              end: torch.Tensor | None) -> TensorDictBase:
        """Write the rows' tasks into ``td`` (``new``: the rows' new-task flags, None for
        none; ``end``: the task-end flags, None for none)."""
        if self.params is None:
            raise RuntimeError("SampleTask: step before the first reset (no task yet)")
        shape = td.batch_size
        if shape.numel() != self.n:
            raise ValueError(f"SampleTask: expected data of the env's batch_size "
                             f"{list(self.batch_size)}, found {list(shape)}")
        device = td.device
        td.set((key, "id"), self.ids.reshape(*shape, 1).to(device, copy=True))
        td.set((key, "params"), self.params.reshape(*shape, -1).to(device, copy=True))
        flag = new if new is not None else torch.zeros(self.n, dtype=torch.bool)
        td.set((key, "new"), flag.reshape(*shape, 1).to(device, copy=True))
        if end is None:
            end = torch.zeros((*shape, 1), dtype=torch.bool, device=device)
        td.set((key, "end"), end.reshape(*shape, 1))
        return td
