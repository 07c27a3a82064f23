"""TrajectoryBatcher: stacks per-step transitions of a batch of envs into [envs x time] batches."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.graph import Operator
from streamrl.ops._trajectories import TrajectoryIds, set_collector_entries

__all__ = ["TrajectoryBatcher"]


class TrajectoryBatcher(Operator):
    """Collects transitions (each with batch size ``[*envs]``) until a batch holds
    ``frames_per_batch`` frames, then emits them stacked as ``[*envs, T]`` with
    ``("collector", "traj_ids")`` (a new id each time an env's episode ends).

    A partial batch left when the stream ends is emitted by :meth:`finish` (set
    ``drop_last=True`` to drop it). The state holds the trajectory-id counter (after a restore
    every env starts a new trajectory, with an id the saved run never used) and the steps of
    a partial batch.
    """

    state_keys = ("traj_ids", "pending")

    def __init__(self, frames_per_batch: int, *, drop_last: bool = False):
        if not isinstance(frames_per_batch, int) or frames_per_batch < 1:
            raise ValueError(f"frames_per_batch must be a positive int, got {frames_per_batch!r}")
        self.frames_per_batch = frames_per_batch
        self.drop_last = drop_last
        self._steps: list[TensorDictBase] = []
        self._traj: TrajectoryIds | None = None
        self._env_batch: torch.Size | None = None
        self._renew_ids = False

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        td = inputs["in"]
        if not isinstance(td, TensorDictBase):
            raise TypeError(f"TrajectoryBatcher expects TensorDicts, found {type(td).__name__}")
        if self._env_batch is None:
            self._env_batch = td.batch_size
        elif td.batch_size != self._env_batch:
            raise ValueError(
                f"TrajectoryBatcher expected transitions of batch size {tuple(self._env_batch)}, "
                f"found {tuple(td.batch_size)}"
            )
        done = td.get(("next", "done"), None)
        if done is None:
            raise KeyError("TrajectoryBatcher needs ('next', 'done') in every transition")
        n = max(1, td.batch_size.numel())
        if self._traj is None:
            self._traj = TrajectoryIds(n)
        elif self._renew_ids or self._traj.current.numel() != n:
            self._traj = TrajectoryIds(n, first_id=self._traj.next_id)
        self._renew_ids = False
        set_collector_entries(td, traj_ids=self._traj.step(done).reshape(td.batch_size))
        self._steps.append(td)
        per_step = max(1, td.batch_size.numel())
        if len(self._steps) * per_step >= self.frames_per_batch:
            return {"out": self._flush()}
        return None

    def state_dict(self) -> dict[str, Any]:
        pending = None
        if self._steps:
            stacked = torch.stack(self._steps, len(self._env_batch))
            pending = {"data": stacked.to_dict(), "batch_size": list(stacked.batch_size)}
        traj = self._traj.state_dict() if self._traj is not None else None
        return {"traj_ids": traj, "pending": pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)  # checks the keys
        traj, pending = state["traj_ids"], state["pending"]
        self._steps, self._traj, self._env_batch, self._renew_ids = [], None, None, False
        if traj is not None:
            self._traj = TrajectoryIds(torch.as_tensor(traj["current"]).numel())
            self._traj.load_state_dict(traj)
            # the transitions that follow a restore start new episodes: new ids for all
            # (at the next step, so that the state reads back as it was saved)
            self._renew_ids = True
        if pending is not None:
            stacked = TensorDict(pending["data"], batch_size=pending["batch_size"])
            self._env_batch = stacked.batch_size[:-1]
            self._steps = list(stacked.unbind(len(self._env_batch)))
            if self._traj is None:
                self._traj = TrajectoryIds(max(1, self._env_batch.numel()))

    def finish(self) -> dict[str, Any] | None:
        if not self._steps or self.drop_last:
            self._steps.clear()
            return None
        return {"out": self._flush()}

    def _flush(self) -> TensorDictBase:
        steps, self._steps = self._steps, []
        return torch.stack(steps, len(self._env_batch))

    def __repr__(self) -> str:
        return f"TrajectoryBatcher(frames_per_batch={self.frames_per_batch})"
