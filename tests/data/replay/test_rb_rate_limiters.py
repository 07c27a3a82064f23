"""Rate limiters: policy, blocking from threads, awaiting from async code, deadlock checks."""

import threading
import time

import anyio
import pytest

from streamrl.data import MinSize, SampleToInsertRatio


def test_min_size_policy():
    lim = MinSize(3)
    assert not lim.try_sample()
    assert lim.try_insert(2) and not lim.try_sample()
    assert lim.try_insert() and lim.try_sample(100)
    assert (lim.inserts, lim.samples) == (3, 100)
    with pytest.raises(ValueError, match="min_size"):
        MinSize(0)
    with pytest.raises(ValueError, match="number of items"):
        lim.try_insert(-1)


def test_sample_to_insert_ratio_keeps_the_ratio():
    lim = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=10, error_buffer=6)
    # free inserts until min size, no sampling before
    for _ in range(10):
        assert not lim.try_sample()
        assert lim.try_insert()
    # d = 20 - samples; window [14, 26]
    assert lim.try_insert(3)  # d = 26
    assert not lim.try_insert()  # would be 28 > 26
    for _ in range(12):
        assert lim.try_sample()  # down to d = 14
    assert not lim.try_sample()
    assert lim.try_insert()
    # alternating load stays within the window forever and never stalls both sides
    for _ in range(1000):
        progressed = lim.try_sample() or lim.try_insert()
        assert progressed
        d = lim.inserts * 2.0 - lim.samples
        assert 14 <= d <= 26
    ratio = lim.samples / lim.inserts
    assert 1.5 < ratio < 2.1


@pytest.mark.parametrize(
    ("spi", "eb", "kwargs"),
    [(1.0, 0.5, {}), (4.0, 2.0, {}), (1.0, 10, {"max_sample_batch": 32})],
)
def test_deadlocking_configurations_are_rejected(spi, eb, kwargs):
    with pytest.raises(ValueError, match="deadlock"):
        SampleToInsertRatio(spi, 1, eb, **kwargs)


def test_large_request_checked_at_call_time():
    lim = SampleToInsertRatio(1.0, 1, 2.0)  # fine for batches of 1
    lim.try_insert()
    with pytest.raises(ValueError, match="deadlock"):
        lim.try_sample(16)
    with pytest.raises(ValueError, match="deadlock"):
        lim.insert(16)


def test_smallest_accepted_window_never_deadlocks():
    # 2 * eb == n + m * spi exactly: still some call is always allowed.
    lim = SampleToInsertRatio(3.0, 2, 4.0, max_sample_batch=2, max_insert_batch=2)
    import random

    rng = random.Random(0)
    for _ in range(5000):
        n, m = rng.randint(1, 2), rng.randint(1, 2)
        order = [("s", n), ("i", m)] if rng.random() < 0.5 else [("i", m), ("s", n)]
        ok = False
        for kind, k in order:
            ok = lim.try_sample(k) if kind == "s" else lim.try_insert(k)
            if ok:
                break
        if not ok:
            # neither the requested sizes fit: unit requests must
            assert lim.can_sample(1) or lim.can_insert(1)
            assert lim.try_sample(1) or lim.try_insert(1)


def test_the_timeout_counts_time_without_progress_not_the_whole_wait():
    """A writer that keeps inserting, slower than the timeout in all, towards a large
    min_size_to_sample (dqn_atari's learning_starts on a slow machine) is not a stall; a
    writer that stops is."""
    lim = SampleToInsertRatio(1.0, min_size_to_sample=8, error_buffer=8)
    stop = threading.Event()

    def writer():
        for _ in range(8):
            time.sleep(0.06)
            lim.insert(1)
        stop.wait()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    t0 = time.monotonic()
    lim.sample(1, timeout=0.25)  # 8 x 0.06 s = ~0.5 s in all, 0.06 s between inserts
    assert time.monotonic() - t0 >= 0.4 and lim.samples == 1
    stop.set()
    thread.join()
    idle = SampleToInsertRatio(1.0, min_size_to_sample=8, error_buffer=8)
    with pytest.raises(TimeoutError, match="nothing inserted or sampled meanwhile"):
        idle.sample(1, timeout=0.1)  # no writer: no progress


def test_blocking_timeout_and_wakeup_from_another_thread():
    lim = MinSize(2)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"sample of 1 not allowed within 0\.05"):
        lim.sample(timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    assert lim.samples == 0

    def writer():
        time.sleep(0.05)
        lim.insert(2)

    th = threading.Thread(target=writer)
    th.start()
    lim.sample(timeout=5)
    th.join()
    assert (lim.inserts, lim.samples) == (2, 1)


async def test_async_acquire_wakes_on_thread_insert():
    lim = MinSize(1)
    th = threading.Timer(0.05, lambda: lim.insert())
    th.start()
    with anyio.fail_after(5):
        await lim.acquire_sample()
    th.join()
    assert lim.samples == 1


async def test_async_acquire_cancellation_records_nothing():
    lim = MinSize(1)
    with anyio.move_on_after(0.05) as scope:
        await lim.acquire_sample(3)
    assert scope.cancelled_caught
    assert lim.samples == 0
    # the abandoned worker thread stopped: a later insert is not consumed by it
    lim.insert()
    await anyio.sleep(0.05)
    assert lim.samples == 0
    assert lim.try_sample(3)


async def test_async_producer_consumer_ratio():
    lim = SampleToInsertRatio(2.0, 4, 8.0)
    counts = {"i": 0, "s": 0}

    async def producer():
        for _ in range(200):
            await lim.acquire_insert()
            counts["i"] += 1
            await anyio.sleep(0)

    async def consumer():
        # the producer's last insert needs samples >= 200 * 2 - max_diff (16) = 384
        for _ in range(390):
            await lim.acquire_sample()
            counts["s"] += 1

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            tg.start_soon(consumer)
    assert counts == {"i": 200, "s": 390}


async def test_producer_alone_is_held_back_by_the_window():
    lim = SampleToInsertRatio(2.0, 4, 8.0)
    with anyio.move_on_after(0.2) as scope:
        for _ in range(100):
            await lim.acquire_insert()
    assert scope.cancelled_caught
    # 4 free inserts, then d = 2 * inserts <= 16
    assert lim.inserts == 8


def test_state_dict_roundtrip_and_mismatch():
    lim = SampleToInsertRatio(1.0, 2, 4.0)
    lim.try_insert(3)
    lim.try_sample(2)
    state = lim.state_dict()
    other = SampleToInsertRatio(1.0, 2, 4.0)
    other.load_state_dict(state)
    assert (other.inserts, other.samples) == (3, 2)
    with pytest.raises(ValueError, match="does not match"):
        SampleToInsertRatio(2.0, 2, 4.0).load_state_dict(state)
    with pytest.raises(ValueError, match="does not match"):
        MinSize(2).load_state_dict(state)


def test_limiters_fit_the_graph_rate_limited_edge_protocol():
    graph = pytest.importorskip("streamrl.graph")
    protocol = getattr(graph, "RateLimiter", None)
    if protocol is None:
        pytest.skip("streamrl.graph has no RateLimiter protocol")
    assert isinstance(MinSize(1), protocol)
    assert isinstance(SampleToInsertRatio(1.0, 1, 2.0), protocol)


async def test_cancelled_waits_never_leak_permits():
    import random

    lim = SampleToInsertRatio(1.0, 1, 1.0)  # samples may never exceed inserts
    stop = threading.Event()

    def inserter():
        while not stop.is_set():
            try:
                lim.insert(timeout=0.01)
            except TimeoutError:
                pass
            time.sleep(0.0005)

    th = threading.Thread(target=inserter)
    th.start()
    completed = 0
    rng = random.Random(0)

    async def taker():
        nonlocal completed
        with anyio.move_on_after(rng.random() * 0.003):
            await lim.acquire_sample()
            completed += 1

    try:
        with anyio.fail_after(20):
            for _ in range(60):
                async with anyio.create_task_group() as tg:
                    for _ in range(5):
                        tg.start_soon(taker)
    finally:
        stop.set()
        th.join(5)
    await anyio.sleep(0.05)  # let abandoned worker threads notice their cancellation
    assert completed > 0
    assert lim.samples == completed
    assert lim.samples <= lim.inserts
