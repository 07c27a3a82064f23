"""Meta-World's benchmarks (MT1/ML1, MT10/ML10 ...) as a task family, where the optional
``metaworld`` package is installed (``pip install streamrl[metaworld]``), and the batched
env of one member per class of a multi-class benchmark."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from typing import Any

import numpy as np
import torch

from streamrl.envs.batched import SerialEnv
from streamrl.envs.libs.gym import GymWrapper
from streamrl.envs.tasks.family import TaskFamily
from streamrl.envs.tasks.sample_task import SampleTask
from streamrl.envs.transforms import Compose, DoubleToFloat, PadObservation, TransformedEnv

__all__ = ["MetaWorldFamily", "metaworld_batch"]

#: benchmarks of one env class (``env_name`` names it) and of several
_SINGLE = ("MT1", "ML1")
_MULTI = ("MT10", "MT25", "MT50", "ML10", "ML25", "ML45")
#: the observation's width, every v3 class's (hand, gripper, two objects, their previous
#: frame, the goal)
_OBS_WIDTH = 39


def _import_metaworld() -> Any:
    """The ``metaworld`` module, made to run on MuJoCo >= 4 (see :func:`_patch_mocap_welds`)."""
    if importlib.util.find_spec("metaworld") is None:
        raise ImportError("Meta-World families need the optional metaworld package: "
                          "pip install 'streamrl[metaworld]'")
    from streamrl.envs.libs._mujoco_gl import ensure_gl_backend

    ensure_gl_backend()  # before metaworld imports mujoco
    metaworld = importlib.import_module("metaworld")
    _patch_mocap_welds()
    return metaworld


def _patch_mocap_welds() -> None:
    # Meta-World 3.1 (built for MuJoCo 3.3) writes the 11 numbers of a MuJoCo 3 weld
    # constraint (anchor, relative position, relative quaternion, torque scale) into each
    # row of model.eq_data in its env constructor; MuJoCo 4 rows have a 12th, which is 0
    # when a weld's relative pose is given (1: taken from qpos0), so every env constructor
    # fails with "could not broadcast input array from shape (11,) into shape (12,)". The
    # same 11 numbers followed by zeros set the same weld on either version.
    import mujoco
    from metaworld.sawyer_xyz_env import SawyerMocapBase

    if getattr(SawyerMocapBase.reset_mocap_welds, "_streamrl_patched", False):
        return
    if int(getattr(mujoco, "mjNEQDATA", 11)) == 11:
        return

    def reset_mocap_welds(self: Any) -> None:
        model = self.model
        if model.nmocap > 0 and model.eq_data is not None:
            weld = np.zeros(model.eq_data.shape[1])
            weld[:11] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]
            for i in range(model.eq_data.shape[0]):
                if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                    model.eq_data[i] = weld

    reset_mocap_welds._streamrl_patched = True  # type: ignore[attr-defined]
    SawyerMocapBase.reset_mocap_welds = reset_mocap_welds


class MetaWorldFamily(TaskFamily):
    """The tasks of a Meta-World benchmark: ``"MT1"`` / ``"ML1"`` (the 50 goals of one env
    class, ``env_name`` such as ``"reach-v3"``) or ``"MT10"``, ``"ML10"``, ``"MT50"``,
    ``"ML45"`` ... (several classes). A task's one parameter, ``index``, is its row in
    :attr:`tasks`: the benchmark's training tasks, then its test tasks (ML's held-out
    goals or classes; MT has none). :meth:`train_tasks` / :meth:`test_tasks` give those
    rows as ``[k, 1]`` tables for ``SampleTask(family, tasks=...)``; :meth:`sample` draws
    training tasks (row ``i`` of a multi-class benchmark is of class ``i mod`` the number of
    classes, so ``sample(10)`` of MT10 is one goal per class); :meth:`apply` sets a task on
    a Meta-World env of its class (``env.set_task``; the goal moves at the next reset).
    ``seed`` seeds the benchmark's goals (Meta-World's own ``seed=``; the default 0 keeps
    the task list the same from run to run; None draws new goals). Building the benchmark
    resets each class's env 50 times (about 0.5 s per class).

    :meth:`make_env` builds the env of a class: a :class:`~streamrl.envs.GymWrapper` over
    the Meta-World env (4 actions in ``[-1, 1]``, a float64 ``"observation"`` of 39, with
    the goal's position in its last 3 for MT, zeros for ML), with ``"success"`` read from
    the step's info: 1.0 on a step whose state solves the task (Meta-World never ends an
    episode on success; episodes are truncated after ``max_path_length``, 500 steps).

    >>> family = MetaWorldFamily("ML1", "reach-v3")  # doctest: +SKIP
    >>> env = TransformedEnv(family.make_env(), Compose(  # doctest: +SKIP
    ...     DoubleToFloat(), SampleTask(family, tasks=family.test_tasks(), resample="reset")))
    >>> td = env.rollout(3)  # doctest: +SKIP
    >>> td["task", "params"][0].tolist(), td["next", "success"].shape  # doctest: +SKIP
    ([50.0], torch.Size([3]))
    """

    def __init__(self, benchmark: str = "ML1", env_name: str | None = None, *,
                 seed: int | None = 0) -> None:
        if benchmark not in _SINGLE + _MULTI:
            raise ValueError(f"benchmark must be one of {list(_SINGLE + _MULTI)}, found "
                             f"{benchmark!r}")
        metaworld = _import_metaworld()
        if benchmark in _SINGLE:
            names = list(metaworld.ALL_V3_ENVIRONMENTS)
            if env_name not in names:
                close = difflib.get_close_matches(str(env_name), names, n=3, cutoff=0.5)
                raise ValueError(f"{benchmark} needs env_name, one of Meta-World's "
                                 f"{len(names)} env classes, found {env_name!r}"
                                 + (f" (did you mean {', '.join(close)}?)" if close else "")
                                 + f"; they are {', '.join(names[:4])}, ...")
            bench = getattr(metaworld, benchmark)(env_name, seed=seed)
        else:
            if env_name is not None:
                raise ValueError(f"{benchmark} has several env classes: env_name must be "
                                 f"None, found {env_name!r}")
            bench = getattr(metaworld, benchmark)(seed=seed)
        self.benchmark, self.seed = benchmark, seed
        self.env_name = env_name if env_name is not None else benchmark
        #: the Meta-World tasks: the training tasks, then the test tasks
        self.tasks: list[Any] = [*bench.train_tasks, *bench.test_tasks]
        self.num_train = len(bench.train_tasks)
        classes = dict(bench.train_classes)
        classes.update(dict(bench.test_classes or {}))
        #: the env classes by name: the training classes, then the test-only ones
        self.classes: dict[str, type] = classes
        self._names = list(classes)
        super().__init__({"index": (0.0, float(len(self.tasks) - 1))})
        # the training rows of each class, for a class-balanced sample
        self._train_rows = [self._rows(name, 0, self.num_train) for name in self._names]
        self._train_rows = [rows for rows in self._train_rows if rows]

    # -- the tasks ------------------------------------------------------------------------
    def _rows(self, env_name: str | None, start: int, stop: int) -> list[int]:
        if env_name is not None and env_name not in self.classes:
            raise ValueError(f"{self.benchmark} has no env class {env_name!r}: its classes "
                             f"are {self._names}")
        return [i for i in range(start, stop)
                if env_name is None or self.tasks[i].env_name == env_name]

    def train_tasks(self, env_name: str | None = None) -> torch.Tensor:
        """The rows of the benchmark's training tasks (of class ``env_name``, if given) as a
        ``[k, 1]`` float32 table."""
        return torch.tensor(self._rows(env_name, 0, self.num_train),
                            dtype=torch.float32).reshape(-1, 1)

    def test_tasks(self, env_name: str | None = None) -> torch.Tensor:
        """The rows of the benchmark's test tasks (its held-out goals or classes; of class
        ``env_name``, if given) as a ``[k, 1]`` float32 table (``ValueError`` where there are
        none: the MT benchmarks have no test split)."""
        rows = self._rows(env_name, self.num_train, len(self.tasks))
        if not rows:
            where = f" of {env_name!r}" if env_name is not None else ""
            raise ValueError(f"{self.benchmark} has no test tasks{where} (Meta-World's MT "
                             f"benchmarks have none: use an ML benchmark for held-out tasks)")
        return torch.tensor(rows, dtype=torch.float32).reshape(-1, 1)

    def index(self, params: torch.Tensor) -> int:
        """The row of :attr:`tasks` that task ``params`` names (``ValueError`` otherwise)."""
        value = float(self.check(params)[0])
        if value != int(value) or not 0 <= value < len(self.tasks):
            raise ValueError(f"{type(self).__name__}({self.benchmark}): a task is a row of its "
                             f"{len(self.tasks)} tasks (0 .. {len(self.tasks) - 1}), found "
                             f"{value:g}")
        return int(value)

    def class_of(self, params: torch.Tensor) -> str:
        """The env class of task ``params``: ``"reach-v3"`` ..."""
        return str(self.tasks[self.index(params)].env_name)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` training tasks, ``[n, 1]``: row ``i`` a uniformly drawn task of class ``i
        mod`` the number of training classes."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, found {n!r}")
        out = torch.empty(n, 1)
        for i in range(n):
            rows = self._train_rows[i % len(self._train_rows)]
            out[i, 0] = rows[int(torch.randint(len(rows), (), generator=generator))]
        return out

    def apply(self, env: Any, params: torch.Tensor) -> None:
        """Set task ``params`` on ``env``, a Meta-World env (or a gymnasium wrapper of one)
        of the task's class; the goal moves at the next reset."""
        task = self.tasks[self.index(params)]
        mw_env = getattr(env, "unwrapped", env)
        cls = self.classes[task.env_name]
        if not isinstance(mw_env, cls):
            raise ValueError(f"{type(self).__name__}({self.benchmark}): task "
                             f"{self.index(params)} is of {task.env_name!r} ({cls.__name__}), "
                             f"the env is a {type(mw_env).__name__}")
        mw_env.set_task(task)

    # -- the env --------------------------------------------------------------------------
    def make_env(self, env_name: str | None = None, *, task: int | None = None,
                 max_episode_steps: int | None = None, success: bool = True,
                 **wrapper_kwargs: Any) -> GymWrapper:
        """A :class:`~streamrl.envs.GymWrapper` over a new Meta-World env of class
        ``env_name`` (the class of ``task``, or the benchmark's only class, when None) with
        task ``task`` set (by default the first of its class: wrap it in a
        :class:`~streamrl.envs.tasks.SampleTask` to choose). ``success`` reads the step
        info's ``"success"`` into the data; ``max_episode_steps`` shortens the episodes
        (Meta-World's default is 500). ``wrapper_kwargs`` go to ``GymWrapper``."""
        if task is not None:
            name = self.class_of(torch.tensor([float(task)]))
            if env_name is not None and env_name != name:
                raise ValueError(f"task {task} is of {name!r}, not of env_name={env_name!r}")
            env_name = name
        elif env_name is None:
            if len(self.classes) != 1:
                raise ValueError(f"{self.benchmark} has {len(self.classes)} env classes: "
                                 f"name one with env_name (one of {self._names[:4]}, ...) "
                                 f"or task")
            env_name = self._names[0]
        rows = self._rows(env_name, 0, len(self.tasks))
        if max_episode_steps is not None and (isinstance(max_episode_steps, bool) or not
                                              isinstance(max_episode_steps, int) or
                                              max_episode_steps < 1):
            raise ValueError(f"max_episode_steps must be an int >= 1, found "
                             f"{max_episode_steps!r}")
        env = self.classes[env_name]()
        try:
            if max_episode_steps is not None:
                env.max_path_length = max_episode_steps
            self.apply(env, torch.tensor([float(rows[0] if task is None else task)]))
            # set_task makes an MT task's goal observable and recomputes the bounds the
            # steps clip to, but leaves env.observation_space (the spec's source) at the
            # constructor's goal-hidden bounds (the goal's 3 entries fixed at 0)
            env.observation_space = env.sawyer_observation_space
            if success:
                wrapper_kwargs["info_keys"] = [*(wrapper_kwargs.get("info_keys") or ()),
                                               "success"]
            return GymWrapper(env, **wrapper_kwargs)
        except BaseException:
            env.close()
            raise

    def __repr__(self) -> str:
        name = f", {self.env_name!r}" if self.benchmark in _SINGLE else ""
        return (f"MetaWorldFamily({self.benchmark!r}{name}, seed={self.seed}: "
                f"{self.num_train} train, {len(self.tasks) - self.num_train} test tasks)")


def metaworld_batch(family: MetaWorldFamily, *, split: str = "train", resample: str = "never",
                    episodes_per_trial: int = 1, max_episode_steps: int | None = None,
                    seed: int | None = None) -> SerialEnv:
    """A :class:`~streamrl.envs.SerialEnv` of one member per env class of ``family``'s
    ``split`` (``"train"``: MT10's or ML10's 10 training classes; ``"test"``: ML10's 5
    held-out ones), in the benchmark's order; each member is ``TransformedEnv(
    family.make_env(...), Compose(DoubleToFloat(), PadObservation(39), SampleTask(...)))``:
    float32 observations of one spec (Meta-World's are 39 wide for every class; their
    bounds differ, so the spec is ``Unbounded``).

    ``resample="never"`` (multi-task RL, MT10's fixed goals): member ``k`` plays the first
    task of class ``k`` for good, its ``("task", "id")`` is ``k`` (the task embedding's
    index). ``"reset"`` / ``"trial"`` (meta-RL over ML10's classes): member ``k`` draws the
    tasks of class ``k`` in turn (``SampleTask(..., tasks=<the class's tasks>)``), a new
    goal at each reset or each ``episodes_per_trial`` resets; the id is then the goal's row
    in its class's table, and the class is the member's position in the batch.
    ``seed`` seeds the batch (member ``k`` gets ``seed + k``)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', found {split!r}")
    if not isinstance(family, MetaWorldFamily):
        raise TypeError(f"family must be a MetaWorldFamily, found {type(family).__name__}")
    table = family.train_tasks if split == "train" else family.test_tasks
    names = list(dict.fromkeys(family.tasks[int(r)].env_name for r in table()[:, 0]))
    first_rows = torch.stack([table(name)[0] for name in names])

    def member(k: int) -> TransformedEnv:
        name = names[k]
        if resample == "never":
            sampler = SampleTask(family, tasks=first_rows, first=k, resample="never")
        else:
            sampler = SampleTask(family, tasks=table(name), resample=resample,
                                 episodes_per_trial=episodes_per_trial)
        # the classes' observation bounds differ (their goal ranges): PadObservation's
        # unbounded spec of the same width is one spec for all
        return TransformedEnv(family.make_env(name, max_episode_steps=max_episode_steps),
                              Compose(DoubleToFloat(), PadObservation(_OBS_WIDTH), sampler))

    env = SerialEnv(len(names), [lambda k=k: member(k) for k in range(len(names))])
    if seed is not None:
        env.set_seed(seed)
    return env
