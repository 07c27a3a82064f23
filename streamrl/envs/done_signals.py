"""terminated_or_truncated: fold an env's done leaves into one ``"_reset"``-style flag per level.

The done leaves (``"done"``, ``"terminated"``, ``"truncated"``) can sit at several levels of a
step's TensorDict (the root, and sub-TensorDicts such as a multi-agent group). For every level
holding at least one of them, their OR is written under ``key`` at that level: what a batched
or multi-agent env needs to ask for a partial reset. Re-exported by :mod:`streamrl.envs.utils`.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Composite, TensorSpec

_DONE_NAMES = ("done", "terminated", "truncated")


def _levels_from_spec(spec: Composite) -> dict[tuple, list]:
    levels: dict[tuple, list] = {}
    for key in spec.keys(include_nested=True, leaves_only=True):
        key = key if isinstance(key, tuple) else (key,)
        levels.setdefault(key[:-1], []).append(key)
    return levels


def _levels_from_data(data: TensorDictBase) -> dict[tuple, list]:
    levels: dict[tuple, list] = {}
    for key in data.keys(include_nested=True, leaves_only=True):
        key = key if isinstance(key, tuple) else (key,)
        if key[-1] in _DONE_NAMES and key[0] != "next":
            levels.setdefault(key[:-1], []).append(key)
    return levels


def terminated_or_truncated(
    data: TensorDictBase,
    full_done_spec: TensorSpec | None = None,
    key: Any = "_reset",
    write_full_false: bool = False,
) -> bool:
    """Whether any done leaf of ``data`` is True; writes, at each level holding done leaves,
    their OR under ``key`` (in place).

    Args:
        data: a step's output (``env.step(td)["next"]``, or a reset's input).
        full_done_spec: the env's ``full_done_spec``, saying where the done leaves are; without
            it, the ``"done"``/``"terminated"``/``"truncated"`` entries of ``data`` are used
            (any level but ``"next"``).
        key: the entry written at each level; ``None`` writes nothing (only the answer).
            An entry already present at a level is kept as it is.
        write_full_false: write the flag at a level even when it is all False (by default a
            level is written only when one of its values is True).

    >>> from tensordict import TensorDict
    >>> data = TensorDict({"done": torch.tensor([True]), "truncated": torch.tensor([False]),
    ...                    "group": {"terminated": torch.tensor([False])}}, batch_size=[])
    >>> terminated_or_truncated(data), data["_reset"], "_reset" in data["group"].keys()
    (True, tensor([True]), False)
    """
    if not isinstance(data, TensorDictBase):
        raise TypeError(f"terminated_or_truncated needs a TensorDict, found {type(data).__name__}")
    if full_done_spec is not None and not isinstance(full_done_spec, Composite):
        raise TypeError(
            "full_done_spec must be a Composite (the env's full_done_spec), found "
            f"{type(full_done_spec).__name__}"
        )
    if key is not None and not isinstance(key, (str, tuple)):
        raise TypeError(f"key must be a str, a tuple of str or None, found {key!r}")
    levels = (
        _levels_from_data(data) if full_done_spec is None else _levels_from_spec(full_done_spec)
    )
    any_done = False
    for level, leaves in levels.items():
        values = [data.get(leaf, None) for leaf in leaves]
        values = [v for v in values if v is not None]
        if not values:
            continue
        flag = values[0].bool()
        for value in values[1:]:
            flag = flag | value.bool()
        level_done = bool(flag.any())
        any_done = any_done or level_done
        if key is None or not (level_done or write_full_false):
            continue
        target = level + (key if isinstance(key, tuple) else (key,))
        if data.get(target, None) is None:
            data.set(target, flag)
    return any_done


def make_tensordict(env: Any, policy: Any = None) -> TensorDictBase:
    """A zeroed TensorDict with every entry of one full step of ``env``: the reset's entries,
    the action (from ``policy``, else a random action) and ``"next"``.

    The env is reset and stepped once to build it (no gradient is recorded).

    >>> from streamrl.envs import GymEnv
    >>> env = GymEnv("CartPole-v1")
    >>> td = make_tensordict(env)
    >>> sorted(td.keys()), bool(td["next", "observation"].abs().sum() == 0)
    (['action', 'done', 'next', 'observation', 'terminated', 'truncated'], True)
    >>> env.close()
    """
    with torch.no_grad():
        td = env.reset()
        if policy is not None:
            td = policy(td)
        else:
            td.set("action", env.action_spec.rand())
        td = env.step(td)
    return td.zero_()
