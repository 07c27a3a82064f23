"""TensorDictPrimer: entries an env does not produce itself (a recurrent policy's hidden
state, a goal), written at reset and carried from step to step.

>>> import torch
>>> from streamrl.data.specs import Unbounded
>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import TensorDictPrimer, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), TensorDictPrimer(mykey=Unbounded([3])))
>>> td = env.reset()
>>> td["mykey"]
tensor([0., 0., 0.])
>>> env.rand_step(td)["next", "mykey"]
tensor([0., 0., 0.])
>>> env.close()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey, unravel_key

from streamrl.data.specs import Composite, TensorSpec
from streamrl.envs.transforms.transform import RESET_KEY, Transform, as_keys

__all__ = ["TensorDictPrimer"]


def _leaf_specs(primers: Any) -> dict[NestedKey, Any]:
    if isinstance(primers, Composite):
        return {unravel_key(k): primers[k] for k in primers.keys(True, True)}
    if not isinstance(primers, Mapping):
        raise TypeError(f"primers must be a dict or a Composite, found {type(primers).__name__}")
    out: dict[NestedKey, Any] = {}
    for key, spec in primers.items():
        (key,) = as_keys(key, "primers keys")
        if isinstance(spec, Composite):
            for sub, leaf in _leaf_specs(spec).items():
                out[unravel_key((key, sub))] = leaf
        elif isinstance(spec, TensorSpec):
            out[key] = spec
        else:
            raise TypeError(f"primer {key!r} must be a TensorSpec, found {type(spec).__name__}")
    return out


class TensorDictPrimer(Transform):
    """Write the ``primers`` entries at reset and carry their value into each step's output.

    Args:
        primers: key -> spec (a dict or a Composite); keyword arguments name specs too (one
            or the other, not both). Spec shapes may leave out the env's batch dims: they are
            expanded to the env's (or, outside an env, the data's) batch size.
        random: draw the values from the specs (``spec.rand()``) instead of ``default_value``.
        default_value: with ``random=False``, the values written: a number (every element;
            default ``0.0``), a callable called with no argument for each entry (returning a
            tensor of the entry's unbatched or batched shape), or a dict key -> number or
            callable.
        reset_key: the entry of the reset input marking the sub-envs being reset (default
            ``"_reset"``); the others keep their value in a partial reset.
        expand_specs: None (default) or True: specs whose leading dims are not the env's
            batch size are expanded to it; False: such specs raise.
        single_default_value: ``default_value`` is one callable, called once per reset as
            ``default_value(reset=mask)`` (``mask`` None when every sub-env resets), returning
            a TensorDict holding every primer entry at the env's batch size.
        call_before_env_reset: write the values into the reset input before the base env's
            reset runs (so the base env can read them), then copy them to the reset output;
            default False (written into the reset output after the base env's reset).
        keep_at_reset: a reset keeps the values its input carries (every row, reset or not);
            only a reset without them (the first) writes fresh ones. For a state whose reader
            resets it itself: an RL^2 policy's hidden state, kept across the episodes of a
            trial and reset by the recurrent module's ``is_init`` key (a new task).

    The entries join the observation spec (written by reset and step) and the state spec
    (read back at the next step). At a step, unless the step output already holds the entry,
    ``"next"`` gets the value the policy wrote at ``("next", key)`` in the step input (a
    recurrent module's next state) or else the step input's current value. Outside an env,
    ``forward`` writes the entries that the data lacks.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Bounded
    >>> t = TensorDictPrimer({"h": Bounded(0.0, 1.0, shape=(2,))}, default_value=0.5)
    >>> t(TensorDict({}, [3]))["h"]
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000],
            [0.5000, 0.5000]])
    """

    def __init__(
        self,
        primers: Any = None,
        random: bool | None = None,
        default_value: float | Callable | dict | None = None,
        reset_key: NestedKey | None = None,
        expand_specs: bool | None = None,
        single_default_value: bool = False,
        call_before_env_reset: bool = False,
        keep_at_reset: bool = False,
        **kwargs: Any,
    ) -> None:
        if primers is not None and kwargs:
            raise ValueError(
                f"pass the primers as a dict/Composite or as keyword arguments, not both "
                f"(found primers and {sorted(kwargs)})"
            )
        specs = _leaf_specs(primers if primers is not None else kwargs)
        if not specs:
            raise ValueError("TensorDictPrimer needs at least one primer spec")
        random = bool(random)
        if random and default_value is not None:
            raise ValueError("random=True draws values from the specs: default_value must be None")
        if single_default_value and not callable(default_value):
            raise ValueError(
                "single_default_value=True needs a callable default_value, found "
                f"{type(default_value).__name__}"
            )
        if default_value is None:
            default_value = 0.0
        if isinstance(default_value, Mapping):
            given = {unravel_key(k): v for k, v in default_value.items()}
            if set(given) != set(specs):
                raise ValueError(
                    f"default_value keys {sorted(map(str, given))} must be the primer keys "
                    f"{sorted(map(str, specs))}"
                )
            for key, value in given.items():
                _check_default(value, key)
            default_value = given
        elif not single_default_value:
            _check_default(default_value, "default_value")
        keys = list(specs)
        super().__init__(keys, keys)
        self.primers = specs
        self.random = random
        self.default_value = default_value
        self.single_default_value = bool(single_default_value)
        self.reset_key = RESET_KEY if reset_key is None else as_keys(reset_key, "reset_key")[0]
        self.expand_specs = expand_specs
        self.call_before_env_reset = bool(call_before_env_reset)
        if not isinstance(keep_at_reset, bool):
            raise TypeError(f"keep_at_reset must be a bool, found {type(keep_at_reset).__name__}")
        if keep_at_reset and (random or call_before_env_reset):
            raise ValueError("keep_at_reset keeps the carried values: it takes neither "
                             "random=True nor call_before_env_reset=True")
        self.keep_at_reset = keep_at_reset

    # ------------------------------------------------------------------ specs
    def _spec_for(self, key: NestedKey, batch: torch.Size) -> Any:
        spec = self.primers[key]
        n = len(batch)
        if tuple(spec.shape[:n]) == tuple(batch):
            return spec
        if self.expand_specs is False:
            raise ValueError(
                f"TensorDictPrimer: spec {key!r} of shape {tuple(spec.shape)} does not start "
                f"with the batch size {tuple(batch)} and expand_specs=False"
            )
        return spec.expand(*batch, *spec.shape)

    def _add_specs(self, composite: Any) -> Any:
        for key in self.primers:
            spec = self._spec_for(key, composite.shape)
            if composite.device is not None and spec.device != composite.device:
                spec = spec.to(composite.device)
            composite[key] = spec
        return composite

    def transform_observation_spec(self, spec: Any) -> Any:
        """Add the primer entries to the observations."""
        return self._add_specs(spec)

    def transform_reward_spec(self, spec: Any) -> Any:
        """Unchanged."""
        return spec

    def transform_state_spec(self, spec: Any) -> Any:
        """Add the primer entries to the state (inputs read back at each step)."""
        return self._add_specs(spec)

    # ------------------------------------------------------------------ values
    def _values(self, batch: torch.Size, device: Any, mask: torch.Tensor | None) -> dict:
        if self.single_default_value:
            made = self.default_value(reset=mask)
            if not isinstance(made, TensorDictBase):
                raise TypeError(
                    f"default_value(reset=...) must return a TensorDict, found "
                    f"{type(made).__name__}"
                )
            out = {}
            for key in self.primers:
                value = made.get(key, None)
                if value is None:
                    raise KeyError(f"default_value(reset=...) returned no entry {key!r}")
                out[key] = value
            return out
        out = {}
        for key in self.primers:
            spec = self._spec_for(key, batch)
            if self.random:
                value = spec.rand()
            else:
                fill = (
                    self.default_value[key]
                    if isinstance(self.default_value, dict)
                    else self.default_value
                )
                if callable(fill):
                    value = torch.as_tensor(fill(), dtype=spec.dtype)
                    if value.shape != spec.shape:
                        value = value.expand(spec.shape).clone()
                else:
                    value = torch.full(spec.shape, fill, dtype=spec.dtype)
            out[key] = value.to(device) if device is not None else value
        return out

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        missing = [k for k in self.primers if k not in td.keys(True, True)]
        if missing:
            values = self._values(td.batch_size, td.device, None)
            for key in missing:
                td.set(key, values[key])
        return td

    def _fill(self, td: TensorDictBase | None, target: TensorDictBase) -> TensorDictBase:
        """Write fresh values into ``target`` for the rows being reset (per ``td``'s mask)."""
        batch = target.batch_size
        mask = None if td is None else td.get(self.reset_key, None)
        if mask is not None:
            mask = mask.reshape(batch) if mask.numel() == batch.numel() else mask
            if bool(mask.all()):
                mask = None
        values = self._values(batch, target.device, mask)
        for key, value in values.items():
            old = None if (mask is None or td is None) else td.get(key, None)
            if old is not None:
                m = mask.reshape(*mask.shape, *([1] * (value.ndim - mask.ndim)))
                value = torch.where(m, value, old.to(value.device))
            target.set(key, value)
        return target

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        if not self.call_before_env_reset:
            return td
        parent = self.parent
        if td is None:
            if parent is None:
                raise ValueError("call_before_env_reset needs the transform to be in an env")
            td = TensorDict(batch_size=parent.batch_size, device=parent.device)
        return self._fill(td, td)

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        if self.keep_at_reset and td is not None and all(
                key in td.keys(True, True) for key in self.primers):
            for key in self.primers:
                td_reset.set(key, td.get(key))
            return td_reset
        if self.call_before_env_reset and td is not None:
            for key in self.primers:
                if key not in td_reset.keys(True, True):
                    td_reset.set(key, td.get(key))
            return td_reset
        return self._fill(td, td_reset)

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        for key in self.primers:
            if key in next_td.keys(True, True):
                continue
            # the policy's next value (a recurrent module writes ("next", state)), else the
            # current one carried over
            value = td.get(unravel_key(("next", key)), None)
            if value is None:
                value = td.get(key, None)
            if value is None:
                raise KeyError(
                    f"TensorDictPrimer: the step input has no {key!r} to carry over; step from "
                    "the output of reset() (or of a previous step)"
                )
            next_td.set(key, value)
        return next_td

    def __repr__(self) -> str:
        specs = {str(k): tuple(v.shape) for k, v in self.primers.items()}
        return f"TensorDictPrimer(primers={specs}, random={self.random})"


def _check_default(value: Any, name: Any) -> None:
    if callable(value):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number or a callable, found {type(value).__name__}")
