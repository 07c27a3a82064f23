"""TaskFamily: a set of tasks of one gym env, told apart by a few parameters drawn from
ranges, and the families meta-RL papers use (CartPole and Pendulum physics, HalfCheetah
target velocity and direction)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDictBase

__all__ = [
    "CartPoleFamily",
    "HalfCheetahDirFamily",
    "HalfCheetahVelFamily",
    "NavigationFamily",
    "PendulumFamily",
    "TaskFamily",
]


class TaskFamily:
    """Tasks of the gym env ``env_name``, each a vector of parameters (``param_names``, in
    that order) drawn uniformly from ``ranges``: ``{name: (low, high)}`` (``low == high``
    fixes a parameter). A subclass says what a task changes: :meth:`apply` sets the
    parameters on one gymnasium env (its physics), :meth:`reward` recomputes a step's reward
    (a task that changes the objective, not the physics); :attr:`info_keys` names the info
    entries :meth:`reward` reads (the env's ``GymEnv(..., info_keys=...)``).

    >>> family = PendulumFamily(m=(0.5, 2.0))
    >>> family.param_names
    ('m', 'g')
    >>> tasks = family.sample(3, torch.Generator().manual_seed(0))
    >>> tasks.shape, bool(((tasks[:, 0] >= 0.5) & (tasks[:, 0] <= 2.0)).all())
    (torch.Size([3, 2]), True)
    """

    #: the gym id whose tasks these are ("" for a streamrl env)
    env_name: str = ""
    #: info entries the step's reward needs (see :meth:`reward`)
    info_keys: tuple[str, ...] = ()
    #: what :meth:`apply` sets the task on: "gym" (the gymnasium env under a ``GymEnv``) or
    #: "env" (the streamrl env itself, e.g. a pure-torch env)
    target: str = "gym"

    def __init__(self, ranges: Mapping[str, tuple[float, float]]) -> None:
        checked: dict[str, tuple[float, float]] = {}
        for name, bounds in ranges.items():
            try:
                low, high = (float(b) for b in bounds)
            except (TypeError, ValueError):
                raise ValueError(f"{type(self).__name__}: {name} must be a (low, high) pair of "
                                 f"numbers, found {bounds!r}") from None
            if not low <= high:
                raise ValueError(f"{type(self).__name__}: {name} needs low <= high, found "
                                 f"({low:g}, {high:g})")
            checked[name] = (low, high)
        self.ranges = checked

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.ranges)

    @property
    def num_params(self) -> int:
        return len(self.ranges)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` tasks, ``[n, num_params]`` float32, uniform in the ranges."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, found {n!r}")
        low = torch.tensor([r[0] for r in self.ranges.values()])
        high = torch.tensor([r[1] for r in self.ranges.values()])
        u = torch.rand(n, self.num_params, generator=generator)
        return low + u * (high - low)

    def check(self, params: torch.Tensor) -> torch.Tensor:
        """``params`` as a float32 ``[num_params]`` vector (``ValueError`` naming the family,
        the expected and the found shape otherwise)."""
        params = torch.as_tensor(params, dtype=torch.float32)
        if params.shape != (self.num_params,):
            raise ValueError(f"{type(self).__name__}: a task is {self.num_params} parameters "
                             f"{self.param_names}, found shape {list(params.shape)}")
        return params

    def apply(self, env: Any, params: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """Set task ``params`` on ``env`` (a gymnasium env, or the streamrl env itself when
        :attr:`target` is ``"env"``): nothing by default. A family with ``target = "env"``
        also sets tasks on the rows of a batched env: ``rows`` (int64 flat row indices)
        get ``params`` ``[len(rows), num_params]``, the other rows keep theirs (what
        :class:`~streamrl.envs.tasks.SampleTask` calls on a batched env); gym families are
        only called with ``rows=None``."""

    def reward(self, next_td: TensorDictBase, params: torch.Tensor) -> torch.Tensor | None:
        """The step's reward under task ``params`` (``None``: the env's own)."""
        return None

    def __repr__(self) -> str:
        ranges = ", ".join(f"{k}=({lo:g}, {hi:g})" for k, (lo, hi) in self.ranges.items())
        return f"{type(self).__name__}({ranges})"


class CartPoleFamily(TaskFamily):
    """CartPole-v1 with the pole's half-length ``length`` and mass ``masspole`` per task
    (gymnasium's defaults 0.5 and 0.1); the derived ``total_mass`` and ``polemass_length``
    follow."""

    env_name = "CartPole-v1"

    def __init__(self, length: tuple[float, float] = (0.25, 1.0),
                 masspole: tuple[float, float] = (0.05, 0.5)) -> None:
        super().__init__({"length": length, "masspole": masspole})

    def apply(self, env: Any, params: torch.Tensor) -> None:
        cartpole = env.unwrapped
        cartpole.length, cartpole.masspole = float(params[0]), float(params[1])
        cartpole.total_mass = cartpole.masspole + cartpole.masscart
        cartpole.polemass_length = cartpole.masspole * cartpole.length


class PendulumFamily(TaskFamily):
    """Pendulum-v1 with the mass ``m`` and gravity ``g`` per task (gymnasium's defaults 1
    and 10)."""

    env_name = "Pendulum-v1"

    def __init__(self, m: tuple[float, float] = (0.5, 2.0),
                 g: tuple[float, float] = (5.0, 15.0)) -> None:
        super().__init__({"m": m, "g": g})

    def apply(self, env: Any, params: torch.Tensor) -> None:
        pendulum = env.unwrapped
        pendulum.m, pendulum.g = float(params[0]), float(params[1])


def _info(next_td: TensorDictBase, key: str, family: TaskFamily) -> torch.Tensor:
    value = next_td.get(key, None)
    if value is None:
        raise KeyError(f"{type(family).__name__} reads {key!r} from the step's info: build the "
                       f"env with GymEnv({family.env_name!r}, info_keys={list(family.info_keys)})")
    return value.to(torch.float32)


class HalfCheetahVelFamily(TaskFamily):
    """HalfCheetah-v5 running at a target ``velocity`` per task (Finn et al. 2017): the
    reward is ``-|x_velocity - velocity|`` plus the env's control cost (``reward_ctrl``)."""

    env_name = "HalfCheetah-v5"
    info_keys = ("x_velocity", "reward_ctrl")

    def __init__(self, velocity: tuple[float, float] = (0.0, 2.0)) -> None:
        super().__init__({"velocity": velocity})

    def reward(self, next_td: TensorDictBase, params: torch.Tensor) -> torch.Tensor:
        speed = _info(next_td, "x_velocity", self)
        ctrl = _info(next_td, "reward_ctrl", self)
        return (-(speed - params[0]).abs() + ctrl).reshape(-1)


class HalfCheetahDirFamily(TaskFamily):
    """HalfCheetah-v5 running forwards or backwards (Finn et al. 2017): a task's
    ``direction`` is drawn in ``[-1, 1]`` and its sign kept; the reward is ``sign *
    x_velocity`` plus the env's control cost."""

    env_name = "HalfCheetah-v5"
    info_keys = ("x_velocity", "reward_ctrl")

    def __init__(self) -> None:
        super().__init__({"direction": (-1.0, 1.0)})

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        signs = torch.sign(super().sample(n, generator))
        return torch.where(signs == 0, torch.ones_like(signs), signs)

    def reward(self, next_td: TensorDictBase, params: torch.Tensor) -> torch.Tensor:
        speed = _info(next_td, "x_velocity", self)
        ctrl = _info(next_td, "reward_ctrl", self)
        return (params[0] * speed + ctrl).reshape(-1)


class NavigationFamily(TaskFamily):
    """The goal of a :class:`~streamrl.envs.custom.PointNavigationEnv` per task, each
    coordinate drawn from ``goal`` (the MAML paper's ``[-0.5, 0.5]`` square)."""

    target = "env"

    def __init__(self, goal: tuple[float, float] = (-0.5, 0.5)) -> None:
        super().__init__({"goal_x": goal, "goal_y": goal})

    def apply(self, env: Any, params: torch.Tensor, rows: torch.Tensor | None = None) -> None:
        """``env.goal = params`` (one goal, or one per row), or with ``rows`` the goals of
        those rows of a batched env (flat indices; the others kept)."""
        if not hasattr(env, "goal"):
            raise TypeError(f"NavigationFamily sets the goal of a PointNavigationEnv, found "
                            f"{type(env).__name__}")
        if rows is None:
            env.goal = params
            return
        goal = env.goal.expand(*env.batch_size, 2).clone()
        goal.view(-1, 2)[rows] = torch.as_tensor(params, dtype=goal.dtype).reshape(-1, 2)
        env.goal = goal
