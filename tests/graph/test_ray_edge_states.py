"""The receiving states of the ends of Ray edges (no Ray needed): a latest-value edge's state
never lets the end of stream overtake a value not read yet, and answers newer values only."""

from __future__ import annotations

import asyncio

import pytest

from streamrl.graph._ray_edges import EOS, InboxState, LatestState


@pytest.mark.asyncio
async def test_latest_state_end_of_stream_does_not_replace_an_unread_value():
    state = LatestState("e")
    state.set(1, "a")
    state.set(2, EOS)  # the writer's last value and its end, both before the reader looks
    assert await state.newer(0) == (1, "a")
    assert await state.newer(1) == (1, EOS)


@pytest.mark.asyncio
async def test_latest_state_keeps_the_newest_and_ignores_older_versions():
    state = LatestState("e")
    state.set(3, "c")
    state.set(2, "b")  # late: a value sent again to a reader that already has a newer one
    assert await state.newer(0) == (3, "c")
    waiting = asyncio.ensure_future(state.newer(3))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    state.set(4, "d")
    assert await asyncio.wait_for(waiting, 1) == (4, "d")


@pytest.mark.asyncio
async def test_inbox_state_takes_in_sequence_order_and_answers_when_the_last_is_taken():
    inbox = InboxState("e")
    second = asyncio.ensure_future(inbox.put(2, ["c", "d"]))  # arrives first
    first = asyncio.ensure_future(inbox.put(0, ["a", "b"]))
    await asyncio.sleep(0)
    assert await inbox.take() == "a"
    await asyncio.sleep(0)
    assert not first.done()  # answered when its last item is taken
    assert await inbox.take() == "b" and await first is True
    assert await inbox.take() == "c" and not second.done()
    assert await inbox.take() == "d" and await second is True
    late = asyncio.ensure_future(inbox.put(4, ["e"]))
    await asyncio.sleep(0)
    inbox.close()  # the consumer left: a pending push answers False
    assert await late is False
    assert await inbox.put(5, ["f"]) is False
