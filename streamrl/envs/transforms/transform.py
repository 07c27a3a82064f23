"""Transform: the base of every env transform.

A transform is a :class:`torch.nn.Module` (so its statistics and parameters live in
``state_dict``) with keys and a few hooks; :class:`~streamrl.envs.transforms.TransformedEnv`
calls the hooks at the right moments:

- ``_apply_transform(tensor)``: the per-key map applied to each ``in_keys`` entry (observation
  path: reset outputs, step outputs, and ``transform(td)`` outside an env);
- ``_inv_apply_transform(tensor)``: the action-path map, from each ``out_keys_inv`` entry
  (as users write it) to its ``in_keys_inv`` entry (as the base env reads it);
- ``_call(td)`` / ``_step(td, next_td)`` / ``_reset(td, td_reset)`` / ``_inv_call(td)``: override
  these instead when a transform needs more than a per-key map (counters, frame stacks);
- ``transform_*_spec(spec)``: how the transform changes each spec it touches.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import RewardScaling
>>> t = RewardScaling(loc=0.0, scale=2.0)
>>> t(TensorDict({"reward": torch.ones(1)}))["reward"]
tensor([2.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey, unravel_key
from torch import nn

from streamrl.data.specs import TensorSpec
from streamrl.envs.transforms._spec_utils import map_spec

if TYPE_CHECKING:
    from streamrl.envs.transforms.transformed_env import TransformedEnv

__all__ = ["ObservationTransform", "Transform", "map_spec"]

RESET_KEY = "_reset"


def as_keys(keys: Any, name: str = "keys") -> list[NestedKey]:
    """Normalize ``None``, one key (str or tuple of str) or a sequence of keys to a list."""
    if keys is None:
        return []
    if isinstance(keys, (str, tuple)):
        keys = [keys]
    if not isinstance(keys, Sequence):
        raise TypeError(f"{name} must be a key or a list of keys, found {type(keys).__name__}")
    out = []
    for key in keys:
        if isinstance(key, str) or (
            isinstance(key, tuple) and key and all(isinstance(k, (str, tuple)) for k in key)
        ):
            out.append(unravel_key(key))
        else:
            raise TypeError(f"{name} must hold str or tuple-of-str keys, found {key!r}")
    return out


def one_key(key: Any, name: str) -> NestedKey:
    """Normalize an argument that names exactly one key."""
    keys = as_keys(key, name)
    if len(keys) != 1:
        raise ValueError(f"{name} must be one key, found {key!r}")
    return keys[0]


def keys_repr(keys: Sequence[NestedKey]) -> str:
    """Keys as the seed prints them: ``['pixels']``."""
    return repr(list(keys))


class Transform(nn.Module):
    """Base class of env transforms: keys, hooks and the link to the env it belongs to.

    Args:
        in_keys: entries read on the observation path (reset and step outputs).
        out_keys: entries written on that path; defaults to ``in_keys`` (in place).
        in_keys_inv: action-path entries as the base env names them (written for it).
        out_keys_inv: action-path entries as users name them (read from the td given to
            ``env.step``); defaults to ``in_keys_inv``. As on the observation path, "in" is
            the base env's side and "out" the user's side.

    A transform applies to a TensorDict outside any env too: ``transform(td)`` runs the
    observation path on ``td`` (e.g. on a replay-buffer sample) and ``transform.inv(td)`` the
    action path.

    A new per-key transform overrides ``_apply_transform`` (and ``_transform_spec`` when the
    map changes shapes, dtypes or bounds; ``map_spec`` from this module derives it from the
    map):

    >>> import torch
    >>> from tensordict import TensorDict
    >>> class Double(Transform):
    ...     def _apply_transform(self, value):
    ...         return value * 2
    ...     def _transform_spec(self, spec):
    ...         return map_spec(spec, self._apply_transform)
    >>> Double(in_keys=["x"])(TensorDict({"x": torch.ones(1)}))["x"]
    tensor([2.])
    """

    # True when the transform maps each step's data on its own (no state across steps, no
    # env access): TransformedEnv may then run it once over a whole random rollout.
    _per_step: bool = False
    # True when the transform changes the action spec as the episode goes (an action mask):
    # random actions must then be drawn step by step, never all up front.
    _live_action_spec: bool = False

    def __init__(
        self,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        super().__init__()
        self.in_keys = as_keys(in_keys, "in_keys")
        self.out_keys = (
            as_keys(out_keys, "out_keys") if out_keys is not None else list(self.in_keys)
        )
        self.in_keys_inv = as_keys(in_keys_inv, "in_keys_inv")
        self.out_keys_inv = (
            as_keys(out_keys_inv, "out_keys_inv")
            if out_keys_inv is not None
            else list(self.in_keys_inv)
        )
        _check_pairs(self.in_keys, self.out_keys, "in_keys", "out_keys")
        _check_pairs(self.in_keys_inv, self.out_keys_inv, "in_keys_inv", "out_keys_inv")
        # The container (a Compose or a TransformedEnv) is a back-reference, not a submodule:
        # registering it would make the module tree cyclic.
        object.__setattr__(self, "_container", None)

    # ------------------------------------------------------------------ per-key maps
    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        """Map one ``in_keys`` tensor to its ``out_keys`` tensor (observation path)."""
        raise NotImplementedError(f"{type(self).__name__} does not define _apply_transform")

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        """Map one ``out_keys_inv`` tensor (user side) to its ``in_keys_inv`` one (env side)."""
        raise NotImplementedError(f"{type(self).__name__} does not define _inv_apply_transform")

    # ------------------------------------------------------------------ td hooks
    def _call(self, td: TensorDictBase) -> TensorDictBase:
        """Observation path on one TensorDict (step outputs, reset outputs, plain data)."""
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            td.set(out_key, self._apply_transform(self._get(td, in_key)))
        return td

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        """Transform the step output ``next_td``; ``td`` is the input of the step."""
        return self._call(next_td)

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        """Transform the reset output ``td_reset``; ``td`` is the reset input (may be None).

        Entries that only a step produces (rewards) are absent after a reset: the observation
        path runs on the ``in_keys`` that are present.
        """
        pairs = [(i, o) for i, o in zip(self.in_keys, self.out_keys) if i in td_reset.keys(True)]
        if len(pairs) == len(self.in_keys):
            return self._call(td_reset)
        if not pairs:
            return td_reset
        in_keys, out_keys = self.in_keys, self.out_keys
        self.in_keys, self.out_keys = [p[0] for p in pairs], [p[1] for p in pairs]
        try:
            return self._call(td_reset)
        finally:
            self.in_keys, self.out_keys = in_keys, out_keys

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        """Rewrite the reset input before the base env's reset runs (most transforms leave
        it as it is; a TensorDictPrimer with ``call_before_env_reset`` fills it)."""
        return td

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        """Action path: rewrite the step input before the base env reads it."""
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            td.set(in_key, self._inv_apply_transform(self._get(td, out_key)))
        return td

    def _has_inverse(self) -> bool:
        """Whether the action path does anything (lets envs skip copying the step input)."""
        return bool(self.in_keys_inv)

    def _step_skip(self, td: TensorDictBase) -> torch.Tensor | None:
        """Rows of the step input ``td`` whose step is skipped (a bool tensor shaped like the
        batch), or None for none (see :class:`~streamrl.envs.transforms.ConditionalSkip`)."""
        return None

    def _env_seeded(self, seed: int | None) -> None:
        """Hook: the env holding this transform was seeded with ``seed`` (after its base
        env). Transforms that draw random numbers of their own seed them here; most do
        nothing."""

    def dump(self, **kwargs: Any) -> None:
        """Write out what the transform recorded (a video recorder's frames); most
        transforms record nothing. ``env.transform.dump()`` reaches every transform."""

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        """Apply the observation path to ``td`` in place and return it."""
        _check_td(td, self)
        return self._call(td)

    def inv(self, td: TensorDictBase) -> TensorDictBase:
        """Apply the action path to a shallow copy of ``td`` and return the copy."""
        _check_td(td, self)
        return self._inv_call(td.clone(False))

    def _get(self, td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            found = sorted(str(k) for k in td.keys(True, True))
            raise KeyError(f"{type(self).__name__}: key {key!r} not found; the data has {found}")
        return value

    # ------------------------------------------------------------------ specs
    def transform_env_batch_size(self, batch_size: torch.Size) -> torch.Size:
        """The env's batch size after this transform (unchanged unless overridden:
        :class:`~streamrl.envs.transforms.BatchSizeTransform`)."""
        return batch_size

    def transform_env_device(self, device: Any) -> Any:
        """The env's device after this transform (unchanged unless overridden:
        :class:`~streamrl.envs.transforms.DeviceCastTransform`)."""
        return device

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Transform an env's output spec (observation, reward and done specs) in place."""
        from streamrl.envs.transforms._spec_utils import OUTPUT_PARTS

        for part, hook in zip(
            OUTPUT_PARTS,
            (
                self.transform_observation_spec,
                self.transform_reward_spec,
                self.transform_done_spec,
            ),
        ):
            output_spec[part] = hook(output_spec[part])
        return output_spec

    def transform_input_spec(self, input_spec: Any) -> Any:
        """Transform an env's input spec (action and state specs) in place."""
        from streamrl.envs.transforms._spec_utils import INPUT_PARTS

        for part, hook in zip(INPUT_PARTS, (self.transform_action_spec, self.transform_state_spec)):
            input_spec[part] = hook(input_spec[part])
        return input_spec

    def transform_observation_spec(self, spec: Any) -> Any:
        """The full observation spec (a Composite) after this transform."""
        return self._map_specs(spec, self.in_keys, self.out_keys, self._transform_spec)

    def transform_reward_spec(self, spec: Any) -> Any:
        """The full reward spec (a Composite) after this transform."""
        return self._map_specs(spec, self.in_keys, self.out_keys, self._transform_spec)

    def transform_done_spec(self, spec: Any) -> Any:
        """The full done spec (a Composite) after this transform."""
        return spec

    def transform_action_spec(self, spec: Any) -> Any:
        """The full action spec (a Composite) as seen from outside this transform."""
        return self._map_specs(spec, self.in_keys_inv, self.out_keys_inv, self._inv_transform_spec)

    def transform_state_spec(self, spec: Any) -> Any:
        """The full state spec (a Composite) as seen from outside this transform."""
        return self._map_specs(spec, self.in_keys_inv, self.out_keys_inv, self._inv_transform_spec)

    def _transform_spec(self, spec: Any) -> Any:
        """Per-key spec map matching ``_apply_transform``; identity unless overridden."""
        return spec

    def _inv_transform_spec(self, spec: Any) -> Any:
        """Per-key map from the base env's action spec to the one users see."""
        return spec

    @staticmethod
    def _map_specs(
        composite: Any,
        src_keys: Sequence[NestedKey],
        dst_keys: Sequence[NestedKey],
        fn: Callable[[Any], Any],
    ) -> Any:
        # As in TorchRL, a leaf spec given instead of a Composite is the spec of the one
        # entry the transform maps (``RewardScaling().transform_reward_spec(Unbounded(1))``).
        if isinstance(composite, TensorSpec):
            return fn(composite.clone())
        # A transform may name keys that live in another part of the spec (an observation
        # transform sees the reward spec too): only the keys present here are mapped.
        present = set(composite.keys(True, True))
        for src, dst in zip(src_keys, dst_keys):
            if src in present:
                composite[dst] = fn(composite[src].clone())
        return composite

    # ------------------------------------------------------------------ container
    @property
    def container(self) -> Any:
        """The Compose or TransformedEnv that holds this transform (None when standalone)."""
        return self._container

    def set_container(self, container: Any) -> None:
        """Attach this transform to a Compose or TransformedEnv (one at a time); None detaches."""
        if (
            self._container is not None
            and container is not None
            and self._container is not container
        ):
            raise ValueError(
                f"{type(self).__name__} already belongs to a {type(self._container).__name__}; "
                "a transform can be in one env or Compose at a time (use copy.deepcopy)"
            )
        if container is not None and _in_env(container):
            self._check_env_use()
        object.__setattr__(self, "_container", container)

    def _check_env_use(self) -> None:
        """Hook: raise ``ValueError`` if this transform cannot run inside an env (called
        before it is put in one, directly or through a Compose)."""

    def __getstate__(self) -> dict:
        # Copies and pickles leave the container behind (it would drag the whole env along);
        # Compose and TransformedEnv re-attach their members when they are copied.
        state = self.__dict__.copy()
        state["_container"] = None
        if "_parent_cache" in state:
            state["_parent_cache"] = None
        return state

    @property
    def parent(self) -> TransformedEnv | None:
        """The env up to this transform: the base env wrapped in the transforms before it.

        None when the transform is not in an env. Transforms are shared (not copied) with the
        returned env, which is a view: closing the real env closes it too.
        """
        from streamrl.envs.transforms.compose import Compose
        from streamrl.envs.transforms.transformed_env import TransformedEnv

        container = self._container
        if container is None:
            return None
        if isinstance(container, TransformedEnv):
            return _view(container.base_env, [])
        if isinstance(container, Compose):
            before = []
            for t in container.transforms:
                if t is self:
                    break
                before.append(t)
            outer = container.parent_env_and_prefix()
            if outer is None:
                return None
            base_env, prefix = outer
            return _view(base_env, [*prefix, *before])
        raise TypeError(f"unexpected container {type(container).__name__}")

    def reset_state(self) -> None:
        """Forget per-episode state (frame stacks); statistics and parameters are kept."""

    def __repr__(self) -> str:
        if self.in_keys == self.out_keys:
            return f"{type(self).__name__}(keys={keys_repr(self.in_keys)})"
        return (
            f"{type(self).__name__}(in_keys={keys_repr(self.in_keys)}, "
            f"out_keys={keys_repr(self.out_keys)})"
        )


class ObservationTransform(Transform):
    """Base class of the transforms that rewrite observations (images, normalisation, stacks).

    It adds nothing to :class:`Transform`: it marks a transform as acting on observations
    (``isinstance(t, ObservationTransform)``), as TorchRL's base class of the same name does.
    ``in_keys`` must be given (TorchRL defaults them to ``["observation", "pixels"]`` and
    skips the missing ones; streamrl transforms raise on a missing key).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.envs.transforms import ObservationNorm, ObservationTransform
    >>> isinstance(ObservationNorm(0.0, 1.0), ObservationTransform)
    True
    >>> class Negate(ObservationTransform):
    ...     def _apply_transform(self, value):
    ...         return -value
    >>> Negate(in_keys=["observation"])(TensorDict({"observation": torch.ones(2)}))["observation"]
    tensor([-1., -1.])
    """


def _view(base_env: Any, transforms: list[Transform]) -> TransformedEnv:
    from streamrl.envs.transforms.compose import Compose
    from streamrl.envs.transforms.transformed_env import TransformedEnv

    return TransformedEnv(base_env, Compose(*transforms, _attach=False), _view=True)


def _check_pairs(ins: list, outs: list, in_name: str, out_name: str) -> None:
    if len(ins) != len(outs):
        raise ValueError(
            f"{in_name} and {out_name} must have the same length, found {len(ins)} and {len(outs)}"
        )


def _check_td(td: Any, transform: Transform) -> None:
    if not isinstance(td, TensorDictBase):
        raise TypeError(
            f"{type(transform).__name__} expects a TensorDict, found {type(td).__name__}"
        )


def _in_env(container: Any) -> bool:
    """Whether ``container`` (a Compose or a TransformedEnv) is, or is inside, an env."""
    while isinstance(container, Transform):
        container = container._container
    return container is not None


def reset_mask(
    td: TensorDictBase | None, td_reset: TensorDictBase, key: NestedKey = RESET_KEY
) -> torch.Tensor | None:
    """The sub-envs being reset (the ``key`` entry of ``td``), shaped like the batch, or None
    when all of them are."""
    if td is None:
        return None
    mask = td.get(key, None)
    if mask is None:
        return None
    mask = (
        mask.reshape(td_reset.batch_size) if mask.numel() == td_reset.batch_size.numel() else mask
    )
    if mask.all():
        return None
    return mask


def expand_mask(mask: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Broadcast a batch-shaped mask over the trailing (feature) dims of ``value``."""
    return mask.reshape(*mask.shape, *([1] * (value.ndim - mask.ndim)))
