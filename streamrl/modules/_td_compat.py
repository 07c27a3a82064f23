"""Whether a module reads and writes tensordicts, and wrapping it when it does not
(TorchRL's ``is_tensordict_compatible`` / ``ensure_tensordict_compatible``)."""

from __future__ import annotations

import inspect
from typing import Any

from tensordict.nn import TensorDictModule, TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key_list
from torch import nn

from streamrl.modules.safe import SafeModule


def _forward_arity(module: nn.Module) -> int | None:
    """The number of positional inputs of ``module.forward`` (``None``: any number)."""
    params = list(inspect.signature(module.forward).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (inspect.Parameter.POSITIONAL_ONLY,
                          inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in params)


def is_tensordict_compatible(module: nn.Module) -> bool:
    """True when ``module`` can stand for a TensorDict module: it is one, or it has
    ``in_keys`` and ``out_keys`` and its ``forward`` takes one input (the tensordict).

    A module with keys whose ``forward`` takes several inputs is ambiguous and raises
    ``TypeError``.

    >>> is_tensordict_compatible(nn.Linear(3, 4))
    False
    >>> is_tensordict_compatible(TensorDictModule(nn.Linear(3, 4), ["x"], ["y"]))
    True
    """
    if isinstance(module, TensorDictModuleBase):
        return True
    if not (hasattr(module, "in_keys") and hasattr(module, "out_keys")):
        return False
    arity = _forward_arity(module)
    if arity not in (None, 1):
        raise TypeError(
            f"{type(module).__name__} has in_keys and out_keys, so it should read a tensordict, "
            f"but its forward takes {arity} inputs"
        )
    return True


def ensure_tensordict_compatible(
    module: nn.Module,
    in_keys: list[NestedKey] | None = None,
    out_keys: list[NestedKey] | None = None,
    safe: bool = False,
    wrapper_type: type | None = TensorDictModule,
    **kwargs: Any,
) -> nn.Module:
    """``module`` itself when it is TensorDict-compatible (:func:`is_tensordict_compatible`;
    ``in_keys`` / ``out_keys``, when given, must then be its own), else ``module`` wrapped
    to read ``in_keys`` and write ``out_keys``: in a :class:`~streamrl.modules.SafeModule`
    with ``safe=True`` (``kwargs`` give its ``spec``), else in ``wrapper_type``.

    >>> wrapped = ensure_tensordict_compatible(nn.Linear(3, 4), in_keys=["x"], out_keys=["y"])
    >>> type(wrapped).__name__, wrapped.in_keys, wrapped.out_keys
    ('TensorDictModule', ['x'], ['y'])
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected an nn.Module, found {type(module).__name__}")
    if is_tensordict_compatible(module):
        for name, wanted in (("in_keys", in_keys), ("out_keys", out_keys)):
            own = getattr(module, name)
            if wanted is not None and set(unravel_key_list(wanted)) != set(
                    unravel_key_list(own)):
                raise TypeError(
                    f"{type(module).__name__} is TensorDict-compatible with {name}={own}, "
                    f"which differ from the {name}={wanted} asked for"
                )
        return module
    if in_keys is None or out_keys is None:
        raise TypeError(
            f"{type(module).__name__} does not read tensordicts: give in_keys and out_keys to "
            f"wrap it, found in_keys={in_keys}, out_keys={out_keys}"
        )
    arity = _forward_arity(module)
    if arity is not None and arity != len(in_keys):
        raise TypeError(
            f"{type(module).__name__}.forward takes {arity} inputs but in_keys has "
            f"{len(in_keys)}: {in_keys}"
        )
    if safe:
        return SafeModule(module, in_keys=in_keys, out_keys=out_keys, safe=True, **kwargs)
    if wrapper_type is None:
        raise TypeError(f"{type(module).__name__} needs a wrapper_type to be wrapped")
    return wrapper_type(module, in_keys=in_keys, out_keys=out_keys, **kwargs)
