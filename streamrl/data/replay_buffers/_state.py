"""Checking a loaded state before anything is changed (all-or-nothing ``load_state_dict``).

Every replay-buffer part (storage, sampler, writer, rate limiter) loads in two steps:
``_prepare_load(state)`` validates ``state`` and builds what it needs without touching the
part, and returns a ``commit`` function that only assigns. ``load_state_dict`` is
``_prepare_load(state)()``; a buffer prepares all its parts first and commits them only if
every one accepted its state, so a state that does not fit leaves the buffer as it was.

States come from files (``torch.load(weights_only=True)``): anything may be missing, of the
wrong type or of the wrong shape. The helpers below turn that into a ``ValueError`` naming
the part, the entry, what was expected and what was found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

Commit = Callable[[], None]


def commit_all(commits: Sequence[Commit]) -> Commit:
    """One commit that runs ``commits`` in order."""

    def commit() -> None:
        for c in commits:
            c()

    return commit


def check_dict(state: Any, where: str) -> dict:
    """``state`` itself must be a dict."""
    if not isinstance(state, dict):
        raise ValueError(f"{where}: expected a dict state, found {type(state).__name__}")
    return state


def entry(state: Any, key: str, where: str) -> Any:
    """``state[key]``; ``ValueError`` if ``state`` is not a dict or has no ``key``."""
    check_dict(state, where)
    if key not in state:
        raise ValueError(f"{where}: the state has no {key!r} entry (found {sorted(state)})")
    return state[key]


def check_type(state: Any, expected: str | Sequence[str], part: str) -> str:
    """``state["type"]`` must be ``expected`` (or one of them); ``part`` names the part."""
    options = (expected,) if isinstance(expected, str) else tuple(expected)
    found = entry(state, "type", f"{part} state")
    if found not in options:
        want = repr(options[0]) if len(options) == 1 else f"one of {list(options)}"
        raise ValueError(f"{part} state is for {found!r}, expected {want}")
    return found


def int_entry(state: Any, key: str, where: str, lo: int = 0, hi: int | None = None) -> int:
    """``state[key]`` as an int in ``[lo, hi]``."""
    value = entry(state, key, where)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {key!r} must be an int, found {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{where}: {key!r} must be in {bound}, found {value}")
    return value


def number_entry(state: Any, key: str, where: str) -> float:
    """``state[key]`` as a finite float."""
    value = entry(state, key, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or (
        value in (float("inf"), float("-inf"))
    ):
        raise ValueError(f"{where}: {key!r} must be a finite number, found {value!r}")
    return float(value)


def tensor_entry(
    state: Any,
    key: str,
    where: str,
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    ndim: int | None = None,
) -> torch.Tensor:
    """``state[key]`` as a tensor of ``dtype`` with ``shape`` (or ``ndim`` dims)."""
    value = entry(state, key, where)
    return check_tensor(value, f"{where}: {key!r}", dtype=dtype, shape=shape, ndim=ndim)


def check_tensor(
    value: Any,
    what: str,
    *,
    dtype: torch.dtype | None = None,
    shape: Sequence[int] | None = None,
    ndim: int | None = None,
) -> torch.Tensor:
    """``value`` must be a tensor of ``dtype`` with ``shape`` (or ``ndim`` dims)."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{what} must be a tensor, found {type(value).__name__}")
    if dtype is not None and value.dtype != dtype:
        raise ValueError(f"{what} must have dtype {dtype}, found {value.dtype}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"{what} must have shape {tuple(shape)}, found {tuple(value.shape)}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{what} must have {ndim} dim(s), found shape {tuple(value.shape)}")
    return value


def list_entry(state: Any, key: str, where: str, length: int | None = None) -> list:
    """``state[key]`` as a list (of ``length`` items)."""
    value = entry(state, key, where)
    if not isinstance(value, list):
        raise ValueError(f"{where}: {key!r} must be a list, found {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{where}: {key!r} must hold {length} item(s), found {len(value)}")
    return value


def prepare_part(part: Any, state: Any, where: str) -> Commit:
    """``part._prepare_load(state)``, with any error that is not a ``ValueError`` (a state
    whose inner structure the part did not expect) turned into one that names ``where``."""
    try:
        return part._prepare_load(state)
    except ValueError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError, RuntimeError) as err:
        raise ValueError(f"{where}: the state does not fit ({type(err).__name__}: {err})") from err
