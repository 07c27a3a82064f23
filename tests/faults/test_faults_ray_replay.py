"""Faults of a replay buffer served by a Ray actor (:class:`~streamrl.data.RayReplayBuffer`).

Promise: when the buffer's actor process is SIGKILLed, idle or inside a call (a ``sample``
held by the rate limiter), the owner's and every client's calls raise
:class:`~streamrl.data.ReplayActorDiedError` naming the actor and its node within 5 s, and
closing the buffer afterwards leaves no actor.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import LazyTensorStorage, MinSize, RayReplayBuffer, ReplayActorDiedError
from tests.ray_support import local_ray


@pytest.fixture(scope="module")
def ray_local():
    with local_ray() as ray:
        yield ray


def _replay_actors(ray) -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("streamrl:replay:")]


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy"])
def test_killed_replay_actor_is_named(ray_local, busy):
    rb = RayReplayBuffer(storage=LazyTensorStorage(100), batch_size=4,
                         rate_limiter=MinSize(1000), remote_config={"num_cpus": 0})
    client = rb.client()
    errors: list[tuple[BaseException, float]] = []

    def held_sample():  # MinSize(1000) holds it inside the actor until the actor dies
        try:
            client.sample()
        except BaseException as exc:
            errors.append((exc, time.monotonic()))

    waiter = threading.Thread(target=held_sample, daemon=True)
    if busy:
        waiter.start()
        time.sleep(0.3)  # the call is on the actor
        assert not errors
    killed = time.monotonic()
    os.kill(rb.pid, signal.SIGKILL)
    try:
        if busy:
            waiter.join(timeout=5.0)
            assert not waiter.is_alive(), "the held sample did not end within 5 s"
            exc, when = errors[0]
            assert when - killed < 5.0
        else:
            with pytest.raises(ReplayActorDiedError) as info:
                rb.extend(TensorDict({"x": torch.zeros(4)}, [4]))
            exc = info.value
            assert time.monotonic() - killed < 5.0
        assert isinstance(exc, ReplayActorDiedError), repr(exc)
        assert exc.actor_name == rb.actor_name and exc.node_id == rb.node_id
        assert rb.actor_name in str(exc) and rb.node_id in str(exc) and rb.node_ip in str(exc)
        with pytest.raises(ReplayActorDiedError, match=rb.actor_name):
            client.extend(TensorDict({"x": torch.zeros(4)}, [4]))
    finally:
        rb.close()
    deadline = time.monotonic() + 5.0
    while _replay_actors(ray_local) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _replay_actors(ray_local)
