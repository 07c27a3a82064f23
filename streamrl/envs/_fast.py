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

from streamrl.data.specs import Categorical

FLAGS = ("done", "terminated", "truncated")


def supports_fast(env: Any) -> bool:
    """Whether ``env`` implements the array protocol (and does not opt out)."""
    # looked up on the class: wrappers that forward attributes (TransformedEnv) must not
    # pass for the env they wrap
    if getattr(type(env), "_np_obs_keys", None) is None:
        return False
    if _overrides_stepping(type(env)):
        return False
    return env._np_obs_keys() is not None and not env.batch_size


_STEPPING = ("_step", "_reset", "step", "reset", "maybe_reset", "step_and_maybe_reset")


def _overrides_stepping(cls: type) -> bool:
    """Whether a subclass of the class implementing the array protocol redefines how it
    steps or resets (then only the generic path runs that code)."""
    for klass in cls.__mro__:
        if "_np_step" in klass.__dict__:
            return False
        if any(name in klass.__dict__ for name in _STEPPING):
            return True
    return False


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
        self.reused = False
        self._make_views()

    def _make_views(self) -> None:
        # numpy views: one dict for an unbatched env, one per sub-env for a batched one
        tensors = self.tensors()
        if not self.batch:
            self.views: Any = row_views(tensors, None)
        else:
            self.views = [row_views(tensors, i) for i in range(self.batch[0])]
        self.__dict__.pop("_columns", None)
        self.__dict__.pop("_root_columns", None)

    def tensors(self) -> dict[str, Any]:
        """Every buffer by name (to hand to a worker process)."""
        return {
            "next": self.next,
            "root": self.root,
            "reward": self.reward,
            "terminated": self.terminated,
            "truncated": self.truncated,
        }

    def share_memory_(self) -> CollectBuffers:
        """Move the buffers into shared memory; from then on they are reused from batch to
        batch, so the wrapped batches copy them (``reused``)."""
        for t in (*self.next.values(), *self.root.values()):
            t.share_memory_()
        for t in (self.reward, self.terminated, self.truncated):
            t.share_memory_()
        self.reused = True
        self._make_views()  # the storage moved
        return self

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

    def root_columns(self) -> dict[str, Any]:
        """``columns()["root"]`` alone (the rest is not needed where rows are written
        through the numpy views)."""
        cols = self.__dict__.get("_columns")
        if cols is not None:
            return cols["root"]
        root = self.__dict__.get("_root_columns")
        if root is None:
            nb = len(self.batch)
            root = self._root_columns = {k: v.unbind(nb) for k, v in self.root.items()}
        return root

    def column(self, t: int) -> tuple:
        """The index of time step ``t`` (after the batch dims)."""
        return (slice(None),) * len(self.batch) + (t,)

    def next_tensordict(self) -> TensorDictBase:
        """The ``"next"`` entries of the batch (observations, reward, done flags)."""
        bs = torch.Size((*self.batch, self.T))
        own = (lambda t: t.clone()) if self.reused else (lambda t: t)
        src: dict[str, Any] = {k: own(v) for k, v in self.next.items()}
        src["reward"] = own(self.reward)
        src["done"] = self.terminated | self.truncated
        src["terminated"] = own(self.terminated)
        src["truncated"] = own(self.truncated)
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


# root entries step_mdp drops (exclude_action, exclude_reward) or collection rewrites
_NOT_CARRIED = frozenset({"action", "reward", "next", "collector", *FLAGS})


def collect_steps(
    env: Any, td: TensorDictBase, T: int, policy: Any, project: bool
) -> tuple[TensorDictBase, TensorDictBase] | TensorDictBase | None:
    """``T`` steps of ``policy`` (None: random actions) in ``env`` from the root ``td``,
    with done sub-envs reset (``step_and_maybe_reset``), written into preallocated
    ``[*batch, T]`` buffers through ``env._collect_step``.

    Returns ``(batch, next root)``: the batch holds exactly what stacking the per-step
    tensordicts of the generic loop holds. ``project``: actions are projected into the action
    spec before each step. Returns None (nothing done) when ``env`` or ``td`` does not allow
    it, and the policy's output of the first step when that needs the generic loop (entries
    under ``"next"``, nested or non-tensor entries): continue from it without calling the
    policy again.
    """
    if "next" in td.keys():
        return None
    _, action_keys, action_spec, _ = env._action_info()
    if list(action_keys) != ["action"]:
        return None
    bufs = env._collect_buffers(T)
    if bufs is None:
        return None
    batch_size = env.batch_size
    nb = len(batch_size)
    obs_keys = list(bufs.root)
    root_cols = bufs.root_columns()
    for k in obs_keys:
        root_cols[k][0].copy_(td.get(k))
    flags0 = {k: td.get(k) for k in FLAGS}
    false = torch.zeros((*batch_size, 1), dtype=torch.bool)
    check = env.check_actions
    # an in-range discrete action of the spec's dtype projects onto itself: skip both the
    # projection and the (same) check then
    discrete = action_spec is not None and action_spec.domain != "continuous"
    values_ok = _values_check(action_spec) if discrete else None
    project = project and policy is not None
    skip = {*obs_keys, *FLAGS, "collector"}
    extra: dict = {}  # root entries the policy writes (action, logits...): [*batch, T]
    extra_cols: dict = {}
    for t in range(T):
        before = {k: td.get(k) for k in obs_keys}
        td = env.rand_action(td) if policy is None else policy(td)
        # action: set once it is known to be valid (then neither projected nor checked)
        action = td.get("action", None)
        if not (
            discrete
            and action is not None
            and action.dtype == action_spec.dtype
            and action.shape == action_spec.shape
            and values_ok(action)
        ):
            if project:
                env.full_action_spec.project(td)
            action = None
        if t == 0:
            extra = _extra_buffers(td, skip, batch_size, T)
            if extra is None:
                return td
            extra_cols = {k: v.unbind(nb) for k, v in extra.items()}
        if action is None:  # not checked above
            action = td.get("action", None)
            if action is None:
                raise KeyError(f"step: missing action key 'action'; found keys {list(td.keys())}")
            if check:
                env._check_action(action, action_spec)
        for k, c in extra_cols.items():
            c[t].copy_(td.get(k))
        for k, old in before.items():
            v = td.get(k)
            if v is not old:  # the policy replaced an observation: record its value
                root_cols[k][t].copy_(v)
        env._collect_step(action, bufs, t)
        # the next root: step_mdp (no action, reward or "next") + reset observations
        src = {k: v for k, v in td.items() if k not in _NOT_CARRIED}
        for k in obs_keys:
            obs = root_cols[k][t + 1]
            src[k] = obs if t + 1 < T else obs.clone()
        for k in FLAGS:
            src[k] = false if t + 1 < T else false.clone()
        td = TensorDict._new_unsafe(src, batch_size=batch_size)
    env._collect_end(bufs)
    return _wrap(bufs, extra, flags0, batch_size, T), td


def _extra_buffers(td: TensorDictBase, skip: set, batch_size: torch.Size, T: int) -> dict | None:
    nb = len(batch_size)
    out = {}
    for k in td.keys():
        if k in skip:
            continue
        if k == "next":
            return None
        v = td.get(k)
        if not isinstance(v, torch.Tensor) or v.shape[:nb] != batch_size:
            return None  # nested or non-tensor entries: the generic loop handles them
        if v.requires_grad and torch.is_grad_enabled():
            return None  # stacking keeps the autograd graph; buffers would not
        out[k] = torch.empty((*batch_size, T, *v.shape[nb:]), dtype=v.dtype, device=v.device)
    return out


def _wrap(
    bufs: CollectBuffers, extra: dict, flags0: dict, batch_size: torch.Size, T: int
) -> TensorDictBase:
    nb = len(batch_size)
    bs = torch.Size((*batch_size, T))
    upto = (slice(None),) * nb + (slice(0, T),)
    # (a clone when the buffers are reused: contiguous() may return a view of them)
    src: dict = {
        k: v[upto].clone() if bufs.reused else v[upto].contiguous() for k, v in bufs.root.items()
    }
    for k in FLAGS:
        flag = torch.zeros((*bs, 1), dtype=torch.bool)
        flag[bufs.column(0)] = flags0[k]
        src[k] = flag
    src.update(extra)
    src["next"] = bufs.next_tensordict()
    return TensorDict._new_unsafe(src, batch_size=bs)


def _values_check(spec: Any) -> Any:
    """``spec._values_ok``, with a plain-Python version for a few unmasked categorical
    actions (a handful of tensor ops cost more than the list)."""
    if type(spec) is Categorical and spec.mask is None and spec.shape.numel() <= 64:
        n = spec.n

        def ok(action: torch.Tensor) -> bool:
            return all(0 <= v < n for v in action.reshape(-1).tolist())

        return ok
    return spec._values_ok
