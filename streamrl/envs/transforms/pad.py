"""PadObservation: zero-pad the last dim of entries to one width, so that the members of a
multi-task batch with observations of different sizes share one spec."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.transform import ObservationTransform

__all__ = ["PadObservation"]


class PadObservation(ObservationTransform):
    """Pad the last dim of each of ``in_keys`` (default ``["observation"]``) with
    ``value`` (0) up to ``width`` entries; an entry already that wide is unchanged, a wider
    one is refused (``ValueError`` naming the key, the width and the found size). The padded
    entries' spec is ``Unbounded`` of the width, so that members of a multi-task batch whose
    observations differ in size and bounds share one spec.

    Two envs of different observation sizes batched together (TorchRL's multi-task way; the
    action specs must agree too): ``SerialEnv(2, [lambda: TransformedEnv(GymEnv(
    "MountainCar-v0"), PadObservation(6)), lambda: TransformedEnv(GymEnv("Acrobot-v1"),
    PadObservation(6))])`` (2 and 6 entries, three actions each).

    >>> from tensordict import TensorDict
    >>> PadObservation(5)(TensorDict({"observation": torch.ones(2, 3)}, [2]))["observation"]
    tensor([[1., 1., 1., 0., 0.],
            [1., 1., 1., 0., 0.]])
    """

    _per_step = True

    def __init__(self, width: int, in_keys: Any = None, out_keys: Any = None,
                 value: float = 0.0) -> None:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an int >= 1, found {width!r}")
        super().__init__(in_keys=["observation"] if in_keys is None else in_keys,
                         out_keys=out_keys)
        self.width, self.value = width, float(value)

    def _pad(self, value: torch.Tensor, key: Any) -> torch.Tensor:
        size = value.shape[-1] if value.ndim else 1
        if not value.ndim or size > self.width:
            raise ValueError(f"PadObservation: {key!r} has {size} entries in its last dim"
                             f"{' (a scalar)' if not value.ndim else ''}; expected at most "
                             f"width={self.width}")
        if size == self.width:
            return value
        return torch.nn.functional.pad(value, (0, self.width - size), value=self.value)

    def _call(self, td: Any) -> Any:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            td.set(out_key, self._pad(self._get(td, in_key), in_key))
        return td

    def transform_observation_spec(self, spec: Any) -> Any:
        """The padded entries as ``Unbounded`` specs of the width (a wider one refused)."""
        present = set(spec.keys(True, True))
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key not in present:
                continue
            leaf = spec[in_key]
            probe = self._pad(leaf.zero(), in_key)
            spec[out_key] = Unbounded(shape=probe.shape, dtype=probe.dtype,
                                      device=getattr(leaf, "device", None))
        return spec

    def __repr__(self) -> str:
        return f"PadObservation(width={self.width}, in_keys={list(self.in_keys)})"
