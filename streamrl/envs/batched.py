"""Batched envs: the shared base (specs, reset masks, state) and SerialEnv."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import Composite
from streamrl.envs.batched_io import BatchedIO
from streamrl.envs.common import EnvBase
from streamrl.envs.step_buffers import FLAGS, StepBuffers, _td

__all__ = ["SerialEnv"]


_SPECS = (
    "full_observation_spec",
    "full_action_spec",
    "full_reward_spec",
    "full_done_spec",
    "full_state_spec",
)


def _lazy(name: str) -> property:
    """An EnvBase spec property that starts the batched env before reading."""
    base = getattr(EnvBase, name)

    def fget(self: _BatchedEnv) -> Any:
        self._ensure_started()
        return base.fget(self)

    return property(fget, base.fset, doc=base.__doc__)


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
        *,
        pin_memory: bool = False,
        allow_step_when_done: bool = False,
    ) -> None:
        # both deprecated in TorchRL 0.14, which raises ValueError for True, as here
        if pin_memory is not False:
            raise ValueError(
                f"pin_memory is not supported by batched envs (TorchRL deprecated it), found "
                f"pin_memory={pin_memory!r}; move the collected batches with .pin_memory()"
            )
        if allow_step_when_done is not False:
            raise ValueError(
                "allow_step_when_done is not supported by batched envs (TorchRL deprecated "
                f"it), found allow_step_when_done={allow_step_when_done!r}; step() never "
                "checks done flags: a done sub-env steps on until it is reset"
            )
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
        # each sub-env checks its own resets (done right after a reset raises unless allowed)
        super().__init__(device=device, batch_size=(num_workers,), allow_done_after_reset=True)
        self.num_workers = num_workers
        self.create_env_fn = fns
        self.create_env_kwargs = kwargs
        self._started = False
        # the current root of every sub-env (what a partial reset leaves in the other rows);
        # after step_into it is read lazily from the buffers: (buffers, column, stopped)
        self._state: dict = {}
        self._pending: tuple | None = None
        self._scratch: StepBuffers | None = None

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
            for name in (*_SPECS, "batch_size"):
                if meta[name] != first[name]:
                    raise ValueError(
                        f"sub-env {i} has a different {name} than sub-env 0; batched envs "
                        "need identical sub-envs"
                    )
        n = self.num_workers
        self.batch_size = torch.Size((n, *first["batch_size"]))
        # seeds per sub-env: a batched sub-env takes one seed per env it holds
        self._seed_stride = max(1, torch.Size(first["batch_size"]).numel())
        for name in _SPECS:
            spec = first[name]
            setattr(self, "_" + name, spec.expand(n, *spec.shape))
        self.strict_action_bounds = first["strict_action_bounds"]
        self._obs_keys = list(self._full_observation_spec.keys(True, True))
        self._obs_specs = {k: self._full_observation_spec[k] for k in self._obs_keys}
        self._state = {k: s.zero() for k, s in self._obs_specs.items()}
        for k in FLAGS:
            self._state[k] = torch.zeros((*self.batch_size, 1), dtype=torch.bool)
        # every done flag, nested ones (per agent group) too
        self._done_keys = [*FLAGS]
        for k in self._full_done_spec.keys(True, True):
            if k not in self._state:
                self._state[k] = self._full_done_spec[k].zero()
                self._done_keys.append(k)
        # state entries that are no observation: the root keeps them too (what a reset
        # returned or was given, what the last step was given)
        state_spec = self._full_state_spec
        for k in state_spec.keys(True, True):
            if k not in self._state:
                self._state[k] = state_spec[k].zero()
        # sub-envs whose entries do not fit flat step buffers (a state spec, several action
        # keys, nested entries) step through the rows of ``_io``; every sub-env resets there
        self._general = self._flat_buffers(1) is None
        outputs = {**self._obs_specs}
        for spec in (self._full_reward_spec, self._full_done_spec):
            outputs.update({k: spec[k] for k in spec.keys(True, True)})
        self._io = BatchedIO(
            self.batch_size, self._full_action_spec, self._full_state_spec, outputs,
            self._state,
        )
        # nested entries with dims of their own (a multi-agent env's groups, [N, n_agents]):
        # the batch size their TensorDicts get, outer ones first
        nb = len(self.batch_size)
        self._nested_dims = {
            k: spec.shape
            for full in (self._full_observation_spec, self._full_reward_spec,
                         self._full_done_spec, self._full_state_spec)
            for k, spec in full.items(True) if isinstance(spec, Composite) and
            len(spec.shape) > nb
        }
        self._meta = first

    @staticmethod
    def _meta_of(env: EnvBase) -> dict:
        meta = {name: getattr(env, name) for name in _SPECS}
        meta["batch_size"] = env.batch_size
        meta["strict_action_bounds"] = getattr(env, "strict_action_bounds", False)
        return meta

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
        self._sync_state()
        return self._nest(_td({k: v.clone() for k, v in self._state.items()}, self.batch_size))

    def _nest(self, td: TensorDictBase) -> TensorDictBase:
        """``td`` with its nested TensorDicts batched as their specs say (an agent group:
        ``[N, n_agents]``, as a sub-env's has ``[n_agents]``)."""
        for key, shape in self._nested_dims.items():
            sub = td.get(key, None)
            if isinstance(sub, TensorDictBase) and sub.batch_size != shape:
                sub.batch_size = shape
        return td

    def _sync_state(self) -> None:
        """Bring ``_state`` up to date after ``step_into`` (done lazily: most steps are
        followed by more steps, not by a partial reset)."""
        if self._pending is None:
            return
        bufs, col, stopped = self._pending
        self._pending = None
        c = bufs.column(col)
        for k in self._obs_keys:
            self._state[k].copy_(bufs.root[k][c])
        if stopped:  # stepped with break_when_any_done: nothing was reset
            last = bufs.column(col - 1)
            self._state["terminated"].copy_(bufs.terminated[last])
            self._state["truncated"].copy_(bufs.truncated[last])
            torch.logical_or(
                self._state["terminated"], self._state["truncated"], out=self._state["done"]
            )
        else:
            for k in FLAGS:
                self._state[k].zero_()

    def _step_into(
        self, buffers: StepBuffers, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        if self._pending is not None and self._pending[0] is not buffers:
            self._sync_state()
        n = self._step_rows(buffers, t, steps, break_when_any_done)
        self._pending = (buffers, t + n, break_when_any_done)
        return n

    def _step_rows(
        self, buffers: StepBuffers, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        """Step every sub-env into its row of ``buffers`` (see ``step_into``)."""
        raise NotImplementedError

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        self._ensure_started()
        self._sync_state()  # the rows not reset keep their current root
        rows = self._reset_mask(tensordict)
        # the state entries given reach the sub-envs being reset
        self._io.set_inputs(tensordict, rows, action=False)
        self._reset_rows(rows)
        return self._state_td()

    def _reset_rows(self, rows: list[int]) -> None:
        """Reset the sub-envs ``rows`` through their rows of ``_io``."""
        raise NotImplementedError

    def _step_io(self, rows: list[int] | None = None) -> None:
        """Step the sub-envs ``rows`` (None: all) through their rows of ``_io`` (the general
        path)."""
        raise NotImplementedError

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._general:
            # the action, the given state entries and the root's observations (the
            # caller's, as the flat path below; entries that a transform inside a sub-env
            # carries from step to step, such as a step count) reach the sub-envs; the
            # entries of the output specs come back
            self._sync_state()
            for k in self._obs_keys:
                val = tensordict.get(k, None)
                if val is not None and val.shape == self._state[k].shape:
                    self._state[k].copy_(val)
            self._io.set_inputs(tensordict)
            self._step_io()
            out = self._nest(self._io.read_outputs())
            self._io.carry_state()
            for k in (*self._obs_keys, *self._done_keys):
                self._state[k].copy_(out.get(k))
            return out
        # one step into 1-step buffers (kept), with nothing reset: the same path as
        # collection, and no TensorDict per sub-env
        if self._scratch is None:
            bufs = self._new_scratch()
            c0 = bufs.column(0)
            # column 0 of every buffer, as views made once
            self._scratch_views = (
                {k: v[c0] for k, v in bufs.root.items()},
                bufs.action[c0],
                {k: v[c0] for k, v in (*bufs.next.items(), *_step_outputs(bufs))},
            )
            self._scratch = bufs
        bufs = self._scratch
        root, action, outputs = self._scratch_views
        for k, dst in root.items():
            # sub-envs stepped generically read their root row: the caller's value, unless
            # it is not ours (a transform outside may keep another entry under the same key)
            val = tensordict.get(k, None)
            if val is None or val.shape != dst.shape:
                self._sync_state()
                val = self._state[k]
            dst.copy_(val)
        action.copy_(tensordict.get("action"))
        self._step_into(bufs, 0, 1, True)
        out: dict = {k: v.clone() for k, v in outputs.items()}
        out["done"] = out["terminated"] | out["truncated"]
        return _td(out, self.batch_size)

    def _new_scratch(self) -> StepBuffers:
        bufs = self._flat_buffers(1)
        if bufs is None:  # (_step takes the general path for such envs)
            raise RuntimeError(f"{type(self).__name__}: the sub-envs do not fit flat buffers")
        return bufs

    def step_buffers(self, T: int) -> StepBuffers | None:
        self._ensure_started()
        return super().step_buffers(T)

    # ------------------------------------------------------------- run state
    def _capture_state(self) -> dict[str, Any]:
        # the sub-envs' states and the current root of every row (what a partial reset
        # leaves in the other rows)
        self._ensure_started()
        self._sync_state()
        root = [[k if isinstance(k, str) else list(k), v.clone()] for k, v in self._state.items()]
        return {"num_workers": self.num_workers, "envs": self._sub_states(), "root": root}

    def _check_state(self, state: Any) -> None:
        self._check_state_keys(state, {"num_workers", "envs", "root"})
        if state["num_workers"] != self.num_workers or len(state["envs"]) != self.num_workers:
            raise ValueError(f"the state is of {state['num_workers']} sub-envs, this "
                             f"{type(self).__name__} has {self.num_workers}")
        self._ensure_started()
        root = {k if isinstance(k, str) else tuple(k): v for k, v in state["root"]}
        if set(root) != set(self._state):
            raise ValueError(f"the state's entries are {sorted(map(str, root))}, this env's "
                             f"are {sorted(map(str, self._state))}")
        for k, v in root.items():
            mine = self._state[k]
            if not isinstance(v, torch.Tensor) or v.shape != mine.shape or v.dtype != mine.dtype:
                found = (f"{tuple(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor)
                         else type(v).__name__)
                raise ValueError(f"state entry {k!r}: expected {tuple(mine.shape)} "
                                 f"{mine.dtype}, found {found}")
        self._check_sub_states(state["envs"])

    def _restore_state(self, state: Any) -> None:
        self._restore_sub_states(state["envs"])
        self._pending = None
        for k, v in state["root"]:
            self._state[k if isinstance(k, str) else tuple(k)].copy_(v)

    # the sub-envs' own states and seeds, of the sub-envs ``rows`` (None: all)
    def _sub_states(self, rows: list[int] | None = None) -> list[dict]:
        raise NotImplementedError

    def _check_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        raise NotImplementedError

    def _restore_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        raise NotImplementedError

    def _seed_rows(self, rows: list[int], seeds: list[int | None]) -> None:
        raise NotImplementedError

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed sub-env ``i`` with ``seed + i``; returns ``seed + num_workers``."""
        self._check_open_for(f"set_seed({seed!r})")
        self._ensure_started()
        return super().set_seed(seed, static_seed)

    def _set_seed(self, seed: int | None) -> None:
        stride = self._seed_stride
        seeds = [None if seed is None else seed + i * stride for i in range(self.num_workers)]
        self._seed_rows(list(range(self.num_workers)), seeds)

    # ----------------------------------------------------------------- views
    def __getitem__(self, index: Any) -> _BatchedEnv:
        """A batched env of the same class over the sub-envs ``index`` selects (an int, a
        slice, a sequence or tensor of ints, or a boolean mask of the sub-envs): it steps,
        resets and seeds those sub-envs of this env (not copies); closing it leaves them
        open. See :mod:`streamrl.envs.batched_view`."""
        from streamrl.envs.batched_view import make_view, select_rows

        self._check_open()
        self._ensure_started()
        return make_view(self, select_rows(index, self.num_workers))


class SerialEnv(_BatchedEnv):
    """N envs stepped one after the other in this process; batch size ``[N]``.

    Sub-env ``i`` gets seed ``seed + i``. ``step`` never resets a done sub-env;
    ``step_and_maybe_reset`` and ``rollout`` do, and the next step's root then holds the
    reset observation (the final one stays under ``"next"``). ``reset`` with a ``"_reset"``
    mask resets only the marked sub-envs. A random-action ``rollout`` writes straight into
    preallocated buffers when every sub-env supports it (gymnasium envs do). Sub-envs with a
    state spec get the state entries given to ``step``/``reset`` (see
    :mod:`streamrl.envs.batched_io`).

    Args:
        num_workers: number of sub-envs.
        create_env_fn: a callable building one env (or a list of N of them).
        create_env_kwargs: keyword arguments for the callable(s).
        device: the device of the outputs (the sub-envs keep theirs).
        pin_memory: only False (TorchRL 0.14 raises ``ValueError`` for True, as here).
        allow_step_when_done: only False (as in TorchRL 0.14); ``step`` never checks done
            flags either way.

    ``env[index]`` is a SerialEnv over some of the sub-envs (see
    :mod:`streamrl.envs.batched_view`).

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

    def _seed_rows(self, rows: list[int], seeds: list[int | None]) -> None:
        for i, seed in zip(rows, seeds, strict=True):
            self._envs[i].set_seed(seed)

    def _reset_rows(self, rows: list[int]) -> None:
        for i in rows:
            self._io.row(i).reset(self._envs[i])

    def _step_io(self, rows: list[int] | None = None) -> None:
        for i in range(self.num_workers) if rows is None else rows:
            self._io.row(i).step(self._envs[i])

    def _step_rows(
        self, buffers: StepBuffers, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        steppers = buffers.memo(("SerialEnv", id(self)), lambda: self._steppers(buffers))
        if steppers:
            return _step_steppers(steppers, t, steps, break_when_any_done)
        rows = [buffers.row(i) for i in range(self.num_workers)]
        envs = self._envs
        if not break_when_any_done:
            for env, row in zip(envs, rows, strict=True):
                env._step_into(row, t, steps, False)
            return steps
        # in lockstep: every sub-env takes step i before any takes step i + 1
        for k in range(steps):
            i = t + k
            done = False
            for env, row in zip(envs, rows, strict=True):
                env._step_into(row, i, 1, True)
                done = done or row.done_at(i)
            if done:
                return k + 1
        return steps

    def _steppers(self, buffers: StepBuffers) -> list | bool:
        """Every sub-env's stepper into its row (see ``EnvBase._stepper``), or False when one
        has none."""
        steppers = [env._stepper(buffers.row(i)) for i, env in enumerate(self._envs)]
        return False if any(s is None for s in steppers) else steppers

    def _pick(self, rows: list[int] | None) -> list[tuple[int, EnvBase]]:
        return list(enumerate(self._envs)) if rows is None else [(i, self._envs[i]) for i in rows]

    def _sub_states(self, rows: list[int] | None = None) -> list[dict]:
        return [env.capture_state() for _, env in self._pick(rows)]

    def _check_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        for (i, env), state in zip(self._pick(rows), states, strict=True):
            try:
                env.check_state(state)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"sub-env {i}: {exc}") from None

    def _restore_sub_states(self, states: list[dict], rows: list[int] | None = None) -> None:
        for (_, env), state in zip(self._pick(rows), states, strict=True):
            env.restore_state(state)

    def _close(self) -> None:
        for env in getattr(self, "_envs", []):
            env.close()

    def __repr__(self) -> str:
        return (
            f"SerialEnv(num_workers={self.num_workers}, batch_size={self.batch_size}, "
            f"device={self.device})"
        )


def _step_outputs(bufs: StepBuffers) -> tuple:
    return (("reward", bufs.reward), ("terminated", bufs.terminated), ("truncated", bufs.truncated))


def _step_steppers(steppers: list, t: int, steps: int, break_when_any_done: bool) -> int:
    """Steps ``t .. t + steps - 1`` of sub-envs that have steppers, in one loop."""
    if not break_when_any_done:
        for s in steppers:
            step = s.step
            for k, action in enumerate(s.actions(t, steps)):
                step(t + k, action, True)
        return steps
    # in lockstep: every sub-env takes step i before any takes step i + 1
    for k in range(steps):
        i = t + k
        done = False
        for s in steppers:
            done = s.step(i, s.actions(i, 1)[0], False) or done
        if done:
            return k + 1
    return steps
