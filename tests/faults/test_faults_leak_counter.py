"""The resource counter the fault suite relies on sees each kind of leak it claims to see
(a counter that never reports anything would make every fault test pass)."""

import multiprocessing as mp
import os
import threading

import pytest
import torch

from streamrl.testing import Resources, check_no_leaks, descendants, pid_alive


def test_clean_code_leaves_nothing():
    before = Resources.snapshot()
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    with open(__file__):
        pass
    check_no_leaks(before, timeout=1.0)


def test_a_thread_left_running_is_named():
    stop = threading.Event()
    before = Resources.snapshot()
    t = threading.Thread(target=stop.wait, name="leaky-thread")
    t.start()
    try:
        with pytest.raises(AssertionError, match="threads: leaky-thread"):
            check_no_leaks(before, timeout=0.2)
        check_no_leaks(before, timeout=0.2, ignore_threads=("leaky",))
    finally:
        stop.set()
        t.join()
    check_no_leaks(before, timeout=1.0)


def test_a_child_process_is_seen_until_reaped():
    before = Resources.snapshot()
    p = mp.get_context("fork").Process(target=threading.Event().wait, daemon=True)
    p.start()
    pid = p.pid
    try:
        assert pid in descendants() and pid_alive(pid)
        with pytest.raises(AssertionError, match=f"children: pid {pid}"):
            check_no_leaks(before, timeout=0.2)
    finally:
        p.kill()
        p.join()
        p.close()  # its sentinel fd
    assert not pid_alive(pid)
    check_no_leaks(before, timeout=1.0)


def test_an_open_fd_is_listed_with_its_target():
    before = Resources.snapshot()
    fd = os.open(__file__, os.O_RDONLY)
    try:
        with pytest.raises(AssertionError, match=rf"fd {fd} -> .*test_faults_leak_counter\.py"):
            check_no_leaks(before, timeout=0.2)
    finally:
        os.close(fd)
    check_no_leaks(before, timeout=1.0)


def test_a_mapped_shared_tensor_counts_until_freed():
    before = Resources.snapshot()
    t = torch.zeros(1000).share_memory_()
    with pytest.raises(AssertionError, match="shm_maps"):
        check_no_leaks(before, timeout=0.2, ignore=("fds",))
    del t
    check_no_leaks(before, timeout=1.0)


def test_a_dev_shm_file_counts_until_unlinked():
    from multiprocessing import shared_memory

    # (the first segment starts multiprocessing's resource tracker: a process and a pipe kept
    # for the life of this process, which the counts leave out)
    before = Resources.snapshot()
    seg = shared_memory.SharedMemory(create=True, size=64)
    try:
        seg.close()  # unmapped and closed, but the file stays until unlinked
        with pytest.raises(AssertionError, match=f"shm_files: {seg.name.lstrip('/')}"):
            check_no_leaks(before, timeout=0.2)
    finally:
        seg.unlink()
    # the file is what this test is about (fds have their own test): a socket that a
    # background helper of an earlier test opened meanwhile (CI once saw one from
    # multiprocessing's resource sharer, serving a worker's fd) is not this test's leak
    check_no_leaks(before, timeout=1.0, ignore=("fds",))
