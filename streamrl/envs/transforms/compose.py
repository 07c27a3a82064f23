"""Compose: a sequence of transforms applied in order.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import Compose, RewardClipping, RewardScaling
>>> t = Compose(RewardScaling(loc=0.0, scale=10.0), RewardClipping(-1.0, 1.0))
>>> t(TensorDict({"reward": torch.tensor([0.05, 0.5])}))["reward"]
tensor([0.5000, 1.0000])
"""

from __future__ import annotations

from collections.abc import Sequence
from textwrap import indent
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from streamrl.envs.transforms.transform import Transform

__all__ = ["Compose"]


class Compose(Transform):
    """Apply transforms in order on outputs, in reverse order on actions.

    The first transform is the one nearest the base env: it sees the base env's outputs first
    and writes the action the base env reads last. Index it like a list
    (``compose[2]``, ``compose[1:]``); ``append`` and ``insert`` add transforms.

    As in TorchRL the transforms may also come as one list, positionally or as
    ``transforms=``:

    >>> from streamrl.envs.transforms import RewardClipping, RewardScaling
    >>> len(Compose(transforms=[RewardScaling(0.0, 2.0), RewardClipping(-1.0, 1.0)]))
    2
    """

    def __init__(
        self,
        *trsfs: Transform | Sequence[Transform],
        transforms: Sequence[Transform] | None = None,
        _attach: bool = True,
    ) -> None:
        super().__init__()
        if len(trsfs) == 1 and isinstance(trsfs[0], (list, tuple)):
            trsfs = tuple(trsfs[0])
        if transforms is not None:
            if trsfs:
                raise TypeError(
                    "Compose takes its transforms positionally or as transforms=, not both "
                    f"(found {len(trsfs)} positional and transforms={transforms!r})"
                )
            if not isinstance(transforms, (list, tuple)):
                raise TypeError(
                    f"transforms must be a list of transforms, found {type(transforms).__name__}"
                )
            trsfs = tuple(transforms)
        transforms = trsfs
        for t in transforms:
            _check_transform(t)
        self.transforms = nn.ModuleList(transforms)
        # A parent view (Transform.parent) reuses transforms without taking ownership.
        self._attach = _attach
        if _attach:
            for t in transforms:
                t.set_container(self)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if self._attach:
            for t in self.transforms:
                object.__setattr__(t, "_container", self)

    def dump(self, **kwargs: Any) -> None:
        """``dump`` every transform (e.g. write the videos of the recorders among them)."""
        for t in self.transforms:
            t.dump(**kwargs)

    def _env_seeded(self, seed: int | None) -> None:
        for t in self.transforms:
            t._env_seeded(seed)

    # ------------------------------------------------------------------ list interface
    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self):
        return iter(self.transforms)

    def __getitem__(self, index: int | slice) -> Transform:
        if isinstance(index, slice):
            return Compose(*self.transforms[index], _attach=False)
        return self.transforms[index]

    def append(self, transform: Transform) -> None:
        """Add ``transform`` at the end (farthest from the base env)."""
        _check_transform(transform)
        if self._attach:
            transform.set_container(self)
        self.transforms.append(transform)
        self._specs_changed()

    def insert(self, index: int, transform: Transform) -> None:
        """Insert ``transform`` before position ``index``, as ``list.insert`` does."""
        _check_transform(transform)
        n = len(self.transforms)
        if not -n <= index <= n:
            raise IndexError(f"insert index {index} out of range for a Compose of {n} transforms")
        if self._attach:
            transform.set_container(self)
        items = list(self.transforms)
        items.insert(index, transform)  # list.insert semantics
        self.transforms = nn.ModuleList(items)
        self._specs_changed()

    def _check_env_use(self) -> None:
        for t in self.transforms:
            t._check_env_use()

    def _specs_changed(self) -> None:
        env = self._container
        if env is not None and hasattr(env, "_invalidate_specs"):
            env._invalidate_specs()

    def parent_env_and_prefix(self) -> tuple[Any, list[Transform]] | None:
        """(base env, transforms applied before this Compose) for ``Transform.parent``."""
        from streamrl.envs.transforms.transformed_env import TransformedEnv

        container = self._container
        if container is None:
            return None
        if isinstance(container, TransformedEnv):
            return container.base_env, []
        if isinstance(container, Compose):
            outer = container.parent_env_and_prefix()
            if outer is None:
                return None
            before = []
            for t in container.transforms:
                if t is self:
                    break
                before.append(t)
            return outer[0], [*outer[1], *before]
        return None

    # ------------------------------------------------------------------ hooks
    def _call(self, td: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            td = t._call(td)
        return td

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            next_td = t._step(td, next_td)
        return next_td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        for t in self.transforms:
            td_reset = t._reset(td, td_reset)
        return td_reset

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        for t in reversed(self.transforms):
            td = t._reset_env_preprocess(td)
        return td

    @property
    def _live_action_spec(self) -> bool:  # type: ignore[override]
        return any(t._live_action_spec for t in self.transforms)

    @property
    def _per_step(self) -> bool:  # type: ignore[override]
        return all(t._per_step for t in self.transforms)

    def _has_inverse(self) -> bool:
        return any(t._has_inverse() for t in self.transforms)

    def _step_skip(self, td: TensorDictBase) -> torch.Tensor | None:
        skip = None
        for t in self.transforms:
            mine = t._step_skip(td)
            if mine is not None:
                skip = mine if skip is None else skip | mine
        return skip

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        for t in reversed(self.transforms):
            td = t._inv_call(td)
        return td

    def _chain(self, hook: str, value: Any) -> Any:
        """``value`` through every transform's ``hook``, nearest the base env first."""
        for t in self.transforms:
            value = getattr(t, hook)(value)
        return value

    def transform_env_batch_size(self, batch_size: torch.Size) -> torch.Size:
        """The batch size after every transform, nearest the base env first."""
        return self._chain("transform_env_batch_size", batch_size)

    def transform_env_device(self, device: Any) -> Any:
        """The device after every transform, nearest the base env first."""
        return self._chain("transform_env_device", device)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Each transform's output-spec change, nearest the base env first."""
        return self._chain("transform_output_spec", output_spec)

    def transform_input_spec(self, input_spec: Any) -> Any:
        """Each transform's input-spec change, nearest the base env first."""
        return self._chain("transform_input_spec", input_spec)

    def transform_observation_spec(self, spec: Any) -> Any:
        """The observation spec after every transform."""
        return self._chain("transform_observation_spec", spec)

    def transform_reward_spec(self, spec: Any) -> Any:
        """The reward spec after every transform."""
        return self._chain("transform_reward_spec", spec)

    def transform_done_spec(self, spec: Any) -> Any:
        """The done spec after every transform."""
        return self._chain("transform_done_spec", spec)

    def transform_action_spec(self, spec: Any) -> Any:
        """The action spec seen from outside every transform."""
        return self._chain("transform_action_spec", spec)

    def transform_state_spec(self, spec: Any) -> Any:
        """The state spec seen from outside every transform."""
        return self._chain("transform_state_spec", spec)

    def reset_state(self) -> None:
        """Forget every transform's per-episode state."""
        for t in self.transforms:
            t.reset_state()

    def __repr__(self) -> str:
        items = ",\n".join(indent(repr(t), 4 * " ") for t in self.transforms)
        return f"{type(self).__name__}(\n{indent(items, 4 * ' ')})"


def _check_transform(t: Any) -> None:
    if not isinstance(t, Transform):
        raise TypeError(f"Compose expects Transform instances, found {type(t).__name__}")
