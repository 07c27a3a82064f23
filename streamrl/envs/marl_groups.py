"""Agent groups of multi-agent envs: how agents are stacked into groups (TorchRL's
``MarlGroupMapType`` and ``check_marl_grouping``)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "MarlGroupMapType",
    "check_marl_grouping",
    "expand_done_to_group",
    "group_by_name",
    "resolve_group_map",
]


class MarlGroupMapType(enum.Enum):
    """The premade groupings of a multi-agent env's agents.

    Agents of one group are stacked along an agent dim under the group's key (their entries
    must have the same specs): ``("agents", "observation")`` of shape ``[*batch, n_agents,
    ...]`` for ``ALL_IN_ONE_GROUP`` (one group named ``"agents"``); with
    ``ONE_GROUP_PER_AGENT`` each agent is its own group of one, named after it. A dict
    ``{group: [agent, ...]}`` passed as an env's ``group_map`` chooses any other grouping.

    >>> MarlGroupMapType.ALL_IN_ONE_GROUP.get_group_map(["a_0", "a_1"])
    {'agents': ['a_0', 'a_1']}
    >>> MarlGroupMapType.ONE_GROUP_PER_AGENT.get_group_map(["a_0", "a_1"])
    {'a_0': ['a_0'], 'a_1': ['a_1']}
    """

    ALL_IN_ONE_GROUP = 1
    ONE_GROUP_PER_AGENT = 2

    def get_group_map(self, agent_names: Sequence[str]) -> dict[str, list[str]]:
        """The group map of this grouping for ``agent_names``."""
        names = list(agent_names)
        if self is MarlGroupMapType.ALL_IN_ONE_GROUP:
            return {"agents": names}
        return {name: [name] for name in names}


def check_marl_grouping(group_map: Mapping[str, Sequence[str]], agent_names: Sequence[str]
                        ) -> None:
    """Refuse a group map that does not place every agent of ``agent_names`` in exactly one
    group: an unknown agent, an agent in two groups or in none, an empty group, or a group
    name that is not a non-empty string, each named in the error (``ValueError``).

    >>> check_marl_grouping({"agents": ["a_0", "a_1"]}, ["a_0", "a_1"])
    >>> check_marl_grouping({"agents": ["a_0", "b_9"]}, ["a_0", "a_1"])
    Traceback (most recent call last):
    ...
    ValueError: group_map: group 'agents' names the unknown agent 'b_9' (the env's agents: ['a_0', 'a_1'])
    """
    if not isinstance(group_map, Mapping) or not group_map:
        raise ValueError(f"group_map must be a non-empty dict of group name -> list of agent "
                         f"names, found {group_map!r}")
    known = list(agent_names)
    seen: dict[str, str] = {}
    for group, agents in group_map.items():
        if not isinstance(group, str) or not group:
            raise ValueError(f"group_map: group names must be non-empty strings, found "
                             f"{group!r}")
        if isinstance(agents, str) or not isinstance(agents, Sequence) or not agents:
            raise ValueError(f"group_map: group {group!r} must list at least one agent name, "
                             f"found {agents!r}")
        for agent in agents:
            if agent not in known:
                raise ValueError(f"group_map: group {group!r} names the unknown agent "
                                 f"{agent!r} (the env's agents: {known})")
            if agent in seen:
                raise ValueError(f"group_map: agent {agent!r} is in two groups, "
                                 f"{seen[agent]!r} and {group!r}")
            seen[agent] = group
    missing = [a for a in known if a not in seen]
    if missing:
        raise ValueError(f"group_map: agents {missing} are in no group (group_map: "
                         f"{dict(group_map)})")


def group_by_name(agent_names: Sequence[str]) -> dict[str, list[str]]:
    """Agents named ``<name>_<int>`` in group ``<name>``, any other agent alone in a group of
    its own name (TorchRL's default grouping of a PettingZoo parallel env).

    >>> group_by_name(["adversary_0", "adversary_1", "agent_0", "leader"])
    {'adversary': ['adversary_0', 'adversary_1'], 'agent': ['agent_0'], 'leader': ['leader']}
    """
    out: dict[str, list[str]] = {}
    for agent in agent_names:
        prefix, sep, suffix = agent.rpartition("_")
        out.setdefault(prefix if sep and prefix and suffix.isdigit() else agent, []).append(agent)
    return out


def resolve_group_map(group_map: Any, agent_names: Sequence[str], *,
                      default: MarlGroupMapType | None = None) -> dict[str, list[str]]:
    """The checked group map an env uses: ``group_map`` as given (a dict, or a
    :class:`MarlGroupMapType`), or, when it is ``None``, ``default``'s grouping (when
    ``default`` is ``None`` too: :func:`group_by_name`)."""
    names = list(agent_names)
    if group_map is None and default is not None:
        group_map = default
    if group_map is None:
        group_map = group_by_name(names)
    elif isinstance(group_map, MarlGroupMapType):
        group_map = group_map.get_group_map(names)
    elif not isinstance(group_map, Mapping):
        raise TypeError(f"group_map must be a MarlGroupMapType, a dict of group name -> list "
                        f"of agent names, or None, found {type(group_map).__name__}")
    check_marl_grouping(group_map, names)
    return {group: list(agents) for group, agents in group_map.items()}


def expand_done_to_group(batch: Any, group: str, flags: Sequence[str] = ("done", "terminated")
                         ) -> Any:
    """Write ``("next", group, flag)`` for each of ``flags`` the group lacks: the episode's
    ``("next", flag)`` (``[*B, 1]``, shared by the agents) expanded to the group's per-agent
    reward shape ``[*B, n_agents, 1]``, where a loss on the group's keys reads it (the
    ``process_batch`` of TorchRL's multi-agent tutorials). ``batch`` is written in place and
    returned; flags the group has are left as they are.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({("next", "agents", "reward"): torch.zeros(2, 3, 1),
    ...                  ("next", "done"): torch.tensor([[True], [False]]),
    ...                  ("next", "terminated"): torch.tensor([[True], [False]])}, [2])
    >>> expand_done_to_group(td, "agents")["next", "agents", "done"].squeeze(-1).tolist()
    [[True, True, True], [False, False, False]]
    """
    nested = batch.get(("next", group))
    shape = nested.get("reward").shape
    for flag in flags:
        if flag not in nested.keys():
            nested.set(flag, batch.get(("next", flag)).unsqueeze(-2).expand(shape))
    return batch
