"""ArrayEnv: the base of the wrappers whose simulator speaks numpy (gymnasium, dm_control).

A wrapper implements three hooks over its simulator and keeps its flat observation specs in
``self._obs_specs`` (key -> spec):

- ``_np_reset() -> dict``: the observation arrays after a reset, by key;
- ``_np_step(action) -> (dict, reward, terminated, truncated)``: one (frame-skipped) step;
- ``_actions_from_numpy(block)``: the simulator's actions for a block of action rows
  (``[steps, *action_shape]``, or one row), indexable by step.

The base turns them into TensorDicts (:meth:`_step_output`, :meth:`_to_tensors`) and owns
the stepping protocol's fast path (:meth:`_step_into`): the simulator's arrays are written
straight into the step buffers' numpy views, with no TensorDict per step. Attributes the
wrapper does not have are read from the simulator's env (``self._env``), as in TorchRL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import Composite
from streamrl.envs.common import EnvBase
from streamrl.envs.libs._wrapped import ForwardsToWrapped
from streamrl.envs.step_buffers import StepBuffers

FLAGS = ("done", "terminated", "truncated")

# the methods whose redefinition in a user's subclass must run: such a subclass steps through
# the generic (TensorDict) path
_STEPPING = ("_step", "_reset", "step", "reset", "maybe_reset", "step_and_maybe_reset")


def overrides_stepping(cls: type) -> bool:
    """Whether a subclass of a library wrapper redefines how it steps or resets. The walk
    stops at the first class that declares ``_library_wrapper = True`` in its own body (the
    wrapper streamrl ships: its stepping methods are the fast path's own)."""
    for klass in cls.__mro__:
        if klass.__dict__.get("_library_wrapper", False):
            return False
        if any(name in klass.__dict__ for name in _STEPPING):
            return True
    return False


class ArrayEnv(ForwardsToWrapped, EnvBase):
    """An unbatched env over a numpy simulator (see the module docstring for the hooks)."""

    _env: Any
    _obs_specs: dict[str, Any]
    _reward_np_dtype: Any

    # ------------------------------------------------------------------ hooks
    def _np_reset(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement _np_reset")

    def _np_step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool]:
        raise NotImplementedError(f"{type(self).__name__} must implement _np_step")

    def _actions_from_numpy(self, block: np.ndarray) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _actions_from_numpy")

    def _arrays_supported(self) -> bool:
        """Whether the fast path may run (a wrapper says False for outputs it cannot write
        as flat arrays, e.g. entries a reader of its own adds)."""
        return True

    # ------------------------------------------------------------- TensorDicts
    def _to_tensors(self, arrays: dict[str, Any]) -> dict[str, Any]:
        """Observation arrays (or nested tuples, for a Composite spec) -> tensors, with the
        dtype and shape of their specs (copies: the simulator may reuse its arrays)."""
        out = {}
        for key, val in arrays.items():
            spec = self._obs_specs[key]
            if isinstance(spec, Composite):
                out[key] = spec.encode(val)
                continue
            t = torch.as_tensor(np.array(val, dtype=None)).to(spec.dtype)
            out[key] = t if t.shape == spec.shape else t.reshape(spec.shape)
        return out

    def _reset_output(self, src: dict[str, Any]) -> TensorDictBase:
        """The reset TensorDict: the observation tensors and the three flags, False."""
        false = torch.zeros(1, dtype=torch.bool)
        for key in FLAGS:
            src[key] = false.clone()
        return TensorDict(src, batch_size=(), device=self.device)

    def _step_output(
        self, src: dict[str, Any], reward: float, term: bool, trunc: bool
    ) -> TensorDictBase:
        """A step's ``"next"`` TensorDict: the observation tensors, the reward and flags."""
        # one small array for the three flags: fewer tensor constructions per step
        flags = torch.from_numpy(np.array([[term or trunc], [term], [trunc]], dtype=bool))
        src["reward"] = torch.from_numpy(np.array([reward], dtype=self._reward_np_dtype))
        src["done"] = flags[0]
        src["terminated"] = flags[1]
        src["truncated"] = flags[2]
        return TensorDict._new_unsafe(src, batch_size=torch.Size(()), device=self.device)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        return self._reset_output(self._to_tensors(self._np_reset()))

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action").detach().cpu().numpy()
        obs, reward, term, trunc = self._np_step(self._actions_from_numpy(action))
        return self._step_output(self._to_tensors(obs), reward, term, trunc)

    # ------------------------------------------------------- stepping protocol
    def _step_into(
        self, buffers: StepBuffers, t: int, steps: int, break_when_any_done: bool
    ) -> int:
        # the simulator's arrays written straight into the buffers' numpy views: no
        # TensorDict per step. Nested observations and subclasses that redefine how the env
        # steps or resets take the generic path, so that their code runs.
        if not self._arrays_ok():
            return super()._step_into(buffers, t, steps, break_when_any_done)
        steps_ = buffers.memo((_STEPPER, id(self)), lambda: ArraySteps(self, buffers))
        actions = steps_.actions(t, steps)
        keep_going = not break_when_any_done
        step = steps_.step
        for k in range(steps):
            if step(t + k, actions[k], keep_going) and not keep_going:
                return k + 1
        return steps

    def _stepper(self, buffers: StepBuffers) -> ArraySteps | None:
        if not self._arrays_ok():
            return None
        return buffers.memo((_STEPPER, id(self)), lambda: ArraySteps(self, buffers))

    def _arrays_ok(self) -> bool:
        """Whether the fast path applies (asked once per spec build: a wrapper sets
        ``self._arrays = None`` when its specs change)."""
        ok = self.__dict__.get("_arrays")
        if ok is None:
            flat = self._arrays_supported() and not any(
                isinstance(s, Composite) for s in self._obs_specs.values()
            )
            ok = self._arrays = flat and not overrides_stepping(type(self))
        return ok


_STEPPER = "ArrayEnv.step_into"


class ArraySteps:
    """One :class:`ArrayEnv`'s steps into one :class:`StepBuffers`: the numpy views made once
    (``(key, next rows, root rows)`` per observation rather than dict lookups per step and key;
    reward and flags as ``[T]`` views, as setting a scalar is cheaper than filling a row)."""

    __slots__ = ("_act", "_convert", "_obs", "_reset", "_rew", "_step", "_term", "_trunc")

    def __init__(self, env: ArrayEnv, buffers: StepBuffers):
        v = buffers.numpy()
        self._obs = [(key, v["next"][key], v["root"][key]) for key in v["next"]]
        self._rew, self._term, self._trunc = (
            v[k][:, 0] for k in ("reward", "terminated", "truncated")
        )
        self._act = v["action"]
        self._convert, self._step, self._reset = env._actions_from_numpy, env._np_step, env._np_reset

    def actions(self, t: int, steps: int) -> Any:
        """The simulator's actions of steps ``t .. t + steps - 1`` (one conversion)."""
        act = self._act
        return (self._convert(act[t]),) if steps == 1 else self._convert(act[t : t + steps])

    def step(self, i: int, action: Any, keep_going: bool) -> bool:
        """Step ``i`` with the simulator's ``action``; whether the episode ended. The next
        root row holds the reset observation when it ended and ``keep_going``, else this
        step's."""
        obs, r, te, tr = self._step(action)
        obs_bufs = self._obs
        for key, nxt, _ in obs_bufs:
            nxt[i] = obs[key]
        self._rew[i] = r
        self._term[i] = te
        self._trunc[i] = tr
        if (te or tr) and keep_going:
            fresh = self._reset()
            for key, _, root in obs_bufs:
                root[i + 1] = fresh[key]
        else:
            # copy from our own contiguous row: cheaper than from the env's array (rendered
            # frames are often transposed views)
            for _, nxt, root in obs_bufs:
                root[i + 1] = nxt[i]
        return bool(te or tr)
