"""Agent groupings: the premade maps, the default by name prefix, and bad maps refused with
the group and the agent named."""

from __future__ import annotations

import pytest

from streamrl.envs import MarlGroupMapType, check_marl_grouping
from streamrl.envs.marl_groups import resolve_group_map

AGENTS = ["adversary_0", "adversary_1", "agent_0"]


def test_premade_maps():
    assert MarlGroupMapType.ALL_IN_ONE_GROUP.get_group_map(AGENTS) == {"agents": AGENTS}
    assert MarlGroupMapType.ONE_GROUP_PER_AGENT.get_group_map(AGENTS) == {
        a: [a] for a in AGENTS}
    for kind in MarlGroupMapType:
        check_marl_grouping(kind.get_group_map(AGENTS), AGENTS)


def test_resolve_defaults_to_name_prefixes_or_the_given_default():
    assert resolve_group_map(None, AGENTS) == {"adversary": ["adversary_0", "adversary_1"],
                                               "agent": ["agent_0"]}
    assert resolve_group_map(None, ["solo"]) == {"solo": ["solo"]}
    # only a numeric suffix names a group (TorchRL's rule)
    assert resolve_group_map(None, ["red_team", "red_1"]) == {"red_team": ["red_team"],
                                                             "red": ["red_1"]}
    assert resolve_group_map(None, AGENTS, default=MarlGroupMapType.ALL_IN_ONE_GROUP) == {
        "agents": AGENTS}
    assert resolve_group_map(MarlGroupMapType.ONE_GROUP_PER_AGENT, AGENTS)["agent_0"] == [
        "agent_0"]
    custom = {"red": ("adversary_0",), "blue": ["adversary_1", "agent_0"]}
    assert resolve_group_map(custom, AGENTS) == {"red": ["adversary_0"],
                                                 "blue": ["adversary_1", "agent_0"]}


@pytest.mark.parametrize("group_map, match", [
    ({"agents": ["adversary_0", "ghost"]}, r"group 'agents' names the unknown agent 'ghost'"),
    ({"a": ["adversary_0"], "b": ["adversary_0", "adversary_1", "agent_0"]},
     r"agent 'adversary_0' is in two groups, 'a' and 'b'"),
    ({"a": ["adversary_0", "adversary_1"]}, r"agents \['agent_0'\] are in no group"),
    ({"a": [], "b": AGENTS}, r"group 'a' must list at least one agent name, found \[\]"),
    ({"a": "agent_0"}, r"group 'a' must list at least one agent name, found 'agent_0'"),
    ({"": AGENTS}, r"group names must be non-empty strings, found ''"),
    ({}, r"group_map must be a non-empty dict"),
])
def test_bad_maps_are_refused_naming_the_group_and_agent(group_map, match):
    with pytest.raises(ValueError, match=match):
        check_marl_grouping(group_map, AGENTS)


def test_a_group_map_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match=r"group_map must be a MarlGroupMapType, a dict .* "
                                        r"found list"):
        resolve_group_map(["agents"], AGENTS)
