"""TransformedEnv: an env seen through a chain of transforms.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import RewardSum, StepCounter, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), StepCounter(max_steps=5))
>>> env = env.append_transform(RewardSum())
>>> td = env.rollout(10)
>>> td["next", "step_count"][-1].item(), td.shape
(5, torch.Size([5]))
>>> env.close()
"""

from __future__ import annotations

from textwrap import indent
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Composite
from streamrl.envs.common import EnvBase, _complete_done
from streamrl.envs.transforms.compose import Compose
from streamrl.envs.transforms.transform import Transform

__all__ = ["TransformedEnv"]


class TransformedEnv(EnvBase):
    """Wrap ``env`` so that its outputs go through ``transform`` and its inputs through the
    transform's inverse.

    ``transform`` is a :class:`Transform` or a :class:`Compose` (a single transform is put in
    a Compose, so ``env.transform[i]`` always works). The specs are the base env's specs
    transformed (computed once, refreshed by ``append_transform``/``insert_transform``,
    ``load_state_dict`` and ``ObservationNorm.init_stats``).
    Closing a TransformedEnv closes the base env. Unknown attributes are looked up on the
    base env.
    """

    def __init__(self, env: EnvBase, transform: Transform | None = None, *, _view: bool = False):
        if not isinstance(env, EnvBase):
            raise TypeError(f"TransformedEnv expects an EnvBase, found {type(env).__name__}")
        super().__init__(device=env.device, batch_size=env.batch_size,
                         allow_done_after_reset=getattr(env, "allow_done_after_reset", False))
        self.base_env = env
        self.check_actions = env.check_actions
        # A parent view (Transform.parent) shares the base env and must not close it.
        self._is_view = _view
        self._output_spec: Composite | None = None
        self._input_spec: Composite | None = None
        self._transform: Compose | None = None
        self.transform = transform

    @property
    def transform(self) -> Compose:
        """The transforms, as a Compose (assigning a Transform replaces them all)."""
        return self._transform

    @transform.setter
    def transform(self, transform: Transform | None) -> None:
        if transform is None:
            transform = Compose()
        elif not isinstance(transform, Transform):
            raise TypeError(f"transform must be a Transform, found {type(transform).__name__}")
        elif not isinstance(transform, Compose):
            transform = Compose(transform)
        transform.set_container(self)
        old = self._transform
        if old is not None and old is not transform:
            old.set_container(None)
        self._transform = transform
        self._invalidate_specs()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        object.__setattr__(self._transform, "_container", self)

    # The base env may learn its batch size late (a batched env builds its sub-envs on first
    # use): always read it from there, through the transforms (BatchSizeTransform).
    def _through_transforms(self, name: str, hook: str) -> Any:
        """The base env's ``name`` (batch_size, device) as the transforms' ``hook`` changes
        it, cached while the base env's value and the transforms stay the same."""
        d = self.__dict__
        base = d.get("base_env")
        if base is None:
            return d[f"_{name}"]
        value = getattr(base, name)
        cached = d.get(f"_{name}_cache")
        if cached is not None and cached[0] == value:
            return cached[1]
        transform = d.get("_transform")
        out = value if transform is None else getattr(transform, hook)(value)
        d[f"_{name}_cache"] = (value, out)
        return out

    @property
    def batch_size(self) -> torch.Size:
        """The base env's batch size, as the transforms change it."""
        return self._through_transforms("batch_size", "transform_env_batch_size")

    @batch_size.setter
    def batch_size(self, value: Any) -> None:
        self.__dict__["_batch_size"] = torch.Size(value)

    @property
    def device(self) -> torch.device | None:
        """The base env's device, as the transforms change it (DeviceCastTransform)."""
        return self._through_transforms("device", "transform_env_device")

    @device.setter
    def device(self, value: Any) -> None:
        self.__dict__["_device"] = value

    # ------------------------------------------------------------------ transforms
    def append_transform(self, transform: Transform) -> TransformedEnv:
        """Add ``transform`` after the existing ones; returns the env."""
        if not isinstance(transform, Transform):
            raise TypeError(
                f"append_transform expects a Transform, found {type(transform).__name__}"
            )
        self.transform.append(transform)
        self._invalidate_specs()
        return self

    def insert_transform(self, index: int, transform: Transform) -> TransformedEnv:
        """Insert ``transform`` at position ``index`` of the chain; returns the env."""
        if not isinstance(transform, Transform):
            raise TypeError(
                f"insert_transform expects a Transform, found {type(transform).__name__}"
            )
        self.transform.insert(index, transform)
        self._invalidate_specs()
        return self

    def _invalidate_specs(self) -> None:
        self.__dict__.pop("_batch_size_cache", None)
        self.__dict__.pop("_device_cache", None)
        self._output_spec = None
        self._input_spec = None

    # ------------------------------------------------------------- run state
    def _capture_state(self) -> dict[str, Any]:
        # the transforms' statistics (their state_dict) and the base env's state; counters
        # such as StepCounter's and RewardSum's travel in the carried TensorDict instead
        for t in self.transform:
            if getattr(t, "keeps_state_outside_state_dict", False):
                raise NotImplementedError(
                    f"the state of {self!r} cannot be captured: its transform "
                    f"{type(t).__name__} keeps state outside its state_dict"
                )
        return {
            "transforms": [type(t).__name__ for t in self.transform],
            "stats": dict(self.transform.state_dict()),
            "base_env": self.base_env.capture_state(),
        }

    def _check_state(self, state: Any) -> None:
        self._check_state_keys(state, {"transforms", "stats", "base_env"})
        mine = [type(t).__name__ for t in self.transform]
        if list(state["transforms"]) != mine:
            raise ValueError(f"the state is of an env with transforms {state['transforms']}, "
                             f"this env has {mine}")
        current = self.transform.state_dict()
        # buffers still None (e.g. ObservationNorm before init_stats) may receive a value
        unset = {f"{name}.{b}" if name else b
                 for name, m in self.transform.named_modules()
                 for b, v in m._buffers.items() if v is None}
        saved = state["stats"]
        if not set(current) <= set(saved) <= set(current) | unset:
            raise ValueError(f"the transforms' statistics in the state are {sorted(saved)}, "
                             f"this env's are {sorted(current)}")
        for key, value in current.items():
            other = saved[key]
            if not isinstance(other, torch.Tensor) or other.shape != value.shape:
                found = (tuple(other.shape) if isinstance(other, torch.Tensor)
                         else type(other).__name__)
                raise ValueError(f"transform statistic {key!r}: expected shape "
                                 f"{tuple(value.shape)}, found {found}")
        self.base_env.check_state(state["base_env"])

    def _restore_state(self, state: Any) -> None:
        self.transform.load_state_dict(state["stats"])
        self._invalidate_specs()
        self.base_env.restore_state(state["base_env"])

    def state_dict(self, *args: Any, **kwargs: Any) -> dict:
        """The transforms' state (statistics, parameters)."""
        return self.transform.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> Any:
        """Restore the transforms' state saved by :meth:`state_dict`."""
        out = self.transform.load_state_dict(state_dict, strict=strict)
        self._invalidate_specs()
        return out

    # ------------------------------------------------------------------ specs
    def _outputs(self) -> Composite:
        if self._output_spec is None:
            self._output_spec = self.transform.transform_output_spec(
                self.base_env.output_spec.clone()
            )
        return self._output_spec

    def _inputs(self) -> Composite:
        if self._input_spec is None:
            self._input_spec = self.transform.transform_input_spec(self.base_env.input_spec.clone())
        return self._input_spec

    @property
    def output_spec(self) -> Composite:
        """The base env's output spec after the transforms."""
        return self._outputs()

    @property
    def input_spec(self) -> Composite:
        """The input spec users write against (the base env's, through the transforms)."""
        return self._inputs()

    @property
    def full_observation_spec(self) -> Composite:
        """Observation specs after the transforms."""
        return self._outputs()["full_observation_spec"]

    observation_spec = full_observation_spec

    @property
    def full_reward_spec(self) -> Composite:
        """Reward specs after the transforms."""
        return self._outputs()["full_reward_spec"]

    @property
    def full_done_spec(self) -> Composite:
        """Done specs after the transforms."""
        return self._outputs()["full_done_spec"]

    @property
    def full_action_spec(self) -> Composite:
        """Action specs as users see them."""
        return self._inputs()["full_action_spec"]

    @property
    def full_state_spec(self) -> Composite:
        """State specs as users see them."""
        return self._inputs()["full_state_spec"]

    state_spec = full_state_spec

    # ------------------------------------------------------------------ env hooks
    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        # Some transforms learn shapes from the specs (RewardSum's zeros at reset): make sure
        # they have seen them.
        self._outputs()
        tensordict = self.transform._reset_env_preprocess(tensordict)
        td_reset = self.base_env._reset_checked(tensordict, kwargs, check_done=False)
        return self.transform._reset(tensordict, td_reset)

    def _step_into(
        self, buffers: Any, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        # Transforms that only cast observation dtypes (DoubleToFloat over a MuJoCo env): the
        # base env's array fast path writes its arrays into these buffers, whose dtypes are
        # this env's, and the copy casts them (numpy rounds to nearest as torch's .to does).
        if self._casts_only():
            return self.base_env._step_into(buffers, t, steps, break_when_any_done)
        return super()._step_into(buffers, t, steps, break_when_any_done)

    def _casts_only(self) -> bool:
        """Whether stepping through the transforms is the base env's array fast path with
        observations cast: every transform a dtype cast with no action path, the base an
        array env on its fast path, the same entries and shapes on both sides."""
        from streamrl.envs.libs._array_env import ArrayEnv

        if type(self) is not TransformedEnv:  # a subclass's own stepping must run
            return False
        base = self.base_env
        if not (isinstance(base, ArrayEnv) and base._arrays_ok()):
            return False
        # decided once per spec build (the specs are rebuilt when the transforms change)
        key = (id(self._outputs()), id(self._inputs()), id(base))
        cached = self.__dict__.get("_casts_only_cache")
        if cached is None or cached[0] != key:
            cached = (key, self._casts_only_check(base))
            self.__dict__["_casts_only_cache"] = cached
        return cached[1]

    def _casts_only_check(self, base: EnvBase) -> bool:
        from streamrl.envs.transforms.dtype import DoubleToFloat, DTypeCastTransform

        transforms = getattr(self.transform, "transforms", [self.transform])
        if not all(type(t) in (DTypeCastTransform, DoubleToFloat) for t in transforms) or self.transform._has_inverse():
            return False
        mine, theirs = self.output_spec, base.output_spec
        for group in ("full_observation_spec", "full_reward_spec", "full_done_spec"):
            a, b = mine[group], theirs[group]
            keys = a.keys(True, True)
            if sorted(map(str, keys)) != sorted(map(str, b.keys(True, True))):
                return False
            if any(a[k].shape != b[k].shape for k in keys):
                return False
        action, base_action = self.full_action_spec, base.full_action_spec
        keys = action.keys(True, True)
        return sorted(map(str, keys)) == sorted(map(str, base_action.keys(True, True))) and all(
            action[k].dtype == base_action[k].dtype and action[k].shape == base_action[k].shape
            for k in keys
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self.base_env._check_open()
        self._inputs()  # automatic action-path keys (DoubleToFloat) are learnt from the specs
        skip = self.transform._step_skip(tensordict)
        if skip is None or not bool(skip.any()):
            return self._step_all(tensordict)
        return self._step_some(tensordict, skip)

    def _skipped_output(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The output of a skipped step: the state stays as it is, the reward is zero."""
        out = tensordict.empty()
        for spec in (self.full_observation_spec, self.full_done_spec):
            for key in spec.keys(True, True):
                value = tensordict.get(key, None)
                if value is None:
                    raise KeyError(
                        f"a skipped step keeps the state as it is, but the step input has no "
                        f"{key!r}; step from the output of reset() (or of a previous step)"
                    )
                out.set(key, value.clone())
        rewards = self.full_reward_spec
        # an env that is not batch-locked may be given more leading dims than its own
        extra = tensordict.batch_size[: tensordict.batch_dims - len(self.batch_size)]
        for key in rewards.keys(True, True):
            out.set(key, rewards[key].zero(extra) if extra else rewards[key].zero())
        return out

    def _step_some(self, tensordict: TensorDictBase, skip: torch.Tensor) -> TensorDictBase:
        """A step where the rows of ``skip`` keep their state (ConditionalSkip)."""
        out = self._skipped_output(tensordict)
        if bool(skip.all()):
            return out
        run = ~skip
        if not self.base_env.batch_locked:
            # a stateless env: only the rows that move go through it
            part = self._step_all(tensordict[run])
            _complete_done(part)
            for key in out.keys(True, True):
                out.get(key)[run] = part.get(key)
            return out
        # a stateful env steps its whole batch and is told which rows move
        td = tensordict.clone(False)
        td.set("_step", run.reshape(*run.shape, 1))
        stepped = self._step_all(td)
        _complete_done(stepped)
        for key in out.keys(True, True):
            value = stepped.get(key)
            out.set(key, torch.where(
                skip.reshape(*skip.shape, *([1] * (value.ndim - skip.ndim))), out.get(key), value
            ))
        return out

    def _step_all(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self.transform._has_inverse():
            td_in = self.transform._inv_call(tensordict.clone(False))
            if self.base_env.check_actions:
                # The action path rewrote the action: make sure the base env can take it, so
                # a misconfigured transform fails here rather than deep inside the env.
                action = td_in.get(self.base_env.action_key, None)
                if action is not None:
                    checked = self.base_env._check_action(action)
                    if checked is not action:
                        td_in.set(self.base_env.action_key, checked)
        else:
            td_in = tensordict
        next_td = self.base_env._step(td_in)
        return self.transform._step(tensordict, next_td)

    def rollout(
        self,
        max_steps: int,
        policy: Any = None,
        callback: Any = None,
        auto_reset: bool = True,
        break_when_any_done: bool = True,
        tensordict: TensorDictBase | None = None,
        set_truncated: bool = False,
        **kwargs: Any,
    ) -> TensorDictBase:
        """:meth:`EnvBase.rollout` through the transforms (same arguments).

        A random-action rollout (no policy, no callback, fresh reset) through transforms
        that map each step on its own (images, normalization, casts, renames...) runs the
        base env's own rollout and transforms the whole trajectory at once, which gives the
        same data far faster.
        """
        self._check_open()
        if (
            policy is None
            and callback is None
            and auto_reset
            and tensordict is None
            and not set_truncated
            and not kwargs
            and isinstance(max_steps, int)
            and max_steps >= 1
            and self._trajectory_ok()
        ):
            raw = self.base_env.rollout(max_steps, break_when_any_done=break_when_any_done)
            return self._transform_trajectory(raw)
        return super().rollout(
            max_steps,
            policy=policy,
            callback=callback,
            auto_reset=auto_reset,
            break_when_any_done=break_when_any_done,
            tensordict=tensordict,
            set_truncated=set_truncated,
            **kwargs,
        )

    def _flat_buffers(self, T: int) -> Any:
        # An action spec that changes every step (ActionMask) rules out drawing the random
        # actions of a buffered rollout up front.
        if self.transform._live_action_spec:
            return None
        return super()._flat_buffers(T)

    def _trajectory_ok(self) -> bool:
        self._inputs()  # learn automatic action-path keys first
        self._outputs()  # and the output specs, as a step-by-step rollout would
        return self.transform._per_step and not self.transform._has_inverse()

    def _transform_trajectory(self, raw: TensorDictBase) -> TensorDictBase:
        # Root entries are reset/step outputs plus the inputs (action, state) that the
        # transforms never see in a step-by-step rollout: keep those aside.
        inputs = [*self.base_env.full_action_spec.keys(True, True)]
        inputs += self.base_env.full_state_spec.keys(True, True)
        inputs = [k for k in inputs if k in raw.keys(True)]
        nxt = self.transform._step(raw, raw.get("next"))
        root = self._transform_root(raw.exclude("next", *inputs), raw.get(("next", "done")), nxt)
        out = root.update(raw.select(*inputs)) if inputs else root
        out.set("next", nxt)
        return out

    def _transform_root(
        self, root: TensorDictBase, done: torch.Tensor, nxt: TensorDictBase
    ) -> TensorDictBase:
        """The transformed root of a trajectory, reusing the transformed ``"next"`` data.

        The root at step t is the output of step t-1 (``step_mdp``) unless step t-1 ended
        an episode (then it is a reset output): only the first step and those reset rows
        need transforming; the others are the previous step's transformed outputs.
        """
        tdim = root.batch_dims - 1
        steps = root.batch_size[tdim]
        fresh = torch.ones(root.batch_size, dtype=torch.bool, device=done.device)
        ended = done.reshape(*root.batch_size, -1).any(-1)
        fresh.narrow(tdim, 1, steps - 1).copy_(ended.narrow(tdim, 0, steps - 1))
        if bool(fresh.all()):
            return self.transform._reset(None, root)
        mine = self.transform._reset(None, root[fresh])
        out = root.empty()
        for key in mine.keys(True, True):
            shifted = nxt.get(key, None)
            value = mine.get(key)
            if shifted is None or shifted.dtype != value.dtype:
                # an entry only resets produce: transform the whole root instead
                return self.transform._reset(None, root)
            full = torch.cat([shifted.narrow(tdim, 0, 1), shifted.narrow(tdim, 0, steps - 1)], tdim)
            if full.shape[root.batch_dims :] != value.shape[1:]:
                return self.transform._reset(None, root)
            full[fresh] = value
            out.set(key, full)
        return out

    def _set_seed(self, seed: int | None) -> None:
        self.base_env.set_seed(seed)
        self.transform._env_seeded(seed)

    def _close(self) -> None:
        if not self._is_view:
            self.base_env.close()

    @property
    def is_closed(self) -> bool:
        """Whether this env or its base env is closed."""
        return self._closed or self.base_env.is_closed

    def _check_open(self) -> None:
        super()._check_open()
        self.base_env._check_open()

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found normally: forward to the base env (e.g.
        # ParallelEnv.num_workers), but never during construction.
        if name.startswith("__") or "base_env" not in self.__dict__:
            raise AttributeError(name)
        try:
            return getattr(self.__dict__["base_env"], name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} (and its base env {type(self.base_env).__name__}) has "
                f"no attribute {name!r}"
            ) from None

    def __repr__(self) -> str:
        env = indent(f"env={self.base_env!r}", 4 * " ")
        transform = indent(f"transform={self.transform!r}", 4 * " ")
        return f"TransformedEnv(\n{env},\n{transform})"
