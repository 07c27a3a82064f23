"""SegmentBatcher: the high-level transitions of a hierarchical policy's collected batches."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, pad

from streamrl.graph import Operator

__all__ = ["SegmentBatcher"]

NEW_KEY = ("hrl", "new")
DECISION_KEY = ("hrl", "decision")
LENGTH_KEY = ("hrl", "length")
STEPS_KEY = ("hrl", "steps")


class SegmentBatcher(Operator):
    """Turns collected ``[*envs, T]`` batches of a policy holding high-level decisions (a
    :class:`~streamrl.modules.HeldDecision`, which sets ``("hrl", "new")`` on the steps that
    decide) into one high-level transition per segment: the steps from a decision to the
    step before the next one, or to the episode's end.

    Each emitted row holds the segment's first step (its root entries: the state the
    decision was made in) with ``action`` set to the decision (``("hrl", "decision")``), and
    under ``"next"`` the last step's ``"next"`` entries (the state and the
    ``done``/``terminated``/``truncated`` flags after the segment) with ``reward`` the
    segment's rewards summed, discounted by ``gamma`` per step (``sum_i gamma^i r_i``);
    ``("hrl", "length")`` is its number of steps (int64 ``[1]``: a high-level learner
    discounts its bootstrap by ``gamma ** length``). With ``keep_steps=(keys...)`` and
    ``max_length=k``, ``("hrl", "steps")`` holds those entries of each of the segment's steps
    (``[k, ...]``, zero-padded) and ``("hrl", "steps", "mask")`` the valid ones: what HIRO's
    relabelling reads (the low level's observations and actions).

    Segments run across batch boundaries: the steps of a row's unfinished segment are kept
    until the batch in which it ends (a decision on the row's next step, or a done step), so
    batched envs whose segments end at different steps are cut right. A segment whose first
    step is not a decision (the first steps after a restart mid-segment) or whose trajectory
    changes without a done step (the env was reset under it) is dropped. Rows are followed by
    position in the batch and by ``("collector", "traj_ids")``. Emits nothing for a batch
    that finished no segment. Its state (:meth:`state_dict`): ``emitted``, the transitions
    emitted, and ``open``, the steps of the unfinished segments, so a restored graph finishes
    them.

    >>> def batch(new, reward, done):
    ...     n = len(new)
    ...     return TensorDict({
    ...         "observation": torch.arange(n, dtype=torch.float32)[:, None],
    ...         "action": torch.zeros(n, 1),
    ...         "hrl": {"new": torch.tensor(new)[:, None], "decision": torch.ones(n, 2)},
    ...         "collector": {"traj_ids": torch.zeros(n, dtype=torch.int64)},
    ...         "next": {"observation": torch.arange(1, n + 1, dtype=torch.float32)[:, None],
    ...                  "reward": torch.tensor(reward)[:, None],
    ...                  "done": torch.tensor(done)[:, None]}}, [n])
    >>> op = SegmentBatcher()
    >>> out = op.step({"in": batch([True, False, True, False], [1.0, 2.0, 3.0, 4.0],
    ...                            [False] * 4)})["out"]
    >>> out["observation"].flatten().tolist(), out["next", "reward"].flatten().tolist()
    ([0.0], [3.0])
    >>> out["next", "observation"].flatten().tolist(), out["hrl", "length"].flatten().tolist()
    ([2.0], [2])
    >>> op.step({"in": batch([False, True], [5.0, 6.0], [False, True])})["out"][
    ...     "next", "reward"].flatten().tolist()  # the carried segment, then a one-step one
    [12.0, 6.0]
    """

    state_keys = ("emitted", "open")

    def __init__(self, *, gamma: float = 1.0, reward_key: Any = ("next", "reward"),
                 action_key: Any = "action", keep_steps: tuple[Any, ...] = (),
                 max_length: int | None = None) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"SegmentBatcher: gamma must be in [0, 1], found {gamma!r}")
        if keep_steps and (isinstance(max_length, bool) or not isinstance(max_length, int)
                           or max_length < 1):
            raise ValueError(f"SegmentBatcher: keep_steps needs max_length, the longest "
                             f"segment (the decision's k), an int >= 1, found {max_length!r}")
        self.gamma, self.reward_key, self.action_key = float(gamma), reward_key, action_key
        self.keep_steps, self.max_length = tuple(keep_steps), max_length
        self.emitted = 0
        # row -> (trajectory id, the steps of its unfinished segment so far)
        self._open: dict[int, tuple[int, list[TensorDictBase]]] = {}

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        batch = inputs["in"]
        if not isinstance(batch, TensorDictBase) or batch.batch_dims < 1:
            raise TypeError(f"SegmentBatcher expects [*envs, T] TensorDicts, found "
                            f"{type(batch).__name__}")
        for key in (NEW_KEY, DECISION_KEY, ("collector", "traj_ids"), ("next", "done")):
            if batch.get(key, None) is None:
                raise KeyError(f"SegmentBatcher needs {key!r} in its input (collect with a "
                               f"HeldDecision policy), found {sorted(map(str, batch.keys(True, True)))}")
        rows = batch.reshape(-1, batch.batch_size[-1])
        n, steps = rows.batch_size
        new = rows.get(NEW_KEY).reshape(n, steps, -1).any(-1)
        done = rows.get(("next", "done")).reshape(n, steps, -1).any(-1)
        ids = rows.get(("collector", "traj_ids")).reshape(n, steps)
        finished: list[TensorDictBase] = []
        for r in range(n):
            self._split_row(r, rows[r], new[r], done[r], ids[r], finished)
        if not finished:
            return None
        self.emitted += len(finished)
        return {"out": torch.stack(finished)}

    def state_dict(self) -> dict[str, Any]:
        open_rows = {str(r): {"traj_id": tid, "steps": torch.cat(pieces).to_dict(),
                              "length": sum(len(p) for p in pieces)}
                     for r, (tid, pieces) in self._open.items()}
        return {"emitted": self.emitted, "open": open_rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        Operator.load_state_dict(self, state)  # checks the keys, sets emitted and open
        rows = self.__dict__.pop("open")
        self._open = {int(r): (int(row["traj_id"]),
                               [TensorDict(row["steps"], batch_size=[int(row["length"])])])
                      for r, row in rows.items()}

    def _split_row(self, r: int, row: TensorDictBase, new: torch.Tensor, done: torch.Tensor,
                   ids: torch.Tensor, finished: list[TensorDictBase]) -> None:
        steps = len(new)
        starts = new.clone()
        starts[1:] |= done[:-1] | (ids[1:] != ids[:-1])
        cuts = starts.nonzero().flatten().tolist()
        bounds = list(zip([0, *cuts], [*cuts, steps], strict=True))
        held = self._open.pop(r, None)
        for a, b in bounds:
            if a == b:
                continue
            pieces = [row[a:b]]
            if a == 0:
                if held is not None and int(held[0]) == int(ids[0]):
                    if bool(new[0]):  # the held segment ended with the last batch
                        finished.append(self._transition(torch.cat(held[1])))
                    else:
                        pieces = [*held[1], row[a:b]]
                elif not bool(new[0]):
                    continue  # no decision at its start: nothing to learn from
            elif not bool(new[a]):
                continue  # a reset without a done step (and without a decision)
            if bool(done[b - 1]) or (b < steps and bool(new[b]) and int(ids[b]) == int(ids[b - 1])):
                finished.append(self._transition(torch.cat(pieces) if len(pieces) > 1
                                                 else pieces[0]))
            elif b == steps:
                self._open[r] = (int(ids[b - 1]), [p.clone() for p in pieces])

    def _transition(self, segment: TensorDictBase) -> TensorDictBase:
        length = segment.shape[0]
        first = segment[0]
        out = first.exclude("next").clone()
        out.set(self.action_key, first.get(DECISION_KEY).clone())
        nxt = segment[-1].get("next").clone()
        rewards = segment.get(self.reward_key)
        discount = self.gamma ** torch.arange(length, dtype=rewards.dtype)
        reward = (rewards * discount.reshape(length, *[1] * (rewards.ndim - 1))).sum(0)
        out.set("next", nxt)
        out.set(self.reward_key, reward)
        out.set(LENGTH_KEY, torch.tensor([length], dtype=torch.int64))
        if self.keep_steps:
            assert self.max_length is not None
            if length > self.max_length:
                raise ValueError(f"SegmentBatcher: a segment of {length} steps is longer than "
                                 f"max_length={self.max_length}")
            kept = segment.select(*self.keep_steps).clone()
            kept = pad(kept, [0, self.max_length - length])
            kept.set("mask", torch.arange(self.max_length) < length)
            out.set(STEPS_KEY, kept)
        return out

    def __repr__(self) -> str:
        keep = f", keep_steps={list(self.keep_steps)}" if self.keep_steps else ""
        return f"SegmentBatcher(gamma={self.gamma}{keep})"
