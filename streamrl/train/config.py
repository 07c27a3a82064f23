"""Command-line flags for a config dataclass (one ``--flag`` per field), and the checks its
``__post_init__`` makes."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

__all__ = [
    "add_config_arguments",
    "check_field",
    "check_non_negative_ints",
    "check_positive_ints",
    "config_from_args",
    "field_overrides",
]

C = TypeVar("C")

_TYPES = {int: int, float: float, str: str}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _field_type(hint: Any) -> tuple[Any, bool]:
    """(base type, optional) for ``int``, ``float``, ``str``, ``bool`` and ``X | None``."""
    args = typing.get_args(hint)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0], True
    return hint, False


def add_config_arguments(
    parser: argparse.ArgumentParser, config_cls: type, *, skip: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """Add one flag per field of the dataclass ``config_cls`` (``lr_start`` -> ``--lr-start``).

    Fields typed ``int``, ``float``, ``str`` take a value (``X | None`` fields also accept
    ``none``); ``bool`` fields get ``--flag`` / ``--no-flag``. The help text shows the
    default. Fields named in ``skip`` get no flag.

    >>> @dataclasses.dataclass
    ... class Cfg:
    ...     lr: float = 1e-3
    ...     anneal: bool = True
    >>> p = add_config_arguments(argparse.ArgumentParser(), Cfg)
    >>> config_from_args(Cfg, p.parse_args(["--lr", "0.01", "--no-anneal"]))
    Cfg(lr=0.01, anneal=False)
    """
    if not dataclasses.is_dataclass(config_cls) or not isinstance(config_cls, type):
        raise TypeError(f"config_cls must be a dataclass type, found {config_cls!r}")
    hints = typing.get_type_hints(config_cls)
    group = parser.add_argument_group(f"{config_cls.__name__} (config)")
    for field in dataclasses.fields(config_cls):
        if field.name in skip or not field.init:
            continue
        base, optional = _field_type(hints[field.name])
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        required = default is dataclasses.MISSING
        if base is bool:
            group.add_argument(_flag(field.name), action=argparse.BooleanOptionalAction,
                               default=None if required else default, required=required,
                               help=f"(default: {default})")
            continue
        if base not in _TYPES:
            raise TypeError(
                f"{config_cls.__name__}.{field.name}: only int, float, str, bool and optional "
                f"versions of them become flags, found {hints[field.name]!r}"
            )
        parse = _parser(base, optional)
        group.add_argument(_flag(field.name), type=parse, default=None if required else default,
                           required=required, metavar=base.__name__.upper(),
                           help=f"(default: {default})")
    return parser


def _parser(base: type, optional: bool) -> Any:
    """The text -> value function of a field typed ``base`` (``int``, ``float``, ``str``;
    ``none`` for ``None`` when ``optional``), named for argparse's error messages."""
    convert = _TYPES[base]

    def parse(text: str) -> Any:
        if optional and text.lower() == "none":
            return None
        return convert(text)

    parse.__name__ = base.__name__
    return parse


def field_overrides(config_cls: type, pairs: Sequence[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` texts (a benchmark's ``--set``) as keyword arguments of the dataclass
    ``config_cls``, each value read as its field's type (``true``/``false`` for a bool,
    ``none`` for an optional field). ``ValueError`` naming the text for an unknown field, a
    text without ``=`` or a value that does not read as the field's type.

    >>> @dataclasses.dataclass
    ... class Cfg:
    ...     lr: float = 1e-3
    ...     flat: bool = False
    ...     lag: int | None = None
    >>> field_overrides(Cfg, ["lr=0.01", "flat=true", "lag=none"])
    {'lr': 0.01, 'flat': True, 'lag': None}
    """
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in fields:
            raise ValueError(f"expected FIELD=VALUE with FIELD a field of "
                             f"{config_cls.__name__} ({', '.join(sorted(fields))}), found "
                             f"{pair!r}")
        base, optional = _field_type(hints[name])
        try:
            if base is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                out[name] = text.lower() in ("true", "1")
            else:
                out[name] = _parser(base, optional)(text)
        except (ValueError, KeyError):
            raise ValueError(f"{pair!r}: {config_cls.__name__}.{name} is "
                             f"{getattr(base, '__name__', base)}"
                             f"{' or none' if optional else ''}, found {text!r}") from None
    return out


def config_from_args(config_cls: type[C], args: argparse.Namespace, **overrides: Any) -> C:
    """Build ``config_cls`` from the flags added by :func:`add_config_arguments`."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)
              if f.init and hasattr(args, f.name)}
    values.update(overrides)
    return config_cls(**values)


def check_field(config: Any, name: str, ok: bool, expected: str) -> None:
    """Raise ``ValueError('<Class>.<name> must be <expected>, found <value>')`` unless
    ``ok`` (the check of field ``name`` of ``config``).

    >>> @dataclasses.dataclass
    ... class Cfg:
    ...     gamma: float = 0.99
    ...     def __post_init__(self):
    ...         check_field(self, "gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]")
    >>> Cfg(gamma=1.5)
    Traceback (most recent call last):
    ...
    ValueError: Cfg.gamma must be in [0, 1], found 1.5
    """
    if not ok:
        raise ValueError(f"{type(config).__name__}.{name} must be {expected}, found "
                         f"{getattr(config, name)!r}")


def int_at_least(value: Any, minimum: int) -> bool:
    """Whether ``value`` is an int (a bool is not one) of at least ``minimum``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_positive_ints(config: Any, *names: str) -> None:
    """:func:`check_field` for fields that must be positive ints (a bool is not one)."""
    for name in names:
        check_field(config, name, int_at_least(getattr(config, name), 1), "a positive int")


def check_non_negative_ints(config: Any, *names: str) -> None:
    """:func:`check_field` for fields that must be ints >= 0 (a bool is not one)."""
    for name in names:
        check_field(config, name, int_at_least(getattr(config, name), 0), "a non-negative int")


def check_ray_address(config: Any) -> None:
    """``config.ray`` is None or where to run on Ray: ``'local'`` (start one here),
    ``'auto'`` (the running cluster) or a head's ``HOST:PORT``; Ray Client ``ray://``
    addresses are refused (they relay every object through one connection)."""
    ray = config.ray
    if ray is not None and (not isinstance(ray, str) or not ray or ray.startswith("ray://")):
        raise ValueError(f"{type(config).__name__}.ray must be 'local', 'auto' or a head's "
                         f"HOST:PORT (Ray Client ray:// addresses relay every object "
                         f"through one connection), found {ray!r}")


def check_offpolicy_run_fields(config: Any) -> None:
    """The checks of the run fields the off-policy pipelines' configs share:
    ``rollout_placement`` (``'process'``, ``'inline'`` or ``'ray'``), ``ray`` (see
    :func:`check_ray_address`; set, it puts the rollout on a Ray actor: ``rollout_placement``
    becomes ``'ray'``, and ``'inline'`` is refused), ``ray_actors`` (rollouts, each on its
    own actor: more than one needs Ray and no lockstep) and ``max_policy_lag`` (None or an
    int >= 0)."""
    check_field(config, "rollout_placement",
                config.rollout_placement in ("process", "inline", "ray"),
                "'process', 'inline' or 'ray'")
    check_ray_address(config)
    if config.ray is not None:
        if config.rollout_placement == "inline":
            raise ValueError(f"{type(config).__name__}.ray ({config.ray!r}) puts the rollout on "
                             "a Ray actor, found rollout_placement='inline'")
        config.rollout_placement = "ray"
    check_positive_ints(config, "ray_actors")
    if config.ray_actors > 1 and (config.rollout_placement != "ray" or config.lockstep):
        raise ValueError(f"{type(config).__name__}.ray_actors ({config.ray_actors}) needs "
                         "free-running rollouts on Ray (ray=ADDRESS or rollout_placement='ray', "
                         f"lockstep=False), found rollout_placement={config.rollout_placement!r}, "
                         f"lockstep={config.lockstep!r}")
    lag = config.max_policy_lag
    check_field(config, "max_policy_lag", lag is None or int_at_least(lag, 0),
                "None or an int >= 0")
