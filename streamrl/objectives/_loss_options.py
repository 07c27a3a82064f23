"""The constructor options TorchRL's losses share, each implemented once: ``reduction`` with
prioritized-replay weights (``use_prioritized_weights``), ``scalar_output_mode``,
``separate_losses`` (shared parameters trained by the policy loss only) and the deprecated
constructor spellings (``gamma=``, ``priority_key=``, ``*_key=``) that TorchRL 0.14 refuses.

A loss validates its options with the ``check_*`` functions before any work, then builds its
output with :func:`loss_output` from per-sample losses.
"""

from __future__ import annotations

import warnings
from typing import Any

from tensordict import TensorDict, TensorDictBase
from torch import Tensor

from streamrl.objectives._utils import check_reduction, weighted_reduce

#: the key of the prioritized-replay importance weights (what the samplers write)
PRIORITY_WEIGHT_KEY = "priority_weight"
_SCALAR_MODES = (None, "exclude", "non_tensor")


def refuse_ctor_gamma(gamma: Any, owner: str) -> None:
    """``gamma=`` in a loss constructor: TorchRL 0.14 refuses it (``TypeError``), so do we.

    >>> refuse_ctor_gamma(None, "SACLoss")
    >>> refuse_ctor_gamma(0.9, "SACLoss")
    Traceback (most recent call last):
    ...
    TypeError: SACLoss: gamma is no longer a constructor argument; set it with loss.make_value_estimator(gamma=0.9)
    """
    if gamma is not None:
        raise TypeError(
            f"{owner}: gamma is no longer a constructor argument; set it with "
            f"loss.make_value_estimator(gamma={gamma!r})"
        )


def refuse_ctor_keys(owner: str, **keys: Any) -> None:
    """``priority_key=`` / ``advantage_key=`` ... in a constructor: TorchRL 0.14 refuses them
    (``RuntimeError``) in favour of :meth:`~streamrl.objectives.LossModule.set_keys`.

    >>> refuse_ctor_keys("SACLoss", priority_key=None)
    >>> refuse_ctor_keys("SACLoss", priority_key="p")
    Traceback (most recent call last):
    ...
    RuntimeError: SACLoss: priority_key='p' is no longer a constructor argument; use loss.set_keys(priority='p')
    """
    for name, key in keys.items():
        if key is not None:
            short = name[: -len("_key")] if name.endswith("_key") else name
            raise RuntimeError(
                f"{owner}: {name}={key!r} is no longer a constructor argument; use "
                f"loss.set_keys({short}={key!r})"
            )


def check_flag(value: Any, name: str, owner: str) -> bool:
    """A boolean option (``separate_losses``, ``skip_done_states``...): only ``True``/``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be True or False, found {value!r}")
    return value


def check_prioritized_weights(value: Any, owner: str) -> str | bool:
    """``use_prioritized_weights``: ``"auto"`` (use the weights when the batch has them),
    ``True`` (require them) or ``False`` (ignore them)."""
    if value is not True and value is not False and not (isinstance(value, str)
                                                         and value == "auto"):
        raise ValueError(
            f"{owner}: use_prioritized_weights must be 'auto', True or False, found {value!r}"
        )
    return value


def check_scalar_output_mode(mode: Any, reduction: str, owner: str) -> str | None:
    """``scalar_output_mode``: what becomes of the scalar diagnostics (``alpha``,
    ``entropy``) when ``reduction="none"`` gives batch-shaped losses. ``"exclude"`` leaves
    them out, ``"non_tensor"`` stores them as non-tensor entries; ``None`` with
    ``reduction="none"`` warns and excludes (TorchRL's behaviour). Other reductions ignore it.
    """
    if mode not in _SCALAR_MODES:
        raise ValueError(
            f"{owner}: scalar_output_mode must be None, 'exclude' or 'non_tensor', found {mode!r}"
        )
    if reduction == "none" and mode is None:
        warnings.warn(
            f"{owner}(reduction='none') leaves the scalar entries (alpha, entropy) out of its "
            "batch-shaped output; pass scalar_output_mode='exclude' to silence this or "
            "'non_tensor' to keep them as non-tensor entries",
            UserWarning,
            stacklevel=4,
        )
        return "exclude"
    return mode


_ABSENT: Any = object()


def apply_options(loss: Any, *, gamma: Any = None, priority_key: Any = None,
                  reduction: Any = None, use_prioritized_weights: Any = False,
                  scalar_output_mode: Any = _ABSENT, **flags: Any) -> None:
    """Validate a loss's shared constructor options and set them as attributes, before any
    network is registered: ``gamma`` / ``priority_key`` are refused when given,
    ``reduction``, ``use_prioritized_weights`` (``False`` for losses without the argument)
    and ``scalar_output_mode`` (when the loss takes it) are checked, and each of ``flags``
    (``delay_actor=``, ``separate_losses=``...) must be a bool."""
    owner = type(loss).__name__
    refuse_ctor_gamma(gamma, owner)
    refuse_ctor_keys(owner, priority_key=priority_key)
    loss.reduction = check_reduction(reduction, owner)
    loss.use_prioritized_weights = check_prioritized_weights(use_prioritized_weights, owner)
    if scalar_output_mode is not _ABSENT:
        loss.scalar_output_mode = check_scalar_output_mode(scalar_output_mode, loss.reduction,
                                                           owner)
    for name, value in flags.items():
        setattr(loss, name, check_flag(value, name, owner))


def priority_weight(loss: Any, tensordict: TensorDictBase) -> Tensor | None:
    """The importance weights a loss applies to ``tensordict``'s per-sample losses: read at
    ``loss.tensor_keys.priority_weight`` when ``loss.use_prioritized_weights`` is True
    (missing: ``KeyError``) or ``"auto"`` (missing: no weights); ``None`` when False."""
    mode = getattr(loss, "use_prioritized_weights", False)
    if mode is False:
        return None
    key = loss._keys["priority_weight"]
    weight = tensordict.get(key, None)
    if weight is None and mode is True:
        raise KeyError(
            f"{type(loss).__name__}(use_prioritized_weights=True) needs the importance "
            f"weights at {key!r} (a prioritized sampler writes them); found "
            f"{sorted(map(str, tensordict.keys(True, True)))}"
        )
    return None if weight is None else weight.detach()


def loss_output(loss: Any, tensordict: TensorDictBase, losses: dict[str, Tensor],
                diagnostics: dict[str, Tensor] | None = None,
                scalars: dict[str, Tensor] | None = None) -> TensorDict:
    """A loss's output TensorDict.

    ``losses`` are per-sample (batch-shaped) tensors, each reduced with ``loss.reduction`` and
    the prioritized-replay weights (:func:`priority_weight`); ``diagnostics`` are kept as
    given; ``scalars`` (``alpha``, ``entropy``) follow ``loss.scalar_output_mode`` when the
    reduction is ``"none"`` (the output then has the input's batch size).
    """
    weight = priority_weight(loss, tensordict)
    reduction = loss.reduction
    out = {name: weighted_reduce(value, weight, reduction) for name, value in losses.items()}
    out.update(diagnostics or {})
    scalars = scalars or {}
    if reduction != "none":
        return TensorDict({**out, **scalars}, batch_size=[])
    td = TensorDict(out, batch_size=[])
    if all(v.shape[: tensordict.batch_dims] == tensordict.batch_size for v in out.values()):
        td.batch_size = tensordict.batch_size
    if getattr(loss, "scalar_output_mode", None) == "non_tensor":
        for name, value in scalars.items():
            td.set_non_tensor(name, value)
    return td


def separate_params(loss: Any, name: str, owner_name: str = "actor_network") -> TensorDictBase | None:
    """``separate_losses``: network ``name``'s live parameters with the ones it shares with
    ``owner_name`` detached, so only ``owner_name``'s loss trains them (``None`` when the loss
    was built with ``separate_losses=False``: use the live parameters)."""
    if not getattr(loss, "separate_losses", False):
        return None
    live = loss.network_params(name)
    owned = {id(p) for p in loss.network_params(owner_name).values(True, True)}
    params = live.detach()
    for key, value in live.items(True, True):
        if id(value) not in owned:
            params.set(key, value)
    return params
