"""Fault injection for replay buffers: concurrent writers, samplers and loaders.

The buffer documents one lock around every read and write (``ReplayBuffer``), and a
``shared=True`` memory-mapped buffer whose writes worker processes see. The promise checked:
under concurrency no row is lost, duplicated or torn. Every row is written by
``faults_replay_helpers.rows`` with all its fields derived from one id (several keys, nested
keys, shapes and dtypes), so each sampled row is checked as written whole, and with enough
capacity every written id is found exactly once in the storage at the end.
"""

import threading
import time

import pytest
import torch
from faults_replay_helpers import check_rows, make_buffer, rows
from torch.utils.data import DataLoader

from streamrl.data import LazyMemmapStorage, ReplayBuffer

WRITERS, SAMPLERS_, ROUNDS, ROWS = 3, 2, 60, 7  # 3 * 60 * 7 = 1260 rows


def _run(threads, timeout=60.0):
    errors = []

    def guard(fn):
        def run():
            try:
                fn()
            except BaseException as err:  # reported by the main thread
                errors.append(err)
        return run

    workers = [threading.Thread(target=guard(fn), daemon=True) for fn in threads]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout)
    assert not any(w.is_alive() for w in workers), "a thread is stuck"
    if errors:
        raise errors[0]


def _writer(rb, w, done):
    def write():
        for r in range(ROUNDS):
            first = (w * ROUNDS + r) * ROWS
            rb.extend(rows(torch.arange(first, first + ROWS)))
        done.append(w)
    return write


def _sampler(rb, done, seen, prioritized):
    def sample():
        count = 0  # at least a few samples, however fast the writers finish
        while len(done) < WRITERS or count < 5:
            if not len(rb):
                continue
            count += 1
            batch = rb.sample(10)
            seen.append(check_rows(batch))
            if prioritized:
                rb.update_priority(batch["index"], torch.rand(batch.shape[0]) + 0.1)
    return sample


@pytest.mark.parametrize("sampler,storage", [
    ("random", "tensor"), ("prioritized", "tensor"), ("prioritized", "memmap"),
    ("random", "list"), ("prioritized_slice", "tensor"),
])
def test_threads_extend_sample_update_no_row_lost_or_torn(sampler, storage, tmp_path):
    """Fault: 3 threads extend (60 batches of 7 rows each) while 2 threads sample and update
    priorities. Promise: every sampled row is whole; at the end every written id is stored
    exactly once (capacity suffices), ``len`` and ``write_count`` count every row. Check:
    field-by-field row check; sorted stored ids equal all ids written."""
    total = WRITERS * ROUNDS * ROWS
    rb = make_buffer(sampler, storage, tmp_path, n=0, size=total)
    done, seen = [], []
    _run([_writer(rb, w, done) for w in range(WRITERS)]
         + [_sampler(rb, done, seen, "prioritized" in sampler) for _ in range(SAMPLERS_)])
    assert len(rb) == total and rb.write_count == total
    stored = check_rows(rb[torch.arange(total)] if storage != "list" else torch.stack(
        rb.storage.get(torch.arange(total))))
    assert sorted(stored.tolist()) == list(range(total))
    assert seen and all(int(ids.max()) < total for ids in seen)


def test_threads_overwrite_keeps_rows_whole_and_distinct(tmp_path):
    """Fault: 3 writer threads overwrite a 100-row buffer (1260 rows in all) while 2 threads
    sample. Promise: rows stay whole while they are overwritten; the storage ends full with
    100 distinct ids: the last 100 written, so each writer's stored rows are its latest ones
    with none missing. Check: row check on every sample and at the end; per-writer suffix."""
    rb = make_buffer("random", "tensor", tmp_path, n=0, size=100)
    done, seen = [], []
    _run([_writer(rb, w, done) for w in range(WRITERS)]
         + [_sampler(rb, done, seen, False) for _ in range(SAMPLERS_)])
    ids = check_rows(rb[torch.arange(100)])
    assert len(rb) == 100 and ids.unique().numel() == 100
    assert rb.write_count == WRITERS * ROUNDS * ROWS
    # the storage holds the last 100 rows in write order, so each writer's stored rows are
    # its latest ones, with none missing in between
    per_writer = ROUNDS * ROWS
    for w in range(WRITERS):
        mine = sorted(i for i in ids.tolist() if i // per_writer == w)
        end = (w + 1) * per_writer
        assert mine == list(range(end - len(mine), end)), f"writer {w} lost rows"


def test_concurrent_load_state_dict_is_seen_whole(tmp_path):
    """Fault: one thread keeps loading one of two states (different rows, sampler and
    cursor) while two threads sample. Promise: a sample comes entirely from one state, never
    from half a load (the load holds the buffer lock from check to commit). Check: every
    sampled batch's ids are all even (state A) or all odd (state B) and the rows whole."""
    a = make_buffer("random", "tensor", tmp_path / "a", n=0, size=64)
    a.extend(rows(torch.arange(0, 80, 2)))
    b = make_buffer("random", "tensor", tmp_path / "b", n=0, size=64)
    b.extend(rows(torch.arange(1, 121, 2)))
    states = [a.state_dict(), b.state_dict()]
    rb = make_buffer("random", "tensor", tmp_path / "rb", n=0, size=64)
    rb.load_state_dict(states[0])
    stop = threading.Event()
    parities = set()

    def load():
        i = 0
        deadline = time.monotonic() + 20
        while (i < 150 or len(parities) < 2) and time.monotonic() < deadline:
            rb.load_state_dict(states[i % 2])
            i += 1
            time.sleep(0.0005)  # let the samplers in between loads
        stop.set()

    def sample():
        while not stop.is_set():
            ids = check_rows(rb.sample(32))
            odd = ids % 2
            assert odd.min() == odd.max(), "a batch mixes two states"
            parities.add(int(odd[0]))

    _run([load, sample, sample])
    assert parities == {0, 1}


def test_dataloader_workers_sample_while_main_writes(tmp_path):
    """Fault: 2 DataLoader worker processes sample a ``shared=True`` memory-mapped buffer
    while the main process keeps extending it. Promise: workers see the main process's
    writes, every row a worker returns is whole, and every written id is stored once.
    Check: row check on every batch from the workers; some batch holds ids written after
    the loader started; sorted stored ids equal all ids written."""
    total = 1200
    rb = ReplayBuffer(storage=LazyMemmapStorage(total, scratch_dir=tmp_path / "mm",
                                                 auto_cleanup=True), shared=True, batch_size=16)
    rb.extend(rows(torch.arange(100)))
    loader = DataLoader(rb.as_dataset(num_batches=60), batch_size=None, num_workers=2,
                        prefetch_factor=1)
    written, late = 100, False
    for batch in loader:
        ids = check_rows(batch)
        late |= bool((ids >= 100).any())
        if written < total:
            rb.extend(rows(torch.arange(written, written + 25)))
            written += 25
    while written < total:
        rb.extend(rows(torch.arange(written, written + 25)))
        written += 25
    assert late, "the workers never saw a row written after they started"
    stored = check_rows(rb[torch.arange(total)])
    assert sorted(stored.tolist()) == list(range(total))


def _slow_put(storage, pause):
    """Make ``storage``'s writes slow and visibly torn while they last: the ``obs`` rows
    are overwritten first, the rest ``pause`` seconds later (a writer descheduled mid-row)."""
    put = storage._put
    obs = storage._keys.index(("obs",))

    def slow(index, batch, source, start, new_len):
        new = batch.data.get("obs") if source is None else batch.data.get("obs")[source]
        storage._leaves[obs][index] = new
        time.sleep(pause)
        put(index, batch, source, start, new_len)

    storage._put = slow


@pytest.mark.parametrize("process_lock", [True, False])
def test_dataloader_workers_never_read_a_row_being_overwritten(process_lock, tmp_path):
    """Fault: a thread of the main process keeps overwriting rows of a full ``shared=True``
    memory-mapped buffer with slow writes (``obs`` written, a 20 ms pause, then the rest of
    each row) while 2 DataLoader workers sample it. Promise: a worker never returns a torn
    row: the buffer's lock between processes makes readers wait for a write. Check: row
    check on every batch; the same run without the process lock (``process_lock=False``,
    the old behaviour) returns torn rows, so the check can fail."""
    rb = ReplayBuffer(storage=LazyMemmapStorage(64, scratch_dir=tmp_path / "mm",
                                                 auto_cleanup=True), shared=True, batch_size=64)
    rb.extend(rows(torch.arange(64)))
    if not process_lock:
        rb._process_lock = None
        rb._make_locks()
    loader = DataLoader(rb.as_dataset(num_batches=8), batch_size=None, num_workers=2,
                        prefetch_factor=1)
    batches = iter(loader)  # the workers fork now, before the writer thread holds any lock
    _slow_put(rb.storage, 0.02)
    stop = threading.Event()

    def write():
        written = 64
        while not stop.is_set():
            rb.extend(rows(torch.arange(written, written + 16)))
            written += 16
            time.sleep(0.002)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    torn = 0
    try:
        for batch in batches:
            try:
                check_rows(batch)
            except AssertionError:
                torn += 1
    finally:
        stop.set()
        writer.join(10)
    if process_lock:
        assert torn == 0
    else:
        assert torn > 0, "the slow writes were never seen torn: the test cannot fail"
