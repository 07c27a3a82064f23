"""Info-dict readers: copy entries of a gymnasium env's ``info`` dict into its TensorDicts.

:class:`default_info_dict_reader` names the keys to read (all numeric ones by default) and
optionally their specs; :meth:`GymWrapper.set_info_dict_reader` registers it, and the keys
become observations (zeros at a step whose ``info`` lacks them). A reader of your own
subclasses :class:`BaseInfoDictReader`: ``reader(info_dict, tensordict)`` writes its entries
in place and ``reader.info_spec`` (a :class:`Composite`) says what it writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Composite, TensorSpec, Unbounded

__all__ = ["BaseInfoDictReader", "default_info_dict_reader"]


class BaseInfoDictReader:
    """The interface of an info-dict reader (subclass it for a reader of your own).

    ``__call__(info_dict, tensordict)`` writes entries read from ``info_dict`` into
    ``tensordict`` (in place) and returns it; ``info_spec`` is the :class:`Composite` of the
    entries it writes (they join the env's observation spec); ``reset()`` is called when the
    reader is registered.
    """

    def __call__(self, info_dict: Mapping, tensordict: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")

    @property
    def info_spec(self) -> Composite:
        raise NotImplementedError(f"{type(self).__name__} must implement info_spec")

    def reset(self) -> None:
        """Forget any state (the default reader keeps none)."""


def is_numeric(value: Any) -> bool:
    """Whether an info value can become a tensor (numbers, bools, numeric arrays)."""
    if isinstance(value, (bool, int, float, np.number, np.bool_, torch.Tensor)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf"


def spec_of_value(value: Any) -> TensorSpec:
    """An :class:`Unbounded` spec with the shape and dtype of an info value."""
    tensor = torch.as_tensor(np.asarray(value))
    return Unbounded(tuple(tensor.shape), dtype=tensor.dtype)


class default_info_dict_reader(BaseInfoDictReader):  # TorchRL's spelling
    """Read ``keys`` of the info dict (every numeric, non-private key when None).

    Args:
        keys: the info keys to read; None reads every key whose value is numeric.
        spec: the specs of the keys: a sequence matched to ``keys``, a dict or a
            :class:`Composite`; None infers :class:`Unbounded` specs from the values seen.
        ignore_private: skip keys starting with ``_`` (gymnasium's vector-env masks).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> reader = default_info_dict_reader(["x_position"])
    >>> td = reader({"x_position": 1.5, "other": 2}, TensorDict())
    >>> td["x_position"], list(reader.info_spec.keys())
    (tensor(1.5000, dtype=torch.float64), ['x_position'])
    """

    def __init__(
        self,
        keys: Sequence[str] | None = None,
        spec: Sequence[TensorSpec] | Mapping[str, TensorSpec] | Composite | None = None,
        ignore_private: bool = True,
    ) -> None:
        if isinstance(keys, str):
            keys = [keys]
        if keys is not None:
            keys = list(keys)
            bad = [k for k in keys if not isinstance(k, str)]
            if bad:
                raise TypeError(f"info keys must be str, found {bad!r}")
        self.keys = keys
        self.ignore_private = bool(ignore_private)
        self._specs: dict[str, TensorSpec] = {}
        if spec is not None:
            if isinstance(spec, (Composite, Mapping)):
                self._specs = {k: spec[k] for k in spec.keys()}
            else:
                spec = list(spec)
                if keys is None or len(spec) != len(keys):
                    raise ValueError(
                        f"a list of specs is matched to keys: expected {len(keys or [])} "
                        f"specs (one per key), found {len(spec)}"
                    )
                self._specs = dict(zip(keys, spec, strict=True))
            if keys is None:
                self.keys = list(self._specs)
            missing = [k for k in self.keys or () if k not in self._specs]
            if missing:
                raise ValueError(f"spec given for some keys but not for {missing}")

    def keys_in(self, info_dict: Mapping) -> list[str]:
        """The keys this reader reads from ``info_dict``."""
        if self.keys is not None:
            return list(self.keys)
        return [
            k for k, v in info_dict.items()
            if isinstance(k, str) and is_numeric(v)
            and not (self.ignore_private and k.startswith("_"))
        ]

    def spec_for(self, key: str, value: Any) -> TensorSpec:
        """The spec of ``key``: the given one, else one inferred from ``value``."""
        if key not in self._specs:
            if not is_numeric(value):
                raise TypeError(
                    f"info key {key!r}: expected a number, bool or numeric array, found "
                    f"{type(value).__name__}"
                )
            self._specs[key] = spec_of_value(value)
        return self._specs[key]

    def __call__(self, info_dict: Mapping, tensordict: TensorDictBase) -> TensorDictBase:
        for key in self.keys_in(info_dict):
            if key in info_dict:
                spec = self.spec_for(key, info_dict[key])
                value = torch.as_tensor(np.asarray(info_dict[key])).to(spec.dtype)
                tensordict.set(key, value.reshape(spec.shape))
            elif key in self._specs:
                tensordict.set(key, self._specs[key].zero())
        return tensordict

    @property
    def info_spec(self) -> Composite:
        return Composite(dict(self._specs), shape=())
