"""TransitionBatcher: merges the transitions of independently stepping env sources into
flat batches."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.graph import Many, Operator
from streamrl.ops._trajectories import TrajectoryIds, set_collector_entries

__all__ = ["TransitionBatcher"]


class TransitionBatcher(Operator):
    """Merges the transitions of ``num_envs`` env sources (input ports ``in_0..``, in
    ``"any"`` mode: whichever env stepped) into batches of exactly ``frames_per_batch``
    frames, in arrival order, each row stamped with ``"env_index"`` and
    ``("collector", "traj_ids")`` (unique over the envs: ``local_id * num_envs + env``).

    With ``per_env=True`` a batch is emitted as one ``[*env_batch, T]`` piece per env that
    contributed (a :class:`~streamrl.graph.Many`), each in time order, the layout
    :class:`~streamrl.ops.CompleteTrajectories` reassembles episodes from (with
    ``num_workers=num_envs``). ``total_frames`` drops the frames past the budget; the
    partial batch left when the inputs end is emitted by :meth:`finish`.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> def step(x, done=False):
    ...     return TensorDict({"x": torch.tensor(x), "next": {"done": torch.tensor([done])}})
    >>> op = TransitionBatcher(3, num_envs=2)
    >>> op.step({"in_1": step(1.0, True)}), op.step({"in_0": step(0.0)})
    (None, None)
    >>> out = op.step({"in_1": step(2.0)})["out"]
    >>> out["x"].tolist(), out["env_index"].tolist(), out["collector", "traj_ids"].tolist()
    ([1.0, 0.0, 2.0], [1, 0, 1], [1, 0, 3])
    """

    input_mode = "any"

    def __init__(self, frames_per_batch: int, num_envs: int, *, per_env: bool = False,
                 total_frames: int | None = None):
        for name, value in (("frames_per_batch", frames_per_batch), ("num_envs", num_envs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if total_frames is not None and (
            isinstance(total_frames, bool) or not isinstance(total_frames, int) or total_frames < 1
        ):
            raise ValueError(f"total_frames must be a positive int or None, got {total_frames!r}")
        self.frames_per_batch = frames_per_batch
        self.num_envs = num_envs
        self.per_env = per_env
        self.total_frames = total_frames
        self.inputs = tuple(f"in_{i}" for i in range(num_envs))
        self._index = {port: i for i, port in enumerate(self.inputs)}
        self._ids: list[TrajectoryIds | None] = [None] * num_envs
        self._steps: list[tuple[int, TensorDictBase]] = []  # (env, transition)
        self._frames = 0  # in _steps
        self.frames = 0  # accepted in all

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        out = []
        for port, td in inputs.items():
            if not isinstance(td, TensorDictBase):
                raise TypeError(f"TransitionBatcher expects TensorDicts, found {type(td).__name__}")
            if self.total_frames is not None and self.frames >= self.total_frames:
                continue  # past the budget
            if td.get(("next", "done"), None) is None:
                raise KeyError("TransitionBatcher needs ('next', 'done') in every transition")
            self._steps.append((self._index[port], td))
            rows = max(1, td.batch_size.numel())
            self._frames += rows
            self.frames += rows
            if self._frames >= self.frames_per_batch:
                out.append(self._flush())
        if not out:
            return None
        return {"out": out[0] if len(out) == 1 else Many(out)}

    def finish(self) -> dict[str, Any] | None:
        return {"out": self._flush()} if self._steps else None

    # ------------------------------------------------------------------ helpers
    def _flush(self) -> Any:
        steps, self._steps, self._frames = self._steps, [], 0
        if self.total_frames is not None and self.frames > self.total_frames:
            steps = self._trim(steps, self.frames - self.total_frames)
        # one stack per env, stamped at once (per-step stamping costs more than the step)
        order = sorted({e for e, _ in steps})
        pieces = [self._piece(e, [td for env, td in steps if env == e]) for e in order]
        if self.per_env:
            return Many(pieces)
        flat = torch.cat([p.reshape(-1) for p in pieces])
        flat = flat[self._arrival_order(steps, order, pieces)]
        if flat.batch_size[0] > self.frames_per_batch:  # a batched env's step overshot
            carry = flat[self.frames_per_batch:]
            flat = flat[: self.frames_per_batch]
            self._steps = [(-1, carry)]
            self._frames = carry.batch_size[0]
        return flat

    def _piece(self, env: int, tds: list[TensorDictBase]) -> TensorDictBase:
        """``env``'s transitions stacked along a last (time) dim, stamped. ``env == -1``: rows
        carried from the previous batch, already stamped."""
        if env < 0:
            return tds[0].unsqueeze(-1)
        piece = torch.stack(tds, -1)  # [*env_batch, T]
        t = piece.batch_size[-1]
        done = piece.get(("next", "done")).reshape(-1, t, piece.get(("next", "done")).shape[-1])
        done = done.any(-1).T  # [T, rows]
        ids = self._ids[env]
        if ids is None:
            ids = self._ids[env] = TrajectoryIds(done.shape[1])
        local = ids.step_many(done).T.reshape(piece.batch_size)
        set_collector_entries(piece, traj_ids=local * self.num_envs + env)
        piece.set("env_index", torch.full(piece.batch_size, env, dtype=torch.int64))
        return piece

    @staticmethod
    def _arrival_order(steps: list[tuple[int, TensorDictBase]], order: list[int],
                       pieces: list[TensorDictBase]) -> torch.Tensor:
        """The permutation from the env-major rows of the concatenated pieces (env, then
        sub-env, then time) back to arrival order."""
        first, pos = {}, 0  # arrival position of each step's first row
        for k, (_, td) in enumerate(steps):
            first[k] = pos
            pos += max(1, td.batch_size.numel())
        positions = []
        for e, piece in zip(order, pieces, strict=True):
            starts = torch.tensor([first[k] for k, (env, _) in enumerate(steps) if env == e])
            rows = piece.batch_size[:-1].numel()
            positions.append((starts[None, :] + torch.arange(rows)[:, None]).reshape(-1))
        return torch.argsort(torch.cat(positions))

    @staticmethod
    def _trim(steps: list[tuple[int, TensorDictBase]], excess: int) -> list[tuple[int, TensorDictBase]]:
        """Drop the last ``excess`` frames (the rows of the last batched steps past the
        budget)."""
        while excess > 0 and steps:
            _, td = steps[-1]
            rows = max(1, td.batch_size.numel())
            if rows > excess:
                break  # a batched step is kept whole rather than cut across its envs
            steps.pop()
            excess -= rows
        return steps

    def __repr__(self) -> str:
        return f"TransitionBatcher(frames_per_batch={self.frames_per_batch}, num_envs={self.num_envs})"
