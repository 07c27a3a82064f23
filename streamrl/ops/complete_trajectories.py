"""CompleteTrajectories: regroups fixed-size collected batches into whole trajectories."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase, pad

from streamrl.graph import Many, Operator

__all__ = ["CompleteTrajectories"]

_FORMATS = ("padded", "cat")


class CompleteTrajectories(Operator):
    """Reassembles the episodes of ``[*envs, T]`` batches and emits only complete ones.

    Episodes run across batch boundaries; this operator keeps each env's in-flight episode
    (keyed by worker and row, read from ``("collector", "traj_ids")``) until a step with
    ``("next", "done")`` ends it. An episode cut without a done step (the env was reset under
    it) is dropped.

    Args:
        trajs_per_batch: emit batches of exactly this many trajectories; ``None`` emits, per
            input batch, every trajectory it completed, concatenated (possibly none: a
            0-row batch), the flat layout a replay buffer stores.
        traj_format: ``"padded"``: ``[trajs_per_batch, T_max]``, zero-padded, with a bool
            ``("collector", "mask")`` of the valid steps; ``"cat"``: the trajectories
            concatenated along time, ``[sum T_i]``.
        num_workers: how many rollouts feed the operator (trajectory ids are
            ``local_id * num_workers + worker``, as :class:`~streamrl.ops.Rollout` makes them).
        report_pending: when an input completes no batch, emit the number of complete
            trajectories held back (an ``int``), so a lockstep reader knows to ask for more.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> def batch(ids, done):
    ...     return TensorDict({"x": torch.tensor(ids, dtype=torch.float32),
    ...                        "next": {"done": torch.tensor(done)[:, None]},
    ...                        "collector": {"traj_ids": torch.tensor(ids)}}, [len(ids)])
    >>> op = CompleteTrajectories(2, report_pending=True)
    >>> op.step({"in": batch([0, 0, 1], [False, True, False])})
    {'out': 1}
    >>> out = op.step({"in": batch([1, 2, 2], [True, False, False])})["out"]
    >>> out["x"].tolist(), out["collector", "mask"].tolist()
    ([[0.0, 0.0], [1.0, 1.0]], [[True, True], [True, True]])
    """

    state_keys = ("emitted",)

    def __init__(
        self,
        trajs_per_batch: int | None,
        *,
        traj_format: str = "padded",
        num_workers: int = 1,
        report_pending: bool = False,
    ):
        if trajs_per_batch is not None and (
            not isinstance(trajs_per_batch, int) or trajs_per_batch < 1
        ):
            raise ValueError(f"trajs_per_batch must be a positive int or None, got {trajs_per_batch!r}")
        if traj_format not in _FORMATS:
            raise ValueError(f"traj_format must be one of {_FORMATS}, got {traj_format!r}")
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        self.trajs_per_batch = trajs_per_batch
        self.traj_format = traj_format
        self.num_workers = num_workers
        self.report_pending = report_pending
        self.emitted = 0
        # (worker, row) -> (trajectory id, pieces so far)
        self._open: dict[tuple[int, int], tuple[int, list[TensorDictBase]]] = {}
        self._ready: list[TensorDictBase] = []

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        batch = inputs["in"]
        if not isinstance(batch, TensorDictBase) or batch.batch_dims < 1:
            raise TypeError(
                f"CompleteTrajectories expects [*envs, T] TensorDicts, found {type(batch).__name__}"
            )
        ids = batch.get(("collector", "traj_ids"), None)
        if ids is None:
            raise KeyError("CompleteTrajectories needs ('collector', 'traj_ids') in its input")
        rows = batch.reshape(-1, batch.batch_size[-1])
        ids = ids.reshape(rows.batch_size)
        done = batch.get(("next", "done")).reshape(*rows.batch_size, -1).any(-1)
        completed: list[TensorDictBase] = []
        for r in range(rows.batch_size[0]):
            self._split_row(r, rows[r], ids[r], done[r], completed)
        if self.trajs_per_batch is None:
            if not completed:
                return {"out": rows[0][:0].clone()}
            return {"out": torch.cat(completed)}
        self._ready.extend(completed)
        n = self.trajs_per_batch
        out = []
        while len(self._ready) >= n:
            group, self._ready = self._ready[:n], self._ready[n:]
            out.append(self._format(group))
        self.emitted += len(out)
        if not out:
            return {"out": len(self._ready)} if self.report_pending else None
        return {"out": out[0] if len(out) == 1 else Many(out)}

    # ------------------------------------------------------------------ helpers
    def _split_row(self, r: int, row: TensorDictBase, ids: torch.Tensor, done: torch.Tensor,
                   completed: list[TensorDictBase]) -> None:
        cuts = ((ids[1:] != ids[:-1]).nonzero().flatten() + 1).tolist()
        bounds = list(zip([0, *cuts], [*cuts, len(ids)], strict=True))
        key = (int(ids[0]) % self.num_workers, r)  # one in-flight episode per env
        for i, (a, b) in enumerate(bounds):
            tid = int(ids[a])
            piece = row[a:b]
            pieces = [piece]
            if i == 0:
                held = self._open.pop(key, None)
                if held is not None and held[0] == tid:
                    pieces = [*held[1], piece]
            if bool(done[b - 1]):
                completed.append(torch.cat(pieces) if len(pieces) > 1 else piece.clone())
            elif i == len(bounds) - 1:
                self._open[key] = (tid, pieces)
            # else: cut without a done step (a reset): dropped

    def _format(self, group: list[TensorDictBase]) -> TensorDictBase:
        if self.traj_format == "cat":
            return torch.cat(group)
        longest = max(len(t) for t in group)
        out = torch.stack([pad(t, [0, longest - len(t)]) for t in group])
        lengths = torch.tensor([len(t) for t in group])
        out.set(("collector", "mask"), torch.arange(longest) < lengths[:, None])
        return out

    def __repr__(self) -> str:
        return (
            f"CompleteTrajectories(trajs_per_batch={self.trajs_per_batch}, "
            f"traj_format={self.traj_format!r})"
        )
