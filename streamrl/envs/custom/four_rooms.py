"""FourRoomsEnv: the four-rooms gridworld of the options framework, in pure torch."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import Bounded, Categorical, Composite, OneHot, Unbounded
from streamrl.envs.common import EnvBase

__all__ = ["FourRoomsEnv"]

#: Sutton, Precup and Singh (1999), figure 2: 13 x 13 with walls, 104 free cells, four rooms
#: joined by four hallways
LAYOUT = (
    "wwwwwwwwwwwww",
    "w     w     w",
    "w     w     w",
    "w           w",
    "w     w     w",
    "w     w     w",
    "ww wwww     w",
    "w     www www",
    "w     w     w",
    "w     w     w",
    "w           w",
    "w     w     w",
    "wwwwwwwwwwwww",
)
#: up, down, left, right as (row, column) moves
MOVES = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]])
#: the hallway between the two eastern rooms: the option-critic paper's first goal
EAST_HALLWAY = (7, 9)


class FourRoomsEnv(EnvBase):
    """The four-rooms gridworld (Sutton, Precup and Singh 1999; the option-critic paper's
    testbed, Bacon et al. 2017): 104 free cells in four rooms joined by hallways, four
    actions (up, down, left, right) that move as chosen with probability
    ``1 - slip`` (2/3 by default) and otherwise to one of the other three directions, chosen
    uniformly (a move into a wall stays put). Each episode starts in a free cell drawn
    uniformly (never the goal); reaching ``goal`` gives reward 1 and ends the episode
    (``terminated``), every other step gives 0; ``max_steps`` steps truncate it.

    Observation: ``observation``, the one-hot of the agent's free cell (``[104]``, float32;
    cells numbered row by row), ``position`` (its ``(row, column)``, int64) and ``step``.
    The goal is a ``(row, column)`` free cell, one for all rows or ``[*batch_size, 2]`` one per
    row, and can be moved between episodes (:attr:`goal`: the paper's transfer experiment
    moves it into the lower-right room). Natively batched; the randomness (starts and slips)
    comes from the env's own generator, seeded by :meth:`set_seed`.

    >>> env = FourRoomsEnv(batch_size=[2], seed=0)
    >>> td = env.reset()
    >>> td["observation"].shape, env.num_cells, td["position"].dtype
    (torch.Size([2, 104]), 104, torch.int64)
    >>> env.cell_index(torch.tensor(EAST_HALLWAY)).item()
    62
    """

    def __init__(self, *, goal: Any = EAST_HALLWAY, slip: float = 1 / 3, max_steps: int = 1000,
                 batch_size: Any = (), seed: int | None = None, device: Any = None) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, found {max_steps!r}")
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip must be a probability in [0, 1], found {slip!r}")
        super().__init__(device=device, batch_size=torch.Size(batch_size))
        self.max_steps, self.slip = max_steps, float(slip)
        free = torch.tensor([[c == " " for c in row] for row in LAYOUT])
        self.free = free
        #: the free cell index of each grid cell (-1 for walls)
        self.index = torch.full(free.shape, -1, dtype=torch.int64)
        self.index[free] = torch.arange(int(free.sum()))
        self.cells = free.nonzero()  # [104, 2]: the (row, column) of each free cell
        self.num_cells = len(self.cells)
        self.goal = goal
        shape = self.batch_size
        self.observation_spec = Composite(
            observation=OneHot(self.num_cells, (*shape, self.num_cells), dtype=torch.float32,
                               device=self.device),
            position=Bounded(0, len(LAYOUT) - 1, (*shape, 2), dtype=torch.int64,
                             device=self.device),
            step=Bounded(0, max_steps, (*shape, 1), dtype=torch.int64, device=self.device),
            shape=shape)
        self.action_spec = Categorical(4, shape, device=self.device)
        self.reward_spec = Unbounded((*shape, 1), dtype=torch.float32, device=self.device)
        self.rng = torch.Generator()
        self.set_seed(seed if seed is not None
                      else int(torch.empty((), dtype=torch.int64).random_().item()))

    @property
    def goal(self) -> torch.Tensor:
        """The goal cell ``(row, column)``: ``[2]``, or one per row ``[*batch_size, 2]``."""
        return self._goal

    @goal.setter
    def goal(self, value: Any) -> None:
        goal = torch.as_tensor(value, dtype=torch.int64)
        if goal.shape not in ((2,), (*self.batch_size, 2)):
            raise ValueError(f"goal must be a (row, column) cell, shape [2] or "
                             f"{[*self.batch_size, 2]}, found {list(goal.shape)}")
        cells = goal.reshape(-1, 2)
        inside = ((cells >= 0) & (cells < len(LAYOUT))).all(-1)
        clamped = cells.clamp(0, len(LAYOUT) - 1)
        ok = inside & self.free[clamped[:, 0], clamped[:, 1]]
        if not bool(ok.all()):
            raise ValueError(f"goal must be a free cell of the four rooms, found "
                             f"{cells[~ok][0].tolist()} (a wall or outside the 13 x 13 grid)")
        self._goal = goal.clone()

    def cell_index(self, position: torch.Tensor) -> torch.Tensor:
        """The free-cell number of ``(row, column)`` positions (``[..., 2]`` -> ``[...]``)."""
        return self.index[position[..., 0], position[..., 1]]

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(seed)

    def _goal_rows(self) -> torch.Tensor:
        return self._goal.expand(*self.batch_size, 2)

    def _observe(self, position: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.cell_index(position),
                                           self.num_cells).to(torch.float32)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        shape = self.batch_size
        goal = self.cell_index(self._goal_rows())
        # a uniform draw among the 103 cells that are not the row's goal
        draw = torch.randint(0, self.num_cells - 1, shape, generator=self.rng)
        start = draw + (draw >= goal).long()
        position = self.cells[start].reshape(*shape, 2)
        step = torch.zeros((*shape, 1), dtype=torch.int64)
        if tensordict is not None and "_reset" in tensordict.keys():
            keep = ~tensordict["_reset"].reshape(shape)  # a partial reset keeps the others
            position[keep] = tensordict["position"][keep]
            step[keep] = tensordict["step"][keep]
        return TensorDict({"observation": self._observe(position), "position": position,
                           "step": step}, batch_size=shape, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        shape = self.batch_size
        action = tensordict["action"].to(torch.int64).reshape(shape)
        # with probability slip, one of the three other directions, uniformly
        slipped = torch.rand(shape, generator=self.rng) < self.slip
        other = (action + 1 + torch.randint(0, 3, shape, generator=self.rng)) % 4
        move = MOVES[torch.where(slipped, other, action)]
        position = tensordict["position"]
        target = position + move
        blocked = ~self.free[target[..., 0], target[..., 1]]
        position = torch.where(blocked.unsqueeze(-1), position, target)
        terminated = (position == self._goal_rows()).all(-1, keepdim=True)
        step = tensordict["step"] + 1
        truncated = (step >= self.max_steps) & ~terminated
        return TensorDict({"observation": self._observe(position), "position": position,
                           "step": step, "reward": terminated.to(torch.float32),
                           "terminated": terminated, "truncated": truncated,
                           "done": terminated | truncated},
                          batch_size=shape, device=self.device)
