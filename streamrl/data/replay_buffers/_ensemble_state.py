"""The state of an ensemble part: its members' states, checked on load against the members."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamrl.data.replay_buffers._state import (
    Commit,
    check_type,
    commit_all,
    list_entry,
    prepare_part,
)


def members_state(kind: str, members: Sequence[Any]) -> dict[str, Any]:
    """``{"type": kind, "members": [each member's state_dict()]}``."""
    return {"type": kind, "members": [m.state_dict() for m in members]}


def prepare_members_state(state: Any, kind: str, members: Sequence[Any]) -> Commit:
    """Check ``state`` is a ``kind`` state with one fitting entry per member; return the
    commit that loads them all (see ``_state``: nothing changes unless every member fits)."""
    check_type(state, kind, kind)
    states = list_entry(state, "members", kind)
    if len(states) != len(members):
        raise ValueError(f"{kind}: the state has {len(states)} members, this ensemble "
                         f"{len(members)}")
    return commit_all([
        prepare_part(member, member_state, f"{kind} member {i}")
        for i, (member, member_state) in enumerate(zip(members, states))
    ])
