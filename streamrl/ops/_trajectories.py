"""Trajectory bookkeeping shared by the collecting operators."""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase


class TrajectoryIds:
    """Gives every running episode of a batch of envs a unique id.

    ``step(done)`` returns the ids of the step just taken and starts a new trajectory for every
    env whose ``done`` is set, so ids never repeat within a run (and across runs of one source,
    when its state is restored).

    >>> ids = TrajectoryIds(2)
    >>> ids.step(torch.tensor([False, True])).tolist(), ids.step(torch.tensor([False, False])).tolist()
    ([0, 1], [0, 2])
    """

    def __init__(self, num_envs: int, first_id: int = 0):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.current = torch.arange(first_id, first_id + num_envs)
        self.next_id = first_id + num_envs

    def step(self, done: torch.Tensor) -> torch.Tensor:
        done = done.reshape(-1)
        if done.shape != self.current.shape:
            raise ValueError(
                f"expected a done flag per env ({self.current.numel()}), found shape {tuple(done.shape)}"
            )
        ids = self.current.clone()
        n = int(done.sum())
        if n:
            self.current[done] = torch.arange(self.next_id, self.next_id + n)
            self.next_id += n
        return ids

    def step_many(self, done: torch.Tensor) -> torch.Tensor:
        """``step`` for ``T`` steps at once: ``done`` is ``[T, num_envs]``; returns the ids of
        each step ``[T, num_envs]``, the same as ``T`` calls of :meth:`step` would."""
        if done.ndim != 2 or done.shape[1] != self.current.numel():
            raise ValueError(
                f"expected done flags of shape [T, {self.current.numel()}], found "
                f"{tuple(done.shape)}"
            )
        cur = self.current
        n = int(done.sum())
        if not n:
            return cur.expand(done.shape).clone()
        # new ids are handed out in (step, env) order, and every new id exceeds every
        # current one: the id of (t, env) is the latest id started before t, else current
        started = torch.cumsum(done.reshape(-1).to(torch.int64), 0).reshape(done.shape)
        events = torch.where(done, started + (self.next_id - 1), -1)
        latest = torch.cummax(events, 0).values
        ids = cur.expand(done.shape).clone()
        ids[1:] = torch.maximum(latest[:-1], cur)
        self.current = torch.maximum(latest[-1], cur)
        self.next_id += n
        return ids

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        return {"current": self.current.clone(), "next_id": self.next_id}

    def load_state_dict(self, state: dict) -> None:
        current = torch.as_tensor(state["current"])
        if current.shape != self.current.shape:
            raise ValueError(
                f"expected ids for {self.current.numel()} envs, found {current.numel()}"
            )
        self.current = current.clone()
        self.next_id = int(state["next_id"])


def set_collector_entries(td: TensorDictBase, **entries: torch.Tensor) -> None:
    """Write ``("collector", name)`` entries through a *new* ``collector`` sub-TensorDict.

    ``step_mdp`` carries root entries to the next step by reference, so writing a leaf into a
    shared ``collector`` sub-TensorDict would rewrite the previous step's values too.
    """
    old = td.get("collector", None)
    fields = dict(old.items()) if old is not None else {}
    fields.update(entries)
    td.set("collector", TensorDict(fields, batch_size=td.batch_size))
