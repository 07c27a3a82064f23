"""``load_dataset("minari:ID")``: datasets by a prefixed id, and the registry of prefixes."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from streamrl.data.datasets.d4rl import D4RLExperienceReplay
from streamrl.data.datasets.minari_data import MinariExperienceReplay

__all__ = ["load_dataset", "register_dataset"]

_REGISTRY: dict[str, Callable[..., Any] | str] = {
    "d4rl": D4RLExperienceReplay,
    "minari": MinariExperienceReplay,
}


def _prefix(prefix: Any) -> str:
    if not isinstance(prefix, str) or not prefix.strip() or ":" in prefix:
        raise ValueError(f"a dataset prefix must be a non-empty str without ':', found "
                         f"{prefix!r}")
    return prefix.strip().lower()


def register_dataset(prefix: str, dataset: Callable[..., Any] | str, *,
                     replace: bool = False) -> None:
    """Make ``load_dataset("<prefix>:<id>")`` call ``dataset(id, **kwargs)``.

    ``dataset`` is a callable or a ``"module:attribute"`` string imported on first use.
    An existing prefix is replaced only with ``replace=True`` (``KeyError`` otherwise).

    >>> class Toy:
    ...     def __init__(self, dataset_id, **kwargs):
    ...         self.dataset_id = dataset_id
    >>> register_dataset("toy", Toy, replace=True)
    >>> load_dataset("toy:example").dataset_id
    'example'
    """
    key = _prefix(prefix)
    if isinstance(dataset, str):
        module, _, attr = dataset.partition(":")
        if not module or not attr:
            raise ValueError(f"expected a 'module:attribute' string, found {dataset!r}")
    elif not callable(dataset):
        raise TypeError(f"expected a callable or a 'module:attribute' string, found "
                        f"{type(dataset).__name__}")
    if key in _REGISTRY and not replace:
        raise KeyError(f"dataset prefix {key!r} is already registered (pass replace=True)")
    _REGISTRY[key] = dataset


def load_dataset(dataset_id: str, **kwargs: Any) -> Any:
    """The dataset named ``"<prefix>:<id>"``: ``"minari:pendulum/expert-v0"`` (a local Minari
    dataset) or ``"d4rl:/data/halfcheetah-medium-v2.hdf5"`` (a local D4RL file); ``kwargs``
    go to the dataset's constructor (e.g. ``batch_size``)."""
    if not isinstance(dataset_id, str) or ":" not in dataset_id:
        raise ValueError(f"expected '<prefix>:<id>' with a prefix in {sorted(_REGISTRY)}, "
                         f"found {dataset_id!r}")
    prefix, name = dataset_id.split(":", 1)
    key = _prefix(prefix)
    if key not in _REGISTRY:
        raise ValueError(f"unknown dataset prefix {key!r}: expected one of "
                         f"{sorted(_REGISTRY)}")
    factory = _REGISTRY[key]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(name, **kwargs)
