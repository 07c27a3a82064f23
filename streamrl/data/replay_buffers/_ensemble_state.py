"""The state of an ensemble part: its members' states, checked on load against the members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def members_state(kind: str, members: Sequence[Any]) -> dict[str, Any]:
    """``{"type": kind, "members": [each member's state_dict()]}``."""
    return {"type": kind, "members": [m.state_dict() for m in members]}


def load_members_state(state: dict[str, Any], kind: str, members: Sequence[Any]) -> None:
    """Check ``state`` is a ``kind`` state with one entry per member, then load each."""
    if state.get("type") != kind:
        raise ValueError(f"not a {kind} state: type {state.get('type')!r}")
    if len(state["members"]) != len(members):
        raise ValueError(
            f"the state has {len(state['members'])} members, this ensemble {len(members)}"
        )
    for member, member_state in zip(members, state["members"]):
        member.load_state_dict(member_state)
