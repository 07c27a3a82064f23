"""Key transforms: RenameTransform, ExcludeTransform, SelectTransform.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import RenameTransform
>>> td = RenameTransform(["observation"], ["obs"])(TensorDict({"observation": torch.zeros(3)}))
>>> sorted(td.keys())
['obs']
"""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase

from streamrl.envs.transforms._spec_utils import OUTPUT_PARTS
from streamrl.envs.transforms.transform import Transform, as_keys, keys_repr

__all__ = ["ExcludeTransform", "RenameTransform", "SelectTransform"]

_DONE_LEAVES = ("done", "terminated", "truncated")


def _is_done_key(key: Any) -> bool:
    return (key[-1] if isinstance(key, tuple) else key) in _DONE_LEAVES


def _is_reward_key(key: Any) -> bool:
    return (key[-1] if isinstance(key, tuple) else key) == "reward"


class RenameTransform(Transform):
    """Rename ``in_keys`` to ``out_keys`` in outputs (and the specs).

    ``in_keys_inv`` / ``out_keys_inv`` rename inputs: users write ``out_keys_inv`` and the
    base env reads ``in_keys_inv``. With ``create_copy=True`` the old entries stay.
    """

    _per_step = True

    def __init__(
        self,
        in_keys: Any,
        out_keys: Any,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
        create_copy: bool = False,
    ) -> None:
        if out_keys is None or (in_keys_inv is not None and out_keys_inv is None):
            raise ValueError("RenameTransform needs the new names: out_keys / out_keys_inv")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.create_copy = create_copy

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = self._get(td, in_key)
            if not self.create_copy:
                td.del_(in_key)
            td.set(out_key, value)
        return td

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = self._get(td, out_key)
            if not self.create_copy:
                td.del_(out_key)
            td.set(in_key, value)
        return td

    @staticmethod
    def _rename(spec: Any, src: list, dst: list, keep: bool) -> Any:
        present = set(spec.keys(True, True))
        for s, d in zip(src, dst):
            if s in present:
                leaf = spec[s].clone()
                if not keep:
                    del spec[s]
                spec[d] = leaf
        return spec

    def transform_observation_spec(self, spec: Any) -> Any:
        """Observation entries renamed."""
        return self._rename(spec, self.in_keys, self.out_keys, self.create_copy)

    def transform_reward_spec(self, spec: Any) -> Any:
        """Reward entries renamed."""
        return self._rename(spec, self.in_keys, self.out_keys, self.create_copy)

    def transform_done_spec(self, spec: Any) -> Any:
        """Done entries renamed."""
        return self._rename(spec, self.in_keys, self.out_keys, self.create_copy)

    def transform_action_spec(self, spec: Any) -> Any:
        """Action entries under the names users write."""
        return self._rename(spec, self.in_keys_inv, self.out_keys_inv, self.create_copy)

    def transform_state_spec(self, spec: Any) -> Any:
        """State entries under the names users write."""
        return self._rename(spec, self.in_keys_inv, self.out_keys_inv, self.create_copy)

    def __repr__(self) -> str:
        return (
            f"RenameTransform(in_keys={keys_repr(self.in_keys)}, "
            f"out_keys={keys_repr(self.out_keys)})"
        )


class ExcludeTransform(Transform):
    """Drop the given entries from the outputs (and their specs).

    >>> ExcludeTransform("pixels", ("next", "pixels"))
    ExcludeTransform(keys=['pixels', ('next', 'pixels')])
    """

    _per_step = True

    def __init__(self, *excluded_keys: Any) -> None:
        keys = as_keys(list(excluded_keys), "excluded_keys")
        if not keys:
            raise ValueError("ExcludeTransform needs at least one key")
        flags = [k for k in keys if k in _DONE_LEAVES]
        if flags:
            raise ValueError(
                f"ExcludeTransform cannot remove the done flags {flags}: every env reports "
                "done, terminated and truncated"
            )
        super().__init__()
        self.excluded_keys = keys

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td.exclude(*self.excluded_keys)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Output specs without the excluded entries."""
        for part in OUTPUT_PARTS:
            spec = output_spec[part]
            present = set(spec.keys(True, True))
            for key in self.excluded_keys:
                if key in present:
                    del spec[key]
            output_spec[part] = spec
        return output_spec

    def __repr__(self) -> str:
        return f"ExcludeTransform(keys={keys_repr(self.excluded_keys)})"


class SelectTransform(Transform):
    """Keep only the given entries in the outputs (and their specs).

    Rewards and done flags are kept too unless ``keep_rewards`` / ``keep_dones`` is False,
    since an env cannot run without them. Missing keys are not an error.
    """

    _per_step = True

    def __init__(self, *selected_keys: Any, keep_rewards: bool = True, keep_dones: bool = True):
        keys = as_keys(list(selected_keys), "selected_keys")
        if not keys:
            raise ValueError("SelectTransform needs at least one key")
        super().__init__()
        self.selected_keys = keys
        self.keep_rewards = keep_rewards
        self.keep_dones = keep_dones

    def _keep(self, key: Any) -> bool:
        if (self.keep_rewards and _is_reward_key(key)) or (self.keep_dones and _is_done_key(key)):
            return True
        parts = key if isinstance(key, tuple) else (key,)
        # A selected key keeps everything nested under it.
        return any(
            (parts[:i] if i > 1 else parts[0]) in self.selected_keys
            for i in range(1, len(parts) + 1)
        )

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        leaves = list(td.keys(True, True))
        kept = [k for k in leaves if self._keep(k)]
        return td if len(kept) == len(leaves) else td.select(*kept)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Output specs restricted to the selected entries (plus rewards and dones)."""
        for part in OUTPUT_PARTS:
            spec = output_spec[part]
            for key in list(spec.keys(True, True)):
                if not self._keep(key):
                    del spec[key]
            output_spec[part] = spec
        return output_spec

    def __repr__(self) -> str:
        return f"SelectTransform(keys={keys_repr(self.selected_keys)})"
