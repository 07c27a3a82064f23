"""Random-action rollouts written straight into preallocated buffers (no per-step TensorDict).

An env opts in by implementing the array protocol (GymWrapper does):

- ``_np_obs_keys() -> list[str] | None``: flat observation keys, or None to opt out;
- ``_np_reset() -> dict[str, array]``;
- ``_np_step(native_action) -> (dict[str, array], reward, terminated, truncated)``;
- ``_native_actions(actions) -> sequence``: converts a batch of action tensors (leading dim:
  time) to what ``_np_step`` takes.

Buffers are shaped ``[*batch, T, ...]`` so that each sub-env writes one contiguous block; the
batched envs (serial or in worker processes) hand each sub-env its own row.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

FLAGS = ("done", "terminated", "truncated")


def supports_fast(env: Any) -> bool:
    """Whether ``env`` implements the array protocol (and does not opt out)."""
    # looked up on the class: wrappers that forward attributes (TransformedEnv) must not
    # pass for the env they wrap
    if getattr(type(env), "_np_obs_keys", None) is None:
        return False
    return env._np_obs_keys() is not None and not env.batch_size


class RolloutBuffers:
    """Preallocated ``[*batch, T, ...]`` tensors for one rollout, plus numpy views."""

    def __init__(
        self,
        obs_specs: dict[str, Any],
        reward_dtype: torch.dtype,
        batch: tuple,
        T: int,
        share: bool = False,
    ) -> None:
        nb = len(batch)

        def alloc(shape: tuple, dtype: torch.dtype, fill: bool = True) -> torch.Tensor:
            t = torch.zeros(shape, dtype=dtype) if fill else torch.empty(shape, dtype=dtype)
            return t.share_memory_() if share else t

        # specs carry the batch dims: insert T after them. Observation rows are all written
        # before they are read (rows past a break are cut off), so they skip the zero fill,
        # which matters for pixels.
        self.next = {
            k: alloc((*batch, T, *s.shape[nb:]), s.dtype, False) for k, s in obs_specs.items()
        }
        self.root = {
            k: alloc((*batch, T, *s.shape[nb:]), s.dtype, False) for k, s in obs_specs.items()
        }
        self.reward = alloc((*batch, T, 1), reward_dtype)
        self.terminated = alloc((*batch, T, 1), torch.bool)
        self.truncated = alloc((*batch, T, 1), torch.bool)
        self.batch = batch
        self.T = T

    def tensors(self) -> dict[str, Any]:
        """Every buffer by name (to hand to a worker process)."""
        return {
            "next": self.next,
            "root": self.root,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
        }

    def to_tensordict(self, n: int, actions: torch.Tensor, first: TensorDictBase) -> TensorDictBase:
        """Wrap the first ``n`` steps as a rollout TensorDict (batch ``(*batch, n)``);
        ``first`` is the root tensordict the rollout started from (its done flags)."""
        nb = len(self.batch)
        full = n == self.T

        def cut(t: torch.Tensor) -> torch.Tensor:
            if full:
                return t
            return t[(slice(None),) * nb + (slice(0, n),)].clone()

        bs = torch.Size((*self.batch, n))
        term, trunc = cut(self.terminated), cut(self.truncated)
        nxt = {k: cut(v) for k, v in self.next.items()}
        nxt["reward"] = cut(self.reward)
        nxt["done"] = term | trunc
        nxt["terminated"] = term
        nxt["truncated"] = trunc
        src: dict[str, Any] = {k: cut(v) for k, v in self.root.items()}
        for k in FLAGS:
            flag = torch.zeros((*bs, 1), dtype=torch.bool)
            flag.select(nb, 0).copy_(first.get(k))
            src[k] = flag
        src["action"] = actions if full else cut(actions)
        src["next"] = TensorDict._new_unsafe(nxt, batch_size=bs)
        return TensorDict._new_unsafe(src, batch_size=bs)


def row_views(tensors: dict[str, Any], index: Any) -> dict[str, Any]:
    """Numpy views of one sub-env's block (``index`` into the batch dims; None: all)."""

    def view(t: torch.Tensor) -> Any:
        return (t if index is None else t[index]).numpy()

    return {
        "next": {k: view(v) for k, v in tensors["next"].items()},
        "root": {k: view(v) for k, v in tensors["root"].items()},
        "reward": view(tensors["reward"]),
        "terminated": view(tensors["terminated"]),
        "truncated": view(tensors["truncated"]),
    }


def run_env(
    env: Any, actions: Any, views: dict[str, Any], T: int, stop: bool
) -> tuple[int, dict[str, Any], bool]:
    """Step one env ``T`` times with ``actions`` (native), writing rows into ``views``.

    Done episodes are reset and the next row's root holds the reset observation; with
    ``stop`` the loop ends after the first done step. The root observation of row 0 is
    written by the caller. Returns ``(steps written, current observation, whether the
    last step ended in a reset)``.
    """
    step, reset = env._np_step, env._np_reset
    keys = list(views["next"])
    nxt, root = views["next"], views["root"]
    rew, term, trunc = views["reward"], views["terminated"], views["truncated"]
    obs: dict[str, Any] = {}
    if len(keys) == 1:
        (key,) = keys
        nxt1, root1 = nxt[key], root[key]
        for t in range(T):
            obs, r, te, tr = step(actions[t])
            nxt1[t] = obs[key]
            rew[t] = r
            if te or tr:
                term[t] = te
                trunc[t] = tr
                if stop:
                    return t + 1, obs, False
                obs = reset()
                if t + 1 == T:
                    return T, obs, True
                root1[t + 1] = obs[key]
            elif t + 1 < T:
                # copy from our own contiguous row: cheaper than from the env's array
                # (rendered frames are often transposed views)
                root1[t + 1] = nxt1[t]
        return T, obs, False
    for t in range(T):
        obs, r, te, tr = step(actions[t])
        for k in keys:
            nxt[k][t] = obs[k]
        rew[t] = r
        if te or tr:
            term[t] = te
            trunc[t] = tr
            if stop:
                return t + 1, obs, False
            obs = reset()
            if t + 1 == T:
                return T, obs, True
            for k in keys:
                root[k][t + 1] = obs[k]
        elif t + 1 < T:
            for k in keys:
                root[k][t + 1] = nxt[k][t]
    return T, obs, False


def run_envs_lockstep(envs: list, actions: list, views: list, T: int) -> int:
    """Step several envs together until the first step where any is done (inclusive)."""
    for t in range(T):
        any_done = False
        for env, act, v in zip(envs, actions, views, strict=True):
            obs, r, te, tr = env._np_step(act[t])
            for k, buf in v["next"].items():
                buf[t] = obs[k]
                if t + 1 < T:
                    v["root"][k][t + 1] = buf[t]
            v["reward"][t] = r
            if te or tr:
                v["terminated"][t] = te
                v["truncated"][t] = tr
                any_done = True
        if any_done:
            return t + 1
    return T


# ------------------------------------------------------------- per-step collection (policy)
# A collector that drives an env with a policy, one step at a time, can skip the per-step
# TensorDicts too: ``env._collect_step(action, bufs, t)`` writes step ``t``'s results into
# preallocated ``[*batch, T]`` buffers (and the next root observation, after resetting done
# sub-envs, into column ``t + 1`` of the root buffers) and returns whether any sub-env was done.
# Envs that support it return a :class:`CollectBuffers` from ``env._collect_buffers(T)``
# (None: they do not).


class CollectBuffers:
    """Preallocated buffers of one collected batch: ``next`` observations, reward and flags
    ``[*batch, T, ...]``; root observations ``[*batch, T + 1, ...]`` (column ``T`` is where
    the batch ends: the first root observation of the next batch)."""

    def __init__(self, obs_specs: dict[str, Any], reward_dtype: torch.dtype, batch: tuple, T: int):
        nb = len(batch)
        self.next = {
            k: torch.empty((*batch, T, *s.shape[nb:]), dtype=s.dtype) for k, s in obs_specs.items()
        }
        self.root = {
            k: torch.empty((*batch, T + 1, *s.shape[nb:]), dtype=s.dtype)
            for k, s in obs_specs.items()
        }
        self.reward = torch.zeros((*batch, T, 1), dtype=reward_dtype)
        self.terminated = torch.zeros((*batch, T, 1), dtype=torch.bool)
        self.truncated = torch.zeros((*batch, T, 1), dtype=torch.bool)
        self.batch = batch
        self.T = T
        # numpy views: one dict for an unbatched env, one per sub-env for a batched one
        tensors = {
            "next": self.next,
            "root": self.root,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
        }
        if nb == 0:
            self.views: Any = row_views(tensors, None)
        else:
            self.views = [row_views(tensors, i) for i in range(batch[0])]

    def columns(self) -> dict[str, Any]:
        """Per-step views (``unbind`` along time, made once): ``next[k][t]``, ``root[k][t]``,
        ``reward[t]``, ``terminated[t]``, ``truncated[t]``; writing one is a cheap
        ``copy_``."""
        cols = self.__dict__.get("_columns")
        if cols is None:
            nb = len(self.batch)
            cols = {
                "next": {k: v.unbind(nb) for k, v in self.next.items()},
                "root": {k: v.unbind(nb) for k, v in self.root.items()},
                "reward": self.reward.unbind(nb),
                "terminated": self.terminated.unbind(nb),
                "truncated": self.truncated.unbind(nb),
            }
            self._columns = cols
        return cols

    def column(self, t: int) -> tuple:
        """The index of time step ``t`` (after the batch dims)."""
        return (slice(None),) * len(self.batch) + (t,)

    def next_tensordict(self) -> TensorDictBase:
        """The ``"next"`` entries of the batch (observations, reward, done flags)."""
        bs = torch.Size((*self.batch, self.T))
        src: dict[str, Any] = dict(self.next)
        src["reward"] = self.reward
        src["done"] = self.terminated | self.truncated
        src["terminated"] = self.terminated
        src["truncated"] = self.truncated
        return TensorDict._new_unsafe(src, batch_size=bs)


def collect_row(env: Any, native_action: Any, v: dict[str, Any], t: int) -> bool:
    """Step one unbatched array-protocol env with ``native_action``: write row ``t`` of its
    numpy views ``v`` and row ``t + 1`` of its root observations (the reset observation when
    the step ended the episode). Returns whether it was done."""
    obs, r, te, tr = env._np_step(native_action)
    nxt, root = v["next"], v["root"]
    for k, buf in nxt.items():
        buf[t] = obs[k]
    v["reward"][t] = r
    if te or tr:
        v["terminated"][t] = te
        v["truncated"][t] = tr
        fresh = env._np_reset()
        for k, buf in root.items():
            buf[t + 1] = fresh[k]
        return True
    for k, buf in root.items():
        buf[t + 1] = nxt[k][t]
    return False
