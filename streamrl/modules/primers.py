"""Env transforms a policy needs: the primers of its recurrent states and dropout masks.

A recurrent module reads its hidden state from the TensorDict and writes the next one under
``"next"``. Registered in the env's specs by a :class:`~streamrl.envs.TensorDictPrimer`, the
state is zeroed at reset, carried from step to step by ``step_mdp``, and preallocated and
shared by batched envs and collectors like any observation. Modules that need such entries
expose ``make_tensordict_primer()``; :func:`get_primers_from_module` gathers them from a
whole policy and :func:`get_env_transforms_from_module` adds the ``is_init`` marker.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from streamrl.data.specs import Composite
from streamrl.envs.transforms import Compose, InitTracker, TensorDictPrimer

__all__ = ["get_env_transforms_from_module", "get_primers_from_module"]


def _default_per_key(primer: TensorDictPrimer) -> dict:
    default = primer.default_value
    if isinstance(default, dict):
        return {key: default.get(key, 0.0) for key in primer.primers}
    return {key: 0.0 if default is None else default for key in primer.primers}


def _merge(primers: list[TensorDictPrimer]) -> TensorDictPrimer:
    if len(primers) == 1:
        return primers[0]
    odd = [p for p in primers if p.random or p.single_default_value]
    if odd:
        raise ValueError(
            "get_primers_from_module can merge primers filled from default values only; "
            f"found {len(odd)} with random=True or single_default_value=True among "
            f"{len(primers)} (append those primers to the env one by one)"
        )
    specs: dict = {}
    defaults: dict = {}
    for primer in primers:
        for key, spec in primer.primers.items():
            if key in specs and specs[key] != spec:
                raise ValueError(
                    f"two submodules prime {key!r} with different specs: {specs[key]} and {spec}"
                )
            specs[key] = spec
        defaults.update(_default_per_key(primer))
    return TensorDictPrimer(Composite(specs), default_value=defaults, expand_specs=True)


def get_primers_from_module(
    module: nn.Module, warn: bool = True, strict: bool = True
) -> TensorDictPrimer | None:
    """One :class:`~streamrl.envs.TensorDictPrimer` for every submodule of ``module`` that
    has a ``make_tensordict_primer()`` (LSTM/GRU modules, consistent dropout).

    Args:
        module: the policy (any ``nn.Module``; submodules are walked in order).
        warn: warn when no submodule makes a primer (the result is then ``None``).
        strict: errors raised by a submodule's ``make_tensordict_primer()`` propagate; with
            ``strict=False`` that submodule is skipped (with a warning) and the others'
            primers are still returned.

    >>> from streamrl.modules import GRUModule
    >>> gru = GRUModule(input_size=3, hidden_size=8, in_keys=["obs", "h", "is_init"],
    ...                 out_keys=["features", ("next", "h")])
    >>> get_primers_from_module(gru).primers["h"].shape
    torch.Size([1, 8])
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"get_primers_from_module expected an nn.Module, found {type(module)!r}")
    found = []
    for sub in module.modules():
        make = getattr(sub, "make_tensordict_primer", None)
        if make is None:
            continue
        try:
            found.append(make())
        except Exception as err:
            if strict:
                raise
            warnings.warn(
                f"skipped the primer of {type(sub).__name__}: {err}", UserWarning, stacklevel=2
            )
    if not found:
        if warn:
            warnings.warn(
                f"no submodule of {type(module).__name__} makes a TensorDictPrimer",
                UserWarning,
                stacklevel=2,
            )
        return None
    return _merge(found)


def get_env_transforms_from_module(module: nn.Module, init_key: str = "is_init") -> Any:
    """The env transforms a (recurrent) policy needs: ``Compose(InitTracker(init_key),
    primer)`` when ``module`` has primers, else ``InitTracker(init_key)`` alone.

    >>> from streamrl.modules import LSTMModule
    >>> lstm = LSTMModule(input_size=3, hidden_size=4, in_key="obs", out_key="features")
    >>> [type(t).__name__ for t in get_env_transforms_from_module(lstm)]
    ['InitTracker', 'TensorDictPrimer']
    """
    primer = get_primers_from_module(module, warn=False)
    tracker = InitTracker(init_key=init_key)
    return tracker if primer is None else Compose(tracker, primer)
