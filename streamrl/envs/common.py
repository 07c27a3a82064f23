"""EnvBase: the environment contract (reset, step, specs, seeding, rollout, close)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from streamrl.data.specs import Composite, TensorSpec
from streamrl.envs._env_specs import DONE_KEYS, SPEC_ATTRS, EnvSpecs, default_specs
from streamrl.envs.rollout_options import (
    CastToPolicyDevice,
    ReplayActions,
    finish_rollout,
    make_compatible_policy,
    policy_device,
)
from streamrl.envs.step_buffers import StepBuffers
from streamrl.envs.stepping import run_steps
from streamrl.envs.utils import step_mdp

__all__ = ["EnvBase", "EnvClosedError"]


class EnvClosedError(RuntimeError):
    """Raised when a closed environment is reset or stepped."""


def _complete_done(td: TensorDictBase) -> None:
    """Fill the done flags an env left out, as TorchRL does for custom envs: ``terminated``
    from ``done``, ``done`` from ``terminated | truncated``, ``truncated`` as False; the
    given flags that lack their trailing dim get it."""
    keys = td.keys()
    has = [k in keys for k in DONE_KEYS]
    if all(has):
        return
    done, term, trunc = (td.get(k) if h else None for k, h in zip(DONE_KEYS, has, strict=True))
    if any(f is not None and f.shape == td.batch_size for f in (done, term, trunc)):
        # flags given without their trailing dim (``"done": False`` in a TensorDict of
        # batch size []): shaped ``(*batch, 1)`` as the done spec says
        done, term, trunc = (
            None if f is None else f.unsqueeze(-1) if f.shape == td.batch_size else f
            for f in (done, term, trunc)
        )
        for key, flag in zip(DONE_KEYS, (done, term, trunc), strict=True):
            if flag is not None:
                td.set(key, flag)
    ref = next((f for f in (done, term, trunc) if f is not None), None)
    if ref is None:
        ref = torch.zeros((*td.batch_size, 1), dtype=torch.bool, device=td.device)
    if trunc is None:
        trunc = torch.zeros_like(ref, dtype=torch.bool)
        td.set("truncated", trunc)
    if term is None:
        term = done.clone() if done is not None else torch.zeros_like(ref, dtype=torch.bool)
        td.set("terminated", term)
    if done is None:
        td.set("done", term | trunc)


class EnvBase(EnvSpecs, nn.Module):
    """Base class of every environment.

    A step reads ``tensordict["action"]`` and writes ``tensordict["next"]`` with
    ``observation`` (and any other observation keys), ``reward``, ``done``, ``terminated``
    and ``truncated``; reward and done flags have a trailing dim of 1. ``reset`` returns the
    observations with ``done``/``terminated``/``truncated`` all False.

    Subclass interface (small on purpose):

    - ``__init__``: call ``super().__init__(device=..., batch_size=...)``, then set
      ``self.observation_spec`` (a :class:`Composite` with shape ``batch_size``),
      ``self.action_spec`` (a leaf spec whose shape starts with ``batch_size``) and, when
      the defaults do not fit, ``self.reward_spec`` (default ``Unbounded((*batch, 1))``),
      ``self.done_spec`` (default: bool ``done``/``terminated``/``truncated`` of shape
      ``(*batch, 1)``) and ``self.state_spec`` (extra inputs besides the action; default
      empty).
    - ``_reset(tensordict | None) -> TensorDict``: the observations after a reset (done flags
      may be omitted: they are filled with False). Batched envs get a bool ``"_reset"``
      entry of shape ``(*batch, 1)`` to reset only those sub-envs, and return every row.
    - ``_step(tensordict) -> TensorDict``: the content of ``"next"`` (observations, reward,
      done, terminated, truncated). The action was already checked against the spec.
    - ``_set_seed(seed: int | None) -> None``.
    - set ``self.strict_action_bounds = True`` to reject out-of-bounds continuous actions
      (by default they reach the env, which decides: gymnasium's Pendulum clips them);
      out-of-range discrete actions and non-finite values are always rejected.
    - optionally ``_close()`` (releases resources; called once) and ``_step_into`` (see
      :meth:`step_into`: a backend that can write its arrays straight into the buffers).

    Stepping protocol: :meth:`step_buffers` allocates :class:`StepBuffers` for ``T`` steps
    and :meth:`step_into` steps into them at a time index, resetting done sub-envs;
    :meth:`rollout`, the batched envs and the collectors step every env this way. The
    default works for any env (built on :meth:`step` and :meth:`maybe_reset`).

    Wrappers (e.g. TransformedEnv) may override the ``full_*_spec`` properties: every other
    spec property is derived from them.

    As in TorchRL an env is an ``nn.Module``: a custom env may hold parameters and buffers
    (``self.register_buffer("g", torch.tensor(9.81))``, ``nn.Parameter`` attributes) and
    sub-modules (a learnt model), which ``parameters()``, ``state_dict()`` and ``to()`` see.
    Other attributes are plain Python attributes (no ``nn.Module`` bookkeeping when they
    are set, so stepping costs what it did).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> with GymEnv("Pendulum-v1") as env:
    ...     td = env.rollout(3)
    >>> td["next", "reward"].shape
    torch.Size([3, 1])
    """

    def __new__(cls, *args: Any, _batch_locked: bool | None = None, **kwargs: Any) -> EnvBase:
        # The constructor's arguments are for __init__. A subclass written the TorchRL way
        # calls ``super().__new__(cls, *args, **kwargs)`` from its own ``__new__``, passing
        # ``_batch_locked=False`` for an unlocked env, and may leave its specs on the class
        # as ``cls._output_spec``/``cls._input_spec`` Composites: they are moved onto the
        # new env (off the class, so that they do not leak into the next instance). The env
        # gets its default state here, so that specs can also be set before __init__.
        if _batch_locked is not None and not isinstance(_batch_locked, bool):
            raise TypeError(
                f"_batch_locked must be a bool, found {type(_batch_locked).__name__}"
            )
        env = super().__new__(cls)
        d = env.__dict__
        presets = [cls.__dict__.get(name) for name in ("_output_spec", "_input_spec")]
        for name in ("_output_spec", "_input_spec"):
            if name in cls.__dict__:
                delattr(cls, name)
        shape = next((p.shape for p in presets if isinstance(p, Composite)), torch.Size(()))
        object.__setattr__(env, "batch_size", shape)
        object.__setattr__(env, "device", None)
        d["_batch_locked"] = True if _batch_locked is None else _batch_locked
        d["_closed"] = False
        d["_action_cache"] = d["_reward_cache"] = None
        d.update(default_specs(shape, None))
        d["_specs_before_init"] = tuple(d[name] for name in SPEC_ATTRS)
        env._set_io_specs(*presets)
        return env

    def __init__(
        self,
        *,
        device: Any = None,
        batch_size: Any = None,
        batch_locked: bool | None = None,
        allow_done_after_reset: bool = False,
    ) -> None:
        for name, flag in (("batch_locked", batch_locked),
                           ("allow_done_after_reset", allow_done_after_reset)):
            if flag is not None and not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, found {type(flag).__name__}")
        nn.Module.__init__(self)
        d = self.__dict__
        declared = type(self).__dict__.get("batch_locked", None)
        if isinstance(declared, bool):  # TorchRL style: ``batch_locked = False`` on the class
            batch_locked = declared
        if batch_locked is not None:
            self._batch_locked = batch_locked
        # specs set before __init__ (from the class's _output_spec, or assigned first) stay
        before = d.pop("_specs_before_init", None)
        if batch_size is None:
            batch_size = self.batch_size if before is not None else ()
        self.batch_size = torch.Size(batch_size)
        self.device = None if device is None else torch.device(device)
        self._closed = False
        # if True, step() checks the action's dtype, shape and bounds against action_spec
        self.check_actions = True
        # out-of-bounds *continuous* actions pass to the env by default (the seed tutorial
        # feeds an unbounded Linear actor to Pendulum, which clips); True rejects them too.
        # Discrete out-of-range and non-finite continuous actions are always rejected.
        self.strict_action_bounds = False
        # as TorchRL: a reset that leaves a sub-env it reset done raises, unless allowed
        self.allow_done_after_reset = allow_done_after_reset
        defaults = default_specs(self.batch_size, self.device)
        for i, name in enumerate(SPEC_ATTRS):
            current = d.get(name)
            if before is None or current is None or current is before[i]:
                d[name] = defaults[name]
            elif current.shape != self.batch_size:
                raise ValueError(
                    f"{type(self).__name__}: {name[1:]} was set before __init__ with shape "
                    f"{tuple(current.shape)}, but __init__ got batch_size "
                    f"{tuple(self.batch_size)}"
                )
        self._action_cache = None
        self._reward_cache = None

    def __setattr__(self, name: str, value: Any) -> None:
        # Parameters, tensors set over a registered buffer and sub-modules get nn.Module's
        # bookkeeping; anything else is a plain attribute (nn.Module's __setattr__ costs ~1 us,
        # and stepping sets attributes). Sub-modules are also kept in __dict__ so that plain
        # lookups (and wrappers that read self.__dict__) find them.
        d = self.__dict__
        if name == "batch_locked" and isinstance(value, bool):
            d["_batch_locked"] = value  # (a class declaring it as a bool hides the setter)
        if isinstance(value, nn.Parameter) or (
            "_buffers" in d and (name in d["_buffers"] or name in d["_parameters"])
        ):
            nn.Module.__setattr__(self, name, value)
        elif isinstance(value, nn.Module) and "_modules" in d:
            d["_modules"][name] = value
            object.__setattr__(self, name, value)
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules and name in self.__dict__:
            del modules[name]
            object.__delattr__(self, name)
        else:
            nn.Module.__delattr__(self, name)

    # ------------------------------------------------------------------ specs
    def next_root(self, tensordict: TensorDictBase) -> TensorDictBase:
        """:func:`step_mdp` of a stepped TensorDict for this env: the root of the next step,
        without the action and without every reward key of the env (a transform's extra
        reward entry, e.g. a normalized reward, does not leak into the root) except those
        that are also state entries (inputs the next step reads)."""
        return step_mdp(tensordict, exclude_action=True, exclude_reward=True,
                        reward_keys=self._reward_info()[3], action_keys=self._action_info()[1])

    def fake_tensordict(self) -> TensorDict:
        """A zero-filled TensorDict with the layout of one step (root and ``"next"``)."""
        obs = self.full_observation_spec.zero()
        done = self.full_done_spec.zero()
        td = obs.update(done)
        td.update(self.full_state_spec.zero())
        td.update(self.full_action_spec.zero())
        nxt = self.full_observation_spec.zero()
        nxt.update(self.full_reward_spec.zero()).update(self.full_done_spec.zero())
        td.set("next", nxt)
        return td

    # -------------------------------------------------------------- lifecycle
    @property
    def is_closed(self) -> bool:
        """Whether ``close()`` was called (TorchRL-style envs also set it, e.g.
        ``self.is_closed = False`` in ``__init__``; setting it calls no hook)."""
        return self._closed

    @is_closed.setter
    def is_closed(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"is_closed must be a bool, found {type(value).__name__}")
        self._closed = value

    def _check_open(self) -> None:
        if self._closed:
            raise EnvClosedError(f"{type(self).__name__} is closed; create a new environment")

    def _check_open_for(self, call: str) -> None:
        """:meth:`_check_open`, with the refused call named in the error."""
        try:
            self._check_open()
        except EnvClosedError as exc:
            raise EnvClosedError(
                f"{call}: expected an open {type(self).__name__}, found a closed one ({exc})"
            ) from None

    def close(self) -> None:
        """Release the environment's resources; later calls are no-ops."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def _close(self) -> None:
        """Hook: release resources (called once)."""

    def __enter__(self) -> EnvBase:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed the environment (its sub-envs get ``seed``, ``seed + 1``, ...).

        Returns the next seed to give another environment, or None for ``seed=None``. A
        closed env raises :class:`EnvClosedError`.
        """
        self._check_open_for(f"set_seed({seed!r})")
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, found {type(seed).__name__}")
        self._set_seed(seed)
        if seed is None:
            return None
        return seed + max(1, self.batch_size.numel())

    def _set_seed(self, seed: int | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement _set_seed")

    # ------------------------------------------------------------- reset/step
    def _check_batch(self, tensordict: TensorDictBase, what: str) -> None:
        if not isinstance(tensordict, TensorDictBase):
            raise TypeError(f"{what} expects a TensorDict, found {type(tensordict).__name__}")
        if tensordict.batch_size != self.batch_size and (
            self._batch_locked or tensordict.batch_size[len(tensordict.batch_size)
                                                        - len(self.batch_size):]
            != self.batch_size
        ):
            raise ValueError(
                f"{what}: expected a TensorDict with batch_size {self.batch_size}, found "
                f"{tensordict.batch_size}"
            )

    def reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        """Reset and return the first observations (done flags False).

        As in TorchRL, a given ``tensordict`` is updated in place with the reset entries and
        returned (its other entries are kept); without one a new TensorDict is returned. A
        ``"_reset"`` bool entry of shape ``(*batch_size, 1)`` in ``tensordict`` resets only
        the sub-envs it marks (batched envs); it is left in ``tensordict`` (transforms
        wrapping this env read it after the base env's reset).

        >>> from tensordict import TensorDict
        >>> from streamrl.envs.libs.gym import GymEnv
        >>> with GymEnv("CartPole-v1") as env:
        ...     td = TensorDict({"extra": 1.0})
        ...     out = env.reset(td)
        >>> out is td, sorted(td.keys())
        (True, ['done', 'extra', 'observation', 'terminated', 'truncated'])

        A reset that leaves ``done`` set in a sub-env it reset raises ``RuntimeError``
        unless the env was built with ``allow_done_after_reset=True`` (as in TorchRL).
        """
        return self._reset_checked(tensordict, kwargs, not self.allow_done_after_reset)

    def _reset_checked(
        self, tensordict: TensorDictBase | None, kwargs: dict, check_done: bool
    ) -> TensorDictBase:
        """:meth:`reset`; a TransformedEnv checks the done flags of its own output, after
        the transforms (an :class:`AutoResetTransform` clears those of its base env)."""
        self._check_open()
        if tensordict is None:
            out = self._reset(None, **kwargs)
        else:
            self._check_batch(tensordict, "reset")
            # a shallow copy: a wrapped env's reset updates it, not ``tensordict``, so that
            # entries a transform drops at reset do not reach ``tensordict``
            out = self._reset(tensordict.clone(False), **kwargs)
        if self.device is not None and out.device != self.device:
            out = out.to(self.device)
        _complete_done(out)
        if check_done:
            self._check_not_done(out, tensordict)
        if tensordict is None:
            return out
        if "_reset" in out.keys():
            out = out.exclude("_reset")
        return tensordict.update(out)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        raise NotImplementedError

    def _check_not_done(self, out: TensorDictBase, given: TensorDictBase | None) -> None:
        """Raise if a reset left ``done`` set in a sub-env it reset (those ``"_reset"``
        marks in ``given``, else all): an episode cannot end before its first step."""
        done = out.get("done")
        mask = None if given is None else given.get("_reset", None)
        if mask is not None:
            done = done & mask
        if done.item() if done.numel() == 1 else bool(done.any()):
            raise RuntimeError(
                f"{type(self).__name__}.reset: expected done=False in every reset sub-env, "
                f"found done={done.flatten().tolist() if done.numel() <= 16 else 'True'}; "
                "pass allow_done_after_reset=True to the env's __init__ if it may be done "
                "right after a reset"
            )

    def _check_action(self, action: Any, spec: TensorSpec | None = None) -> torch.Tensor:
        """Check ``action`` against ``spec`` and return it, cast to the spec's dtype when a
        discrete action comes as a float tensor of whole numbers (what torch's one-hot and
        categorical distributions sample); anything else of another dtype is refused."""
        if spec is None:
            spec = self.action_spec
        if not isinstance(action, torch.Tensor):
            raise TypeError(f"action: expected a torch.Tensor, found {type(action).__name__}")
        if action.dtype != spec.dtype:
            if not (action.is_floating_point() and spec.domain != "continuous"
                    and not spec.dtype.is_floating_point):
                raise TypeError(f"action: expected dtype {spec.dtype}, found {action.dtype}")
            cast = action.to(spec.dtype)
            if not torch.equal(cast.to(action.dtype), action):
                raise TypeError(
                    f"action: expected dtype {spec.dtype}, found {action.dtype} with values "
                    "that are not whole numbers"
                )
            action = cast
        if action.shape != spec.shape and not (
            # a -1 dim of the spec takes any size (MultiAction's chunks of any length)
            len(action.shape) == len(spec.shape)
            and all(e in (-1, f) for e, f in zip(spec.shape, action.shape))
        ):
            raise ValueError(f"action: expected shape {spec.shape}, found {action.shape}")
        if spec.domain == "continuous" and not self.strict_action_bounds:
            # one reduction and one sync: a sum of finite values is finite unless it overflows,
            # and only then are the values checked one by one
            finite = math.isfinite(action.sum().item()) or bool(torch.isfinite(action).all())
            if not finite:
                raise ValueError(f"action holds non-finite values: {action}")
            return action
        if not spec._values_ok(action):
            raise ValueError(f"action out of the action spec's space {spec._space_str()}: {action}")
        return action

    def step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Apply ``tensordict["action"]``; writes ``tensordict["next"]`` and returns it.

        Entries already under ``"next"`` that the env does not produce (a recurrent
        policy's next state, say) are kept.
        """
        self._check_open()
        self._check_batch(tensordict, "step")
        if self.check_actions:
            self._check_actions(tensordict, tensordict.set)
        return self._step_checked(tensordict)

    def _check_actions(self, values: Any, put: Callable[[Any, torch.Tensor], Any]) -> None:
        """Check every action leaf of ``values`` (a TensorDict, or a dict of leaves by key)
        against the action spec; ``put(key, action)`` writes back an action the check cast (a
        float one-hot or index action: the env runs its cast)."""
        full, keys, spec, _ = self._action_info()
        for key in keys:
            if values.get(key, None) is None:
                found = (values.keys(True, True) if isinstance(values, TensorDictBase)
                         else values.keys())
                raise KeyError(f"step: missing action key {key!r}; found keys {list(found)}")
        batch_size = values.batch_size if isinstance(values, TensorDictBase) else self.batch_size
        for i, key in enumerate(keys):
            # every action leaf is checked: an env with agent groups has one per group
            given = values.get(key)
            leaf = spec if i == 0 else full[key]
            if i and not isinstance(leaf, TensorSpec):
                continue
            if batch_size != self.batch_size:  # unlocked env, more leading dims
                leaf = leaf.expand(*batch_size, *leaf.shape[len(self.batch_size):])
            try:
                action = self._check_action(given, leaf)
            except (TypeError, ValueError) as err:
                if key == "action":
                    raise
                raise type(err)(f"{key!r}: {err}") from None
            if action is not given:
                put(key, action)

    def _step_checked(self, tensordict: TensorDictBase) -> TensorDictBase:
        """:meth:`step` after its checks (the stepping protocol's generic path calls it:
        its callers check the actions they did not draw from the spec)."""
        preset = tensordict.get("next", None)
        next_td = self._step(tensordict)
        if self.device is not None and next_td.device != self.device:
            next_td = next_td.to(self.device)
        keys = next_td.keys()
        if "truncated" not in keys or "terminated" not in keys or "done" not in keys:
            _complete_done(next_td)
        if preset is not None and preset is not next_td:
            # entries a policy wrote under "next" beforehand (e.g. a recurrent state) are
            # kept unless the env writes the same key
            for key in preset.keys(True, True):
                if key not in next_td.keys(True, True):
                    next_td.set(key, preset.get(key))
        tensordict.set("next", next_td)
        return tensordict

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError

    def rand_action(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """Write a random action (from ``action_spec``) into ``tensordict`` and return it."""
        if tensordict is None:
            tensordict = TensorDict(batch_size=self.batch_size, device=self.device)
        full, keys, spec, _ = self._action_info()
        extra = tensordict.batch_size[: len(tensordict.batch_size) - len(self.batch_size)]
        if len(keys) == 1:
            # an unlocked env given more leading dims draws one action per row
            tensordict.set(keys[0], spec.rand(extra) if extra else spec.rand())
        else:
            tensordict.update(full.rand(extra) if extra else full.rand())
        return tensordict

    def rand_step(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """``step`` with a random action."""
        if tensordict is None:
            tensordict = self.reset()
        return self.step(self.rand_action(tensordict))

    def maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reset the (sub-)envs whose ``done`` is set in ``tensordict`` (a root tensordict,
        as returned by :func:`step_mdp`); returns it with their reset observations."""
        done = tensordict.get("done", None)
        if done is None or not (done.item() if done.numel() == 1 else bool(done.any())):
            return tensordict
        if not self.batch_size:
            tensordict.update(self.reset())
        else:
            tensordict.set("_reset", done.reshape(*self.batch_size, 1).clone())
            self.reset(tensordict)  # updates tensordict in place
            tensordict.del_("_reset")
        return tensordict

    def step_and_maybe_reset(
        self, tensordict: TensorDictBase
    ) -> tuple[TensorDictBase, TensorDictBase]:
        """Step, then return ``(tensordict_with_next, root_of_next_step)``: the second is
        ``step_mdp`` of the first, with done sub-envs reset (their reset observation)."""
        tensordict = self.step(tensordict)
        return tensordict, self.maybe_reset(self.next_root(tensordict))

    # ---------------------------------------------------------------- rollout
    def rollout(
        self,
        max_steps: int,
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        callback: Callable[[EnvBase, TensorDictBase], Any] | None = None,
        auto_reset: bool = True,
        break_when_any_done: bool = True,
        tensordict: TensorDictBase | None = None,
        set_truncated: bool = False,
        *,
        actions: Iterable[Any] | None = None,
        auto_cast_to_device: bool = False,
        break_when_all_done: bool | None = None,
        return_contiguous: bool = True,
        out: TensorDictBase | None = None,
        trust_policy: bool = False,
        storing_device: Any = None,
        set_state: bool | None = None,
    ) -> TensorDictBase:
        """Run up to ``max_steps`` steps and return them stacked along a new dim after the
        batch dims (shape ``(*batch_size, T)``).

        ``policy`` writes the action (random actions when None). With
        ``break_when_any_done`` the rollout stops after the first step where any sub-env is
        done; otherwise done sub-envs are reset and the next step's root holds the reset
        observation (``step_and_maybe_reset``). ``auto_reset=False`` starts from
        ``tensordict`` (which must then be given) instead of a fresh reset.
        ``set_truncated`` marks the last step truncated (and done) where it is not done,
        so that value estimators do not bootstrap across the cut.

        TorchRL's keyword arguments: ``actions`` (pre-computed actions replayed in order
        instead of a policy; ``max_steps`` is capped to their number),
        ``auto_cast_to_device`` (the policy runs on the device of its parameters),
        ``trust_policy`` (a callable whose arguments are observation keys is wrapped into a
        TensorDict module unless this is True; see
        :func:`~streamrl.envs.policy_compat.make_compatible_policy`),
        ``return_contiguous=False`` (a lazy stack of the steps), ``out`` (a TensorDict of the
        output's shape the steps are written into), ``storing_device`` (where the output
        goes). ``break_when_all_done=True`` (TorchRL's partial steps) and ``set_state`` are
        not supported: they raise ``ValueError``.
        """
        self._check_open()
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, found {max_steps!r}")
        if break_when_all_done:
            raise ValueError(
                "rollout(break_when_all_done=True) is not supported: streamrl steps every "
                "sub-env at each step (done ones are reset, or the rollout stops with "
                "break_when_any_done=True)"
            )
        if set_state:
            raise ValueError("rollout(set_state=True) is not supported: reset the env to a "
                             "state with env.restore_state(...), then auto_reset=False")
        if actions is not None:
            if policy is not None:
                raise ValueError("rollout takes a policy or actions, not both")
            policy = ReplayActions(actions, self.action_key)
            max_steps = min(max_steps, len(policy))
        else:
            policy = make_compatible_policy(policy, self, trust_policy)
        if auto_cast_to_device and policy is not None:
            device = policy_device(policy)
            if device is not None and device != (self.device or torch.device("cpu")):
                policy = CastToPolicyDevice(policy, device)
        if auto_reset:
            td = self.reset(tensordict)
        elif tensordict is None:
            raise ValueError("rollout(auto_reset=False) needs a tensordict to start from")
        else:
            self._check_batch(tensordict, "rollout")
            td = tensordict
        result, _ = run_steps(
            self, td, max_steps, policy,
            break_when_any_done=break_when_any_done, callback=callback,
        )
        if self.device is not None and result.device != self.device:
            result = result.to(self.device)
        # as in TorchRL, the stacked dim is named "time" (offline transforms find it by name)
        result.names = [None] * (result.batch_dims - 1) + ["time"]
        if set_truncated:
            last = result[(slice(None),) * len(self.batch_size) + (-1,)]
            nxt = last.get("next")
            cut = ~nxt.get("done")
            nxt.set_("truncated", nxt.get("truncated") | cut)
            nxt.set_("done", nxt.get("done") | cut)
        return finish_rollout(result, len(self.batch_size), return_contiguous, out,
                              storing_device)

    # ------------------------------------------------------- stepping protocol
    def step_buffers(self, T: int) -> StepBuffers | None:
        """:class:`StepBuffers` for ``T`` steps of this env, or None when its entries do not
        fit flat buffers: several action keys, a reward or done entry other than
        ``reward``/``done``/``terminated``/``truncated`` or not of shape ``(*batch_size, 1)``
        (a multi-objective reward), non-tensor observations, a state
        spec, or a device other than the CPU (callers then step with :meth:`step`)."""
        self._check_open()
        if self.device not in (None, torch.device("cpu")):
            return None
        return self._flat_buffers(T)

    def _flat_buffers(self, T: int) -> StepBuffers | None:
        """:meth:`step_buffers` whatever the device (batched envs step their sub-envs on the
        CPU and move the outputs)."""
        if self.full_state_spec.keys():
            return None
        _, action_keys, action_spec, _ = self._action_info()
        if list(action_keys) != ["action"] or not isinstance(action_spec, TensorSpec):
            return None
        rewards, dones = self.full_reward_spec, self.full_done_spec
        if rewards.keys(True, True) != ["reward"]:
            return None
        if sorted(dones.keys(True, True)) != sorted(DONE_KEYS):
            return None
        flag_shape = (*self.batch_size, 1)  # the buffers' reward and flag columns
        if any(spec[k].shape != flag_shape for spec, keys in ((rewards, ["reward"]),
               (dones, DONE_KEYS)) for k in keys):
            return None
        obs = self.full_observation_spec
        specs = {k: obs[k] for k in obs.keys(True, True)}
        if not all(isinstance(s, TensorSpec) and s.device in (None, torch.device("cpu"))
                   for s in specs.values()):
            return None
        return StepBuffers(self.batch_size, T, specs, action_spec, self.reward_spec.dtype)

    def step_into(
        self, buffers: StepBuffers, t: int, steps: int = 1, *, break_when_any_done: bool = False
    ) -> int:
        """Take ``steps`` steps with the actions ``buffers.action[..., t:t + steps]``, writing
        each step ``i`` into column ``i`` of ``buffers`` and the observation it leads to into
        root column ``i + 1``. The first step acts on root column ``t``, which the caller
        fills (the observation the env is in).

        Done sub-envs are reset (their reset observation goes to the root column after the
        done step), except with ``break_when_any_done``, which stops after the first step
        where any sub-env is done and resets nothing. Returns the number of steps written.
        ``buffers`` come from this env's :meth:`step_buffers`; actions are not checked
        against the spec (callers check what they did not draw from it).

        >>> from streamrl.envs.libs.gym import GymEnv
        >>> env = GymEnv("CartPole-v1")
        >>> bufs = env.step_buffers(10)
        >>> bufs.root["observation"][0] = env.reset()["observation"]
        >>> bufs.action[:] = 1
        >>> env.step_into(bufs, 0, 10, break_when_any_done=True) <= 10
        True
        >>> env.close()
        """
        self._check_open()
        if not isinstance(buffers, StepBuffers):
            raise TypeError(f"step_into expects StepBuffers, found {type(buffers).__name__}")
        if buffers.batch_size != self.batch_size:
            raise ValueError(
                f"step_into: buffers for batch size {tuple(buffers.batch_size)}, the env has "
                f"{tuple(self.batch_size)}"
            )
        if not (isinstance(steps, int) and steps >= 1 and 0 <= t and t + steps <= buffers.T):
            raise ValueError(
                f"step_into: steps {t}..{t + steps if isinstance(steps, int) else steps} do not "
                f"fit buffers of T={buffers.T}"
            )
        return self._step_into(buffers, t, steps, break_when_any_done)

    def _step_into(
        self, buffers: StepBuffers, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        """Hook of :meth:`step_into` (arguments checked). The default steps with
        :meth:`step` and resets with :meth:`maybe_reset`, one TensorDict per step.
        Without gradients: the buffers keep values only (a custom env with a learnt model
        would otherwise fail to write outputs that require grad)."""
        with torch.no_grad():
            return self._step_into_loop(buffers, t, steps, break_when_any_done)

    def _stepper(self, buffers: StepBuffers) -> Any:
        """An object whose ``actions(t, steps)`` converts the actions of ``buffers`` and whose
        ``step(i, action, keep_going) -> done`` steps once into row ``i``, for a batched env
        to step its sub-envs in one loop; ``None`` (the default): step with :meth:`step_into`."""
        return None

    def _step_into_loop(
        self, buffers: StepBuffers, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        # the actions are checked by step_into's callers: a subclass's own step() still runs
        step = self._step_checked if type(self).step is EnvBase.step else self.step
        for i in range(t, t + steps):
            stepped = step(buffers.root_tensordict(i))
            root = self.next_root(stepped)
            if not break_when_any_done:
                root = self.maybe_reset(root)
            if buffers.write_step(i, stepped.get("next"), root) and break_when_any_done:
                return i - t + 1
        return steps

    # ------------------------------------------------------------- run state
    def capture_state(self) -> dict[str, Any]:
        """The env's running state as plain data (tensors, numbers, strings, dicts), so that
        :meth:`restore_state` makes an env built the same way continue exactly from here:
        the simulator's state mid-episode, random generators, counters, transforms'
        statistics. Captured between steps (e.g. at a collector's batch boundary).

        Unlike ``state_dict()`` (a transform's statistics, as TorchRL defines it) this is the
        whole of what a resumed run needs. An env whose state cannot be captured raises
        ``NotImplementedError`` naming it (a resume would not continue its episodes).

        >>> from streamrl.envs.libs.gym import GymEnv
        >>> env, twin = GymEnv("CartPole-v1"), GymEnv("CartPole-v1")
        >>> _ = env.set_seed(0); td = env.reset()
        >>> twin.restore_state(env.capture_state())
        >>> a = env.rand_step(td); b = twin.step(a.exclude("next"))
        >>> bool((a["next", "observation"] == b["next", "observation"]).all())
        True
        >>> env.close(); twin.close()
        """
        self._check_open()
        return {"type": type(self).__name__, "state": self._capture_state()}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Put the env in the state :meth:`capture_state` returned (from this env or one
        built the same way). The whole state is checked before anything is changed: a
        state of another env class, env id, batch size or set of transforms raises
        ``ValueError`` saying what was expected and what was found, and leaves the env as
        it was."""
        self._check_open()
        self.check_state(state)
        self._restore_state(state["state"])

    def check_state(self, state: Any) -> None:
        """Raise ``ValueError`` (``TypeError`` for a non-dict) unless :meth:`restore_state`
        can restore ``state`` into this env; changes nothing."""
        if not isinstance(state, dict):
            raise TypeError(f"expected an env state (a dict), found {type(state).__name__}")
        self._check_state_keys(state, {"type", "state"})
        if state["type"] != type(self).__name__:
            raise ValueError(f"the state is of a {state['type']}, this env is a "
                             f"{type(self).__name__} ({self!r})")
        self._check_state(state["state"])

    def _check_state_keys(self, state: Any, expected: set[str]) -> None:
        if not isinstance(state, dict) or set(state) != expected:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{type(self).__name__} state: expected keys {sorted(expected)}, "
                             f"found {found}")

    def _capture_state(self) -> Any:
        """Hook: the env's own state (see :meth:`capture_state`)."""
        raise NotImplementedError(
            f"the state of {self!r} cannot be captured: {type(self).__name__} does not "
            "implement _capture_state/_check_state/_restore_state, so a resumed run could not "
            "continue its episodes"
        )

    def _check_state(self, state: Any) -> None:
        """Hook: raise ``ValueError`` unless ``state`` fits this env (change nothing)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement _check_state: its state cannot be "
            "restored"
        )

    def _restore_state(self, state: Any) -> None:
        """Hook: write a checked state into the env."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement _restore_state: its state cannot be "
            "restored"
        )

    def append_transform(self, transform: Any) -> Any:
        """Wrap this env in a ``TransformedEnv`` with ``transform`` (returns the new env)."""
        from streamrl.envs.transforms import TransformedEnv

        return TransformedEnv(self, transform)

    @property
    def batch_locked(self) -> bool:
        """Whether inputs must have exactly ``batch_size`` (the default). An env built with
        ``batch_locked=False`` (a stateless env such as :class:`PendulumEnv`) also takes
        TensorDicts with more leading dims, ``(*extra, *batch_size)``, in ``reset`` and
        ``step``."""
        return self._batch_locked

    @batch_locked.setter
    def batch_locked(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"batch_locked must be a bool, found {type(value).__name__}")
        self._batch_locked = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.batch_size}, device={self.device})"
