"""BatchedIO: the entries a batched env exchanges with its sub-envs outside the step buffers.

A batched env steps sub-envs that fit flat :class:`~streamrl.envs.StepBuffers` through them.
Sub-envs that do not (a state spec, several action keys, nested entries) take the general
path: the batched env writes the step's inputs (the action entries and the state entries the
caller gave) into ``inputs``, each sub-env reads its row, steps, and writes the entries of the
output specs (observations, reward, done flags) into its row of ``outputs``. Resets go through
the same rows: a sub-env is reset with the state entries given for it and writes its
observations and state entries into its row of ``root`` (the batched env's current root). A
sub-env with a batch of its own (a VMAS env, say) is given the rows of the ``"_reset"`` mask
that are its own, with its current root: only those of its envs restart. All of it may live in
shared memory, so a worker process steps through the same rows (:class:`ParallelEnv
<streamrl.envs.ParallelEnv>`), with nothing pickled per step.

The state entries are inputs: they reach the sub-envs, and so do the root's observations at a
step (what a single env's step is given). A step returns what the output specs
hold (a primer's entries are both, so they are carried from step to step); a reset returns the
observations and the state entries (the sub-env's, else the given ones, else zeros). The
``("next", key)`` state entries the caller wrote before a step (a recurrent policy's next
state) reach the sub-envs too, so a primer inside a sub-env carries the policy's value.

>>> import torch
>>> from streamrl.data.specs import Bounded, Composite, Unbounded
>>> io = BatchedIO(
...     (2,), Composite(action=Bounded(-1.0, 1.0, (2, 1)), shape=(2,)),
...     Composite(h=Unbounded((2, 3)), shape=(2,)),
...     {"observation": Unbounded((2, 3))}, root={})
>>> sorted(map(str, io.inputs)), io.state_keys
(['action', 'h'], ['h'])
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import unravel_key

from streamrl.envs.step_buffers import FLAGS, _td

__all__ = ["BatchedIO"]


class BatchedIO:
    """Input/output rows of a batched env's sub-envs (see the module docstring).

    Args:
        batch_size: the batched env's batch size ``[N, *sub_batch]``.
        action_spec: the batched full action spec.
        state_spec: the batched full state spec.
        output_specs: the specs of the step outputs by (nested, as tuples) key.
        root: the batched env's current root (observations and done flags) by key; resets
            write their rows into it.
    """

    def __init__(
        self,
        batch_size: Any,
        action_spec: Any,
        state_spec: Any,
        output_specs: dict[Any, Any],
        root: dict[Any, torch.Tensor],
    ) -> None:
        self.batch_size = torch.Size(batch_size)
        self.action_keys = list(action_spec.keys(True, True))
        self.state_keys = list(state_spec.keys(True, True))
        self.inputs = {k: action_spec[k].zero() for k in self.action_keys}
        self.inputs.update({k: state_spec[k].zero() for k in self.state_keys})
        # which state entries the caller gave (the same for every row of one call)
        self.given = torch.zeros(len(self.state_keys), dtype=torch.bool)
        # a step's ("next", state key) entries the caller wrote beforehand (a recurrent
        # policy's next state), passed on so that a primer inside a sub-env carries them
        self.next_inputs = {k: state_spec[k].zero() for k in self.state_keys}
        self.next_given = torch.zeros(len(self.state_keys), dtype=torch.bool)
        self.outputs = {k: s.zero() for k, s in output_specs.items()}
        # the "_reset" mask of a reset: which rows of a batched sub-env restart
        self.reset_mask = torch.ones((*self.batch_size, 1), dtype=torch.bool)
        self.root = root
        self.obs_keys = [k for k in root if k not in FLAGS]
        # the root entries a step passes on: observations (state entries only when given)
        state = set(self.state_keys)
        self.step_keys = [k for k in self.obs_keys if k not in state]
        self._rows: dict[int, BatchedIO] = {}

    def share_memory_(self) -> BatchedIO:
        """Move every row into shared memory (in place), for worker processes."""
        for d in (self.inputs, self.next_inputs, self.outputs, self.root):
            for v in d.values():
                v.share_memory_()
        self.given.share_memory_()
        self.next_given.share_memory_()
        self.reset_mask.share_memory_()
        return self

    # ------------------------------------------------------------ batched side
    def set_inputs(
        self, tensordict: TensorDictBase | None, rows: list[int] | None = None, action: bool = True
    ) -> None:
        """Copy the inputs of one call from ``tensordict`` (rows ``rows``; None: all): the
        action entries (with ``action``) and the state entries it holds; for a reset (not
        ``action``) its ``"_reset"`` mask (all rows when it has none)."""
        for k in self.action_keys if action else ():
            self._copy(k, tensordict.get(k), rows)
        if not action:
            mask = None if tensordict is None else tensordict.get("_reset", None)
            if mask is None:
                self.reset_mask.fill_(True)
            else:
                self.reset_mask.copy_(mask.reshape(self.reset_mask.shape))
        given = self.given
        for j, k in enumerate(self.state_keys):
            value = None if tensordict is None else tensordict.get(k, None)
            given[j] = value is not None
            if value is not None:
                self._copy(k, value, rows)
        preset = tensordict.get("next", None) if action and tensordict is not None else None
        for j, k in enumerate(self.state_keys):
            value = None if preset is None else preset.get(k, None)
            self.next_given[j] = value is not None
            if value is not None:
                self._copy(k, value, rows, self.next_inputs)

    def _copy(
        self, key: Any, value: torch.Tensor, rows: list[int] | None, into: dict | None = None
    ) -> None:
        dst = (self.inputs if into is None else into)[key]
        if not isinstance(value, torch.Tensor) or value.shape != dst.shape:
            found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"entry {key!r}: expected a tensor of shape {tuple(dst.shape)} (the batched "
                f"spec's), found {found}"
            )
        if rows is None:
            dst.copy_(value)
        else:
            dst[rows] = value[rows].to(dst.dtype)

    def take_inputs(self, src: BatchedIO, src_rows: list[int], rows: list[int]) -> None:
        """Copy ``src``'s input rows ``src_rows`` into rows ``rows`` (a view's inputs into its
        parent's), with the flags of the state entries given."""
        for k, v in src.inputs.items():
            self.inputs[k][rows] = v[src_rows]
        for k, v in src.next_inputs.items():
            self.next_inputs[k][rows] = v[src_rows]
        self.reset_mask[rows] = src.reset_mask[src_rows]
        self.given.copy_(src.given)
        self.next_given.copy_(src.next_given)

    def carry_state(self) -> None:
        """Copy the state entries given to a step that are no output into the root (where the
        next step starts unless they are given again)."""
        for k, g in zip(self.state_keys, self.given.tolist(), strict=True):
            if g and k not in self.outputs:
                self.root[k].copy_(self.inputs[k])

    def read_outputs(self) -> TensorDictBase:
        """The step outputs of every row (copies)."""
        return _td({k: v.clone() for k, v in self.outputs.items()}, self.batch_size)

    # -------------------------------------------------------------- row side
    def row(self, i: int) -> BatchedIO:
        """Sub-env ``i``'s rows (views)."""
        row = self._rows.get(i)
        if row is None:
            row = BatchedIO.__new__(BatchedIO)
            row.__dict__.update(self.__dict__)
            row.batch_size = self.batch_size[1:]
            row.inputs = {k: v[i] for k, v in self.inputs.items()}
            row.next_inputs = {k: v[i] for k, v in self.next_inputs.items()}
            row.outputs = {k: v[i] for k, v in self.outputs.items()}
            row.reset_mask = self.reset_mask[i]
            row.root = {k: v[i] for k, v in self.root.items()}
            row._rows = {}
            self._rows[i] = row
        return row

    def _input_td(self, action: bool) -> TensorDictBase | None:
        """The input of a reset (the given state entries) or of a step (``action``: also
        the action and the root's observations, as a single env's step gets them)."""
        keys = list(self.action_keys) if action else []
        keys += [k for k, g in zip(self.state_keys, self.given.tolist(), strict=True) if g]
        if not keys and not action:
            return None
        src = {k: self.root[k].clone() for k in self.step_keys} if action else {}
        src.update({k: self.inputs[k].clone() for k in keys})
        if action:
            for k, g in zip(self.state_keys, self.next_given.tolist(), strict=True):
                if g:
                    src[unravel_key(("next", k))] = self.next_inputs[k].clone()
        return _td(src, self.batch_size)

    def reset(self, env: Any) -> None:
        """Reset ``env`` with the state entries given for it; write its root row. A batched
        sub-env whose rows of the ``"_reset"`` mask are not all set gets them, with its
        current root (so that its envs not reset, and the transforms' entries of those
        envs, stay as they are)."""
        given = self._input_td(action=False)
        mask = self.reset_mask
        partial = bool(self.batch_size) and not bool(mask.all())
        if partial:
            src = {k: v.clone() for k, v in self.root.items()}
            if given is not None:
                src.update(given.items(True, True))
            src["_reset"] = mask.clone()
            given = _td(src, self.batch_size)
        out = env.reset(given)
        for k in self.obs_keys:
            value = out.get(k, None)
            if value is None:  # a state entry the sub-env does not return: as given, or 0
                value = given.get(k, None) if given is not None else None
            if value is None:
                self.root[k].zero_()
            else:
                self.root[k].copy_(value)
        for k in FLAGS:
            if partial:
                self.root[k].masked_fill_(mask, False)
            else:
                self.root[k].fill_(False)

    def step(self, env: Any) -> None:
        """Step ``env`` with its input row; write its output row."""
        nxt = env.step(self._input_td(action=True)).get("next")
        for k, dst in self.outputs.items():
            dst.copy_(nxt.get(k))

    def __repr__(self) -> str:
        return (
            f"BatchedIO(batch_size={tuple(self.batch_size)}, state_keys={self.state_keys})"
        )
