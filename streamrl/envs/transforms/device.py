"""DeviceCastTransform and PinMemoryTransform: where an env's data lives in memory.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import DeviceCastTransform
>>> td = TensorDict({"obs": torch.ones(1, dtype=torch.double)}, [], device="cpu")
>>> DeviceCastTransform(device="cpu:0")(td).device
device(type='cpu', index=0)
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms.transform import Transform

__all__ = ["DeviceCastTransform", "PinMemoryTransform"]


def _device(device: Any, name: str) -> torch.device | None:
    if device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be a torch.device or its name, found {device!r}") from None


def _to(td: TensorDictBase, keys: list, out_keys: list, device: torch.device) -> TensorDictBase:
    if td.device is not None and td.device != device:
        td.clear_device_()  # entries on two devices: the TensorDict holds no single device
    for key, out_key in zip(keys, out_keys):
        value = td.get(key, None)
        if value is not None:
            td.set(out_key, value.to(device))
    return td


class DeviceCastTransform(Transform):
    """Move data between the env's device (``orig_device``) and ``device``.

    Without keys, whole TensorDicts move: the env's outputs (reset and step) go to
    ``device`` and step inputs come back to ``orig_device``; the transformed env's device is
    ``device``. With keys, only ``in_keys`` entries (observation path) and ``out_keys_inv``
    entries (action path, written at ``in_keys_inv``) move, and the env's device becomes
    None (its data spans two devices). Specs follow the data.

    Args:
        device: the device outside the env.
        orig_device: the env's device; by default the parent env's, when there is one (the
            action path leaves data where it is while neither is known).

    Keyword Args:
        in_keys, out_keys: observation-path entries to move (``out_keys`` defaults to
            ``in_keys``).
        in_keys_inv, out_keys_inv: action-path entries, as the base env names them and as
            users do (``out_keys_inv`` defaults to ``in_keys_inv``).
    """

    def __init__(
        self,
        device: Any,
        orig_device: Any = None,
        *,
        in_keys: Any = None,
        out_keys: Any = None,
        in_keys_inv: Any = None,
        out_keys_inv: Any = None,
    ) -> None:
        self.device = _device(device, "device")
        if self.device is None:
            raise ValueError("DeviceCastTransform needs a device, found None")
        self.orig_device = _device(orig_device, "orig_device")
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self._whole = not self.in_keys and not self.in_keys_inv

    def _origin(self) -> torch.device | None:
        if self.orig_device is not None:
            return self.orig_device
        parent = self.parent
        return None if parent is None else parent.device

    # ------------------------------------------------------------------ data
    def _call(self, td: TensorDictBase) -> TensorDictBase:
        if self._whole:
            return td.to(self.device)
        return _to(td, self.in_keys, self.out_keys, self.device)

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        origin = self._origin()
        if origin is None:
            return td
        if self._whole:
            return td.to(origin)
        return _to(td, self.out_keys_inv, self.in_keys_inv, origin)

    def _has_inverse(self) -> bool:
        return self._whole or bool(self.in_keys_inv)

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        origin = self._origin()
        if td is None or not self._whole or origin is None:
            return td
        return td.to(origin)

    def transform_env_device(self, device: Any) -> Any:
        """``device`` when whole TensorDicts move, None when only some entries do."""
        if self.orig_device is None and device is not None:
            # remember the env's device for copies of this transform (ParallelEnv workers)
            self.orig_device = torch.device(device)
        return self.device if self._whole else None

    # ------------------------------------------------------------------ specs
    def transform_output_spec(self, output_spec: Any) -> Any:
        """Output specs on ``device`` (all of them, or those of ``out_keys``)."""
        if self._whole:
            return output_spec.to(self.device)
        for part in ("full_observation_spec", "full_reward_spec", "full_done_spec"):
            composite = output_spec[part]
            present = set(composite.keys(True, True))
            for key, out_key in zip(self.in_keys, self.out_keys):
                if key in present:
                    composite[out_key] = composite[key].to(self.device)
            output_spec[part] = composite
        return output_spec

    def transform_input_spec(self, input_spec: Any) -> Any:
        """Input specs on ``device`` (all of them, or those of ``out_keys_inv``)."""
        if self._whole:
            return input_spec.to(self.device)
        for part in ("full_action_spec", "full_state_spec"):
            composite = input_spec[part]
            present = set(composite.keys(True, True))
            for key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
                if key in present:
                    spec = composite[key].to(self.device)
                    if out_key != key:
                        del composite[key]
                    composite[out_key] = spec
            input_spec[part] = composite
        return input_spec

    def __repr__(self) -> str:
        return (
            f"DeviceCastTransform(device={self.device}, orig_device={self.orig_device}, "
            f"in_keys={self.in_keys}, in_keys_inv={self.in_keys_inv})"
        )


class PinMemoryTransform(Transform):
    """Pin the memory of the env's outputs (``TensorDict.pin_memory``), so that copies to an
    accelerator can run asynchronously.

    Pinned memory is page-locked host memory handed to an accelerator's driver: without an
    accelerator nothing can be pinned, and the transform raises ``RuntimeError`` on its first
    output.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> t = PinMemoryTransform()
    >>> td = TensorDict({"obs": torch.zeros(2)}, [])
    >>> if torch.accelerator.is_available():
    ...     pinned = t(td)["obs"].is_pinned()
    ... else:
    ...     try:
    ...         t(td)
    ...     except RuntimeError as err:
    ...         pinned = "needs an accelerator" in str(err)
    >>> pinned
    True
    """

    def __init__(self) -> None:
        super().__init__()

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        if not torch.accelerator.is_available():
            raise RuntimeError(
                "PinMemoryTransform: pinning memory needs an accelerator (CUDA, ...); none is "
                "available"
            )
        return td.pin_memory()

    def __repr__(self) -> str:
        return "PinMemoryTransform()"
