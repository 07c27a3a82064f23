"""Batched envs: the shared base (specs, reset masks, state) and SerialEnv."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.envs._fast import (
    FLAGS,
    CollectBuffers,
    RolloutBuffers,
    collect_row,
    row_views,
    run_env,
    run_envs_lockstep,
    supports_fast,
)
from streamrl.envs.common import EnvBase

__all__ = ["SerialEnv"]


def _lazy(name: str) -> property:
    """An EnvBase spec property that starts the batched env before reading."""
    base = getattr(EnvBase, name)

    def fget(self: _BatchedEnv) -> Any:
        self._ensure_started()
        return base.fget(self)

    return property(fget, base.fset, doc=base.__doc__)


def td_from_keys(src: dict, batch_size: torch.Size) -> TensorDict:
    """A TensorDict from a dict whose keys may be nested tuples."""
    if all(isinstance(k, str) for k in src):
        return TensorDict._new_unsafe(src, batch_size=batch_size)
    out = TensorDict(batch_size=batch_size)
    for k, v in src.items():
        out.set(k, v)
    return out


class _BatchedEnv(EnvBase):
    """N copies of an env stepped as one env of batch size ``[N, *sub_batch]``.

    Sub-env ``i`` is seeded with ``seed + i`` (``seed + i * M`` for sub-envs of batch size
    ``M``). The envs are built on first use (reading a
    spec, reset, step).

    Done sub-envs: ``step`` never resets anything (unlike gymnasium's vector envs, which
    reset on the following step). ``step_and_maybe_reset`` (what ``rollout`` uses) resets the
    sub-envs whose ``("next", "done")`` is set and returns, as the root of the next step,
    their reset observation with done flags False; the step itself keeps the final
    observation under ``"next"``. ``reset`` with a ``"_reset"`` mask of shape
    ``(*batch_size, 1)`` resets only the marked sub-envs and returns every row (the others
    keep their current observation and flags).
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: Callable[..., EnvBase] | Sequence[Callable[..., EnvBase]],
        create_env_kwargs: dict | Sequence[dict] | None = None,
        device: Any = None,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, found {num_workers!r}")
        is_seq = isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, str)
        fns = list(create_env_fn) if is_seq else None
        if fns is None:
            fns = [create_env_fn] * num_workers
        if len(fns) != num_workers:
            raise ValueError(
                f"expected {num_workers} env constructors, found {len(fns)} in create_env_fn"
            )
        for fn in fns:
            if not callable(fn):
                raise TypeError(f"create_env_fn must be callable, found {type(fn).__name__}")
        if create_env_kwargs is None or isinstance(create_env_kwargs, dict):
            kwargs = [dict(create_env_kwargs or {}) for _ in range(num_workers)]
        else:
            kwargs = [dict(k) for k in create_env_kwargs]
            if len(kwargs) != num_workers:
                raise ValueError(f"expected {num_workers} create_env_kwargs, found {len(kwargs)}")
        super().__init__(device=device, batch_size=(num_workers,))
        self.num_workers = num_workers
        self.create_env_fn = fns
        self.create_env_kwargs = kwargs
        self._started = False
        self._fast = False
        self._state: dict = {}

    @property
    def batch_size(self) -> torch.Size:
        """``[N, *sub_env_batch_size]`` (reading it builds the sub-envs, as reading a spec
        does: the sub-envs' own batch size is only known then)."""
        if not self.__dict__.get("_started", True) and not self._closed:
            self._ensure_started()
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: Any) -> None:
        self._batch_size = torch.Size(value)

    full_observation_spec = _lazy("full_observation_spec")
    observation_spec = full_observation_spec
    full_action_spec = _lazy("full_action_spec")
    full_reward_spec = _lazy("full_reward_spec")
    full_done_spec = _lazy("full_done_spec")
    full_state_spec = _lazy("full_state_spec")
    state_spec = full_state_spec

    # -------------------------------------------------------------- start-up
    def _ensure_started(self) -> None:
        if not self._started:
            self._check_open()
            self._started = True  # first: _start itself reads batch_size and specs
            try:
                self._start()
            except BaseException:
                self._started = False
                raise

    def start(self) -> None:
        """Build the sub-envs now (otherwise done on first use)."""
        self._ensure_started()

    def _start(self) -> None:
        raise NotImplementedError

    def _set_meta(self, metas: list[dict]) -> None:
        """Set batch size and specs from the sub-envs' metadata (all must agree)."""
        first = metas[0]
        for i, meta in enumerate(metas[1:], 1):
            for name in (
                "full_observation_spec",
                "full_action_spec",
                "full_reward_spec",
                "full_done_spec",
                "full_state_spec",
                "batch_size",
            ):
                if meta[name] != first[name]:
                    raise ValueError(
                        f"sub-env {i} has a different {name} than sub-env 0; batched envs "
                        "need identical sub-envs"
                    )
        n = self.num_workers
        self.batch_size = torch.Size((n, *first["batch_size"]))
        # seeds per sub-env: a batched sub-env takes one seed per env it holds
        self._seed_stride = max(1, torch.Size(first["batch_size"]).numel())
        for name in (
            "full_observation_spec",
            "full_action_spec",
            "full_reward_spec",
            "full_done_spec",
            "full_state_spec",
        ):
            spec = first[name]
            setattr(self, "_" + name, spec.expand(n, *spec.shape))
        self.strict_action_bounds = first["strict_action_bounds"]
        self._obs_keys = self._full_observation_spec.keys(True, True)
        self._obs_specs = {k: self._full_observation_spec[k] for k in self._obs_keys}
        self._state = {k: s.zero() for k, s in self._obs_specs.items()}
        for k in FLAGS:
            self._state[k] = torch.zeros((*self.batch_size, 1), dtype=torch.bool)

    @staticmethod
    def _meta_of(env: EnvBase) -> dict:
        return {
            "batch_size": env.batch_size,
            "full_observation_spec": env.full_observation_spec,
            "full_action_spec": env.full_action_spec,
            "full_reward_spec": env.full_reward_spec,
            "full_done_spec": env.full_done_spec,
            "full_state_spec": env.full_state_spec,
            "fast": supports_fast(env),
            "strict_action_bounds": getattr(env, "strict_action_bounds", False),
        }

    # --------------------------------------------------------------- helpers
    def _reset_mask(self, tensordict: TensorDictBase | None) -> list[int]:
        if tensordict is None:
            return list(range(self.num_workers))
        mask = tensordict.get("_reset", None)
        if mask is None:
            return list(range(self.num_workers))
        mask = mask.reshape(self.num_workers, -1).any(-1)
        return mask.nonzero().flatten().tolist()

    def _state_td(self) -> TensorDict:
        return td_from_keys({k: v.clone() for k, v in self._state.items()}, self.batch_size)

    def _rollout_ok(self, tensordict: TensorDictBase) -> bool:
        if not self._fast or self.device not in (None, torch.device("cpu")):
            return False
        return set(tensordict.keys()) <= {*self._obs_keys, *FLAGS}

    def _rollout_actions(self, max_steps: int) -> torch.Tensor:
        """Random actions for a fast rollout, laid out ``[N, T, ...]``."""
        return self.action_spec.rand((max_steps,)).transpose(0, 1).contiguous()

    def _set_state_row(self, i: int, obs: dict, bufs: RolloutBuffers, n: int, reset: bool) -> None:
        """After a fast rollout: sub-env ``i``'s current observation and done flags."""
        for k in self._obs_keys:
            self._state[k][i] = torch.as_tensor(obs[k])
        te = bool(bufs.terminated[i, n - 1]) and not reset
        tr = bool(bufs.truncated[i, n - 1]) and not reset
        self._state["terminated"][i] = te
        self._state["truncated"][i] = tr
        self._state["done"][i] = te or tr

    def _collect_buffers(self, T: int) -> CollectBuffers | None:
        self._ensure_started()
        if not self._fast or self.device not in (None, torch.device("cpu")):
            return None
        reward_dtype = self._full_reward_spec["reward"].dtype
        return CollectBuffers(self._obs_specs, reward_dtype, (self.num_workers,), T)

    def _collect_end_state(self, bufs: CollectBuffers) -> None:
        """After collecting into ``bufs``: what step_and_maybe_reset leaves in the state (the
        next root observations, flags all False)."""
        col = bufs.column(bufs.T)
        for k in self._obs_keys:
            self._state[k].copy_(bufs.root[k][col])
        for k in FLAGS:
            self._state[k].zero_()

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed sub-env ``i`` with ``seed + i``; returns ``seed + num_workers``."""
        self._ensure_started()
        return super().set_seed(seed, static_seed)


class SerialEnv(_BatchedEnv):
    """N envs stepped one after the other in this process; batch size ``[N]``.

    Sub-env ``i`` gets seed ``seed + i``. ``step`` never resets a done sub-env;
    ``step_and_maybe_reset`` and ``rollout`` do, and the next step's root then holds the
    reset observation (the final one stays under ``"next"``). ``reset`` with a ``"_reset"``
    mask resets only the marked sub-envs. A random-action ``rollout`` writes straight into
    preallocated buffers when every sub-env supports it (gymnasium envs do).

    Args:
        num_workers: number of sub-envs.
        create_env_fn: a callable building one env (or a list of N of them).
        create_env_kwargs: keyword arguments for the callable(s).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> env = SerialEnv(2, lambda: GymEnv("Pendulum-v1"))
    >>> env.rollout(3)["next", "observation"].shape
    torch.Size([2, 3, 3])
    >>> env.close()
    """

    def _start(self) -> None:
        self._envs = []
        try:
            for fn, kw in zip(self.create_env_fn, self.create_env_kwargs, strict=True):
                self._envs.append(fn(**kw))
            metas = [self._meta_of(e) for e in self._envs]
            self._set_meta(metas)
        except BaseException:
            for e in self._envs:
                e.close()
            raise
        self._fast = all(m["fast"] for m in metas)

    def _set_seed(self, seed: int | None) -> None:
        for i, env in enumerate(self._envs):
            env.set_seed(None if seed is None else seed + i * self._seed_stride)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        self._ensure_started()
        for i in self._reset_mask(tensordict):
            env = self._envs[i]
            if self._fast:
                obs = env._np_reset()
                for k in self._obs_keys:
                    self._state[k][i] = torch.as_tensor(obs[k])
            else:
                out = env.reset()
                for k in self._obs_keys:
                    self._state[k][i] = out.get(k)
            for k in FLAGS:
                self._state[k][i] = False
        return self._state_td()

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        actions = tensordict.get("action")
        n = self.num_workers
        if self._fast:
            native = self._envs[0]._native_actions(actions)
            out = {k: s.zero() for k, s in self._obs_specs.items()}
            views = {k: v.numpy() for k, v in out.items()}
            reward = torch.zeros(n, 1, dtype=self._full_reward_spec["reward"].dtype)
            term = torch.zeros(n, 1, dtype=torch.bool)
            trunc = torch.zeros(n, 1, dtype=torch.bool)
            rew_np, term_np, trunc_np = reward.numpy(), term.numpy(), trunc.numpy()
            for i, env in enumerate(self._envs):
                obs, r, te, tr = env._np_step(native[i])
                for k, view in views.items():
                    view[i] = obs[k]
                rew_np[i] = r
                term_np[i] = te
                trunc_np[i] = tr
            out["reward"] = reward
            out["done"] = term | trunc
            out["terminated"] = term
            out["truncated"] = trunc
        else:
            # each sub-env sees its row of the root (observations, counters, flags...)
            root = tensordict.exclude("next")
            subs = [env.step(root[i]).get("next") for i, env in enumerate(self._envs)]
            stacked = torch.stack(subs, 0)
            out = {k: stacked.get(k) for k in stacked.keys(True, True)}
        for k, v in self._state.items():
            v.copy_(out[k])
        return td_from_keys(out, self.batch_size)

    def _rollout_fast(
        self, tensordict: TensorDictBase, max_steps: int, break_when_any_done: bool
    ) -> TensorDictBase | None:
        if not self._rollout_ok(tensordict):
            return None
        T = max_steps
        bufs = RolloutBuffers(
            self._obs_specs, self._full_reward_spec["reward"].dtype, (self.num_workers,), T
        )
        actions = self._rollout_actions(T)
        for k in self._obs_keys:
            bufs.root[k][:, 0] = tensordict.get(k)
        tensors = bufs.tensors()
        natives = [e._native_actions(actions[i]) for i, e in enumerate(self._envs)]
        views = [row_views(tensors, i) for i in range(self.num_workers)]
        if break_when_any_done:
            n = run_envs_lockstep(self._envs, natives, views, T)
            for i in range(self.num_workers):
                self._set_state_row(
                    i, {k: bufs.next[k][i, n - 1] for k in self._obs_keys}, bufs, n, reset=False
                )
        else:
            n = T
            for i, (env, act, view) in enumerate(zip(self._envs, natives, views, strict=True)):
                _, obs, was_reset = run_env(env, act, view, T, False)
                self._set_state_row(i, obs, bufs, n, was_reset)
        return bufs.to_tensordict(n, actions, tensordict)

    def _collect_step(self, action: torch.Tensor, bufs: CollectBuffers, t: int) -> bool:
        native = self._envs[0]._native_actions(action)
        any_done = False
        for i, (env, v) in enumerate(zip(self._envs, bufs.views, strict=True)):
            if collect_row(env, native[i], v, t):
                any_done = True
        return any_done

    def _collect_end(self, bufs: CollectBuffers) -> None:
        self._collect_end_state(bufs)

    def _close(self) -> None:
        for env in getattr(self, "_envs", []):
            env.close()

    def __repr__(self) -> str:
        return (
            f"SerialEnv(num_workers={self.num_workers}, batch_size={self.batch_size}, "
            f"device={self.device})"
        )
