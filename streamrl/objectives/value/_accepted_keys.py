"""TorchRL's ``_AcceptedKeys`` convention: a class declares the tensordict keys it reads and
writes either as a ``default_keys`` dict (streamrl's spelling) or as a nested ``_AcceptedKeys``
dataclass (TorchRL's documented way for a custom loss); each spelling is derived from the
other, so ``cls.default_keys`` and ``cls._AcceptedKeys()`` always agree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tensordict.utils import NestedKey


def _is_key(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, (tuple, list)):
        return all(isinstance(v, str) or _is_key(v) for v in value)
    return False


def keys_of(accepted: type) -> dict[str, NestedKey]:
    """The ``{name: default key}`` an ``_AcceptedKeys`` class declares: its dataclass fields
    with a default, then its plain string / tuple class attributes (TorchRL's examples write
    ``action = "action"`` without an annotation).

    >>> @dataclasses.dataclass
    ... class _AcceptedKeys:
    ...     reward: str = "reward"
    ...     value: tuple = ("agents", "state_value")
    >>> keys_of(_AcceptedKeys)
    {'reward': 'reward', 'value': ('agents', 'state_value')}
    """
    keys: dict[str, NestedKey] = {}
    if dataclasses.is_dataclass(accepted):
        for field in dataclasses.fields(accepted):
            if field.default is not dataclasses.MISSING:
                keys[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                keys[field.name] = field.default_factory()
    for klass in reversed(accepted.__mro__):
        for name, value in vars(klass).items():
            if not name.startswith("_") and name not in keys and _is_key(value):
                keys[name] = value
    return keys


def accepted_keys_class(default_keys: dict[str, NestedKey], owner: str) -> type:
    """A dataclass ``_AcceptedKeys`` with one field per entry of ``default_keys``
    (list defaults get a factory, as dataclasses require).

    >>> cls = accepted_keys_class({"reward": "reward", "done": "done"}, "MyLoss")
    >>> dataclasses.asdict(cls())
    {'reward': 'reward', 'done': 'done'}
    """
    fields = []
    for name, key in default_keys.items():
        if isinstance(key, list):
            spec = dataclasses.field(default_factory=lambda k=key: list(k))
        else:
            spec = dataclasses.field(default=key)
        fields.append((name, Any, spec))
    cls = dataclasses.make_dataclass("_AcceptedKeys", fields)
    cls.__qualname__ = f"{owner}._AcceptedKeys"
    cls.__doc__ = f"The tensordict keys {owner} reads and writes, with their defaults."
    return cls


def sync_key_declarations(cls: type) -> None:
    """Called from ``__init_subclass__``: a class defining its own ``_AcceptedKeys`` gets
    ``default_keys`` from it; otherwise its ``_AcceptedKeys`` is built from ``default_keys``."""
    if "_AcceptedKeys" in vars(cls):
        cls.default_keys = keys_of(cls._AcceptedKeys)
    else:
        cls._AcceptedKeys = accepted_keys_class(dict(cls.default_keys), cls.__name__)
