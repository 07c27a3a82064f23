"""StepBuffers: preallocated storage for ``T`` steps of an env (the stepping protocol's data).

An env writes its steps into these buffers through :meth:`EnvBase.step_into
<streamrl.envs.EnvBase.step_into>`; a batch is wrapped as a TensorDict once, at the end, with
no per-step TensorDict. Layout (``B`` is the env's batch size):

- ``action``: ``[*B, T, ...]``, the action of each step (read by the env);
- ``root[key]``: ``[*B, T + 1, ...]``, the observation each step acted on; column ``t + 1``
  holds the observation after step ``t`` (the reset observation where step ``t`` ended an
  episode and the sub-env was reset);
- ``next[key]``: ``[*B, T, ...]``, the observation each step returned (the final one of an
  episode, before any reset);
- ``reward``, ``terminated``, ``truncated``: ``[*B, T, 1]``.

Every step writes all of its entries (buffers are reused from batch to batch).

Time comes after the batch dims so that each sub-env's block is contiguous: a batched env
hands sub-env ``i`` the view :meth:`StepBuffers.row` ``(i)``, also across processes
(:meth:`share_memory_`, :meth:`tensors` and :meth:`from_tensors`).

>>> import torch
>>> from streamrl.data.specs import Categorical, Unbounded
>>> bufs = StepBuffers((), 4, {"observation": Unbounded(3)}, Categorical(2), torch.float32)
>>> bufs.root["observation"].shape, bufs.next["observation"].shape, bufs.action.shape
(torch.Size([5, 3]), torch.Size([4, 3]), torch.Size([4]))
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

__all__ = ["StepBuffers"]

FLAGS = ("done", "terminated", "truncated")


class StepBuffers:
    """Preallocated ``[*batch, T]`` buffers of one env's steps (see the module docstring).

    Args:
        batch_size: the env's batch size.
        T: the number of steps the buffers hold.
        obs_specs: observation specs by (possibly nested, as tuples) key; each spec's shape
            starts with ``batch_size``.
        action_spec: the action spec (shape starting with ``batch_size``).
        reward_dtype: the dtype of the reward.
    """

    def __init__(
        self,
        batch_size: Any,
        T: int,
        obs_specs: dict[Any, Any],
        action_spec: Any,
        reward_dtype: torch.dtype,
    ) -> None:
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive int, found {T!r}")
        batch = tuple(batch_size)
        nb = len(batch)

        def shape(spec: Any, extra: int) -> tuple:
            if tuple(spec.shape[:nb]) != batch:
                raise ValueError(
                    f"spec shape {tuple(spec.shape)} does not start with the batch size {batch}"
                )
            return (*batch, T + extra, *spec.shape[nb:])

        # observation rows are written before they are read (rows past a break are cut off),
        # so they skip the zero fill, which matters for pixels
        self.root = {k: torch.empty(shape(s, 1), dtype=s.dtype) for k, s in obs_specs.items()}
        self.next = {k: torch.empty(shape(s, 0), dtype=s.dtype) for k, s in obs_specs.items()}
        self.action = torch.zeros(shape(action_spec, 0), dtype=action_spec.dtype)
        self.reward = torch.zeros((*batch, T, 1), dtype=reward_dtype)
        self.terminated = torch.zeros((*batch, T, 1), dtype=torch.bool)
        self.truncated = torch.zeros((*batch, T, 1), dtype=torch.bool)
        self._init(torch.Size(batch), T, shared=False)

    def _init(self, batch_size: torch.Size, T: int, shared: bool) -> None:
        self.batch_size = batch_size
        self.T = T
        # shared buffers are reused from batch to batch: wrapped batches copy them
        self.shared = shared
        self._rows: dict[int, StepBuffers] = {}
        self._numpy: dict[str, Any] | None = None
        self._columns: dict[str, Any] | None = None  # by buffer name
        self._memo: dict[Any, Any] = {}

    # ---------------------------------------------------------------- structure
    def tensors(self) -> dict[str, Any]:
        """Every buffer by name (what :meth:`from_tensors` takes back, e.g. in a worker)."""
        return {
            "action": self.action,
            "root": self.root,
            "next": self.next,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, Any], batch_size: Any, shared: bool = False) -> StepBuffers:
        """Buffers over existing tensors (views, not copies), e.g. shared-memory ones sent to
        a worker process."""
        out = cls.__new__(cls)
        out.action = tensors["action"]
        out.root = dict(tensors["root"])
        out.next = dict(tensors["next"])
        out.reward = tensors["reward"]
        out.terminated = tensors["terminated"]
        out.truncated = tensors["truncated"]
        batch_size = torch.Size(batch_size)
        out._init(batch_size, out.reward.shape[len(batch_size)], shared)
        return out

    def _map(self, fn: Any) -> dict[str, Any]:
        """:meth:`tensors` with ``fn`` applied to every tensor (same layout)."""
        return {
            name: {k: fn(v) for k, v in buf.items()} if isinstance(buf, dict) else fn(buf)
            for name, buf in self.tensors().items()
        }

    def share_memory_(self) -> StepBuffers:
        """Move every buffer into shared memory (in place); from then on the buffers are
        reused from batch to batch, so :meth:`to_tensordict` copies them out."""
        self._map(lambda t: t.share_memory_())
        self._init(self.batch_size, self.T, shared=True)  # the storage moved: drop views
        return self

    def row(self, i: int) -> StepBuffers:
        """The buffers of sub-env ``i`` (views along the first batch dim)."""
        row = self._rows.get(i)
        if row is None:
            if not self.batch_size:
                raise ValueError("row() needs buffers with a batch dim; these are unbatched")
            sub = self._map(lambda t: t[i])
            row = self._rows[i] = StepBuffers.from_tensors(sub, self.batch_size[1:], self.shared)
        return row

    def numpy(self) -> dict[str, Any]:
        """Numpy views of the buffers (same layout as :meth:`tensors`), made once."""
        if self._numpy is None:
            self._numpy = self._map(lambda t: t.numpy())
        return self._numpy

    def memo(self, key: Any, make: Any) -> Any:
        """``make()``, made once per ``key`` for these buffers (views a stepping loop prepares
        once instead of per step; dropped when the storage moves)."""
        out = self._memo.get(key)
        if out is None:
            out = self._memo[key] = make()
        return out

    def columns(self, name: str) -> Any:
        """Per-step views of one buffer (``unbind`` along time, made once): ``columns("root")
        [k][t]``, ``columns("action")[t]``...; writing one is a cheap ``copy_``."""
        cols = self._columns
        if cols is None:
            cols = self._columns = {}
        out = cols.get(name)
        if out is None:
            nb = len(self.batch_size)
            buf = self.tensors()[name]
            if isinstance(buf, dict):
                out = {k: v.unbind(nb) for k, v in buf.items()}
            else:
                out = buf.unbind(nb)
            cols[name] = out
        return out

    def column(self, t: int) -> tuple:
        """The index of time step ``t`` (after the batch dims)."""
        return (slice(None),) * len(self.batch_size) + (t,)

    # ---------------------------------------------------------------- reading
    def done_at(self, t: int) -> bool:
        """Whether any (sub-)env's step ``t`` ended an episode."""
        v = self.numpy()
        term, trunc = v["terminated"][..., t, :], v["truncated"][..., t, :]
        if term.size == 1:  # (numpy's any costs more than the scalars)
            return bool(term.item()) or bool(trunc.item())
        return bool(term.any() or trunc.any())

    def root_tensordict(self, t: int) -> TensorDictBase:
        """The root of step ``t`` as the generic loop has it: observations of column ``t``
        (copies), done flags False, the action of step ``t``."""
        bs = self.batch_size
        src: dict[Any, Any] = {k: v[self.column(t)].clone() for k, v in self.root.items()}
        false = torch.zeros((*bs, 1), dtype=torch.bool)
        for k in FLAGS:
            src[k] = false.clone()
        src["action"] = self.action[self.column(t)].clone()
        return _td(src, bs)

    def write_step(self, t: int, next_td: TensorDictBase, root_td: TensorDictBase) -> bool:
        """Write a generic step: ``next_td`` (the step's ``"next"`` entries) into column ``t``
        and ``root_td``'s observations (the next step's root) into root column ``t + 1``.
        Returns whether any sub-env was done."""
        for k, c in self.columns("next").items():
            c[t].copy_(next_td.get(k))
        for k, c in self.columns("root").items():
            c[t + 1].copy_(root_td.get(k))
        for k in ("reward", "terminated", "truncated"):
            self.columns(k)[t].copy_(next_td.get(k))
        done = next_td.get("done")
        return done.item() if done.numel() == 1 else bool(done.any())

    def to_tensordict(
        self,
        n: int,
        flags0: dict[str, torch.Tensor],
        extra: dict[Any, torch.Tensor] | None = None,
    ) -> TensorDictBase:
        """The first ``n`` steps as the generic loop would have stacked them (batch
        ``(*batch, n)``): root observations, the action and ``extra`` root entries
        (``[*batch, n, ...]`` tensors), the root done flags (``flags0`` at step 0, False
        after), and ``"next"``. Shared buffers are copied; others are cut (or used as they
        are when ``n == T``)."""
        nb = len(self.batch_size)
        bs = torch.Size((*self.batch_size, n))
        upto = (slice(None),) * nb + (slice(0, n),)
        copy = self.shared

        def cut(t: torch.Tensor, full: int) -> torch.Tensor:
            if n == full and not copy:
                return t
            v = t[upto]
            return v.clone() if copy else v.contiguous()

        src: dict[Any, Any] = {k: cut(v, self.T + 1) for k, v in self.root.items()}
        for k in FLAGS:
            flag = torch.zeros((*bs, 1), dtype=torch.bool)
            flag[self.column(0)] = flags0[k]
            src[k] = flag
        src["action"] = cut(self.action, self.T)
        if extra:
            src.update(extra)
        term, trunc = cut(self.terminated, self.T), cut(self.truncated, self.T)
        nxt: dict[Any, Any] = {k: cut(v, self.T) for k, v in self.next.items()}
        nxt["reward"] = cut(self.reward, self.T)
        nxt["done"] = term | trunc
        nxt["terminated"] = term
        nxt["truncated"] = trunc
        src["next"] = _td(nxt, bs)
        return _td(src, bs)

    def __repr__(self) -> str:
        return (
            f"StepBuffers(batch_size={tuple(self.batch_size)}, T={self.T}, "
            f"keys={list(self.root)}, shared={self.shared})"
        )


def _td(src: dict, batch_size: torch.Size) -> TensorDictBase:
    """A TensorDict from a dict whose keys may be nested tuples."""
    if all(isinstance(k, str) for k in src):
        return TensorDict._new_unsafe(src, batch_size=batch_size)
    out = TensorDict(batch_size=batch_size)
    for k, v in src.items():
        out.set(k, v)
    return out
