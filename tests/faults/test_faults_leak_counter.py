"""The resource counter the fault suite relies on sees each kind of leak it claims to see
(a counter that never reports anything would make every fault test pass)."""

import multiprocessing as mp
import os
import threading
import time

import pytest
import torch

from streamrl.testing import Resources, check_no_leaks, descendants, pid_alive
from streamrl.testing.resources import _unix_socket_paths


def test_clean_code_leaves_nothing():
    before = Resources.snapshot()
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    with open(__file__):
        pass
    check_no_leaks(before, timeout=1.0)


# what a thread check leaves out: a socket an earlier test's client (Ray's, a late worker's)
# opens in this process while it runs is not this test's business
_NOT_THREADS = ("children", "fds", "shm_maps", "shm_files")


def test_a_thread_left_running_is_named():
    stop = threading.Event()
    before = Resources.snapshot()
    t = threading.Thread(target=stop.wait, name="leaky-thread")
    t.start()
    try:
        with pytest.raises(AssertionError, match="threads: leaky-thread"):
            check_no_leaks(before, timeout=0.2, ignore=_NOT_THREADS)
        check_no_leaks(before, timeout=0.2, ignore=_NOT_THREADS, ignore_threads=("leaky",))
    finally:
        stop.set()
        t.join()
    check_no_leaks(before, timeout=1.0, ignore=_NOT_THREADS)


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
    # (only what the segment makes: CI once saw a socket of some other code come meanwhile)
    check_no_leaks(before, timeout=1.0, ignore=("fds", "threads", "children"))


def test_a_socket_closed_after_the_fds_were_read_is_not_listed():
    """A connection another process opens to this one's listener may be accepted and closed
    between reading the fds and reading the socket table: it is not held, so not a leak."""
    import socket

    before = Resources.snapshot()
    a, b = socket.socketpair()  # (in the socket table, without a path)
    ours = (f"fd {a.fileno()} -> socket:", f"fd {b.fileno()} -> socket:")
    try:
        held = Resources.snapshot()
        listed = held.new_since(before)["fds"]
        assert all(any(line.startswith(fd) for line in listed) for fd in ours)
    finally:
        a.close()
        b.close()
    # the same snapshot, read after the close (only our two are judged: a thread left by an
    # earlier test, such as the resource sharer's, may open a socket of its own meanwhile)
    listed = held.new_since(before).get("fds", [])
    assert not [line for line in listed if line.startswith(ours)]


def test_a_new_unix_socket_is_listed_with_its_path():
    from multiprocessing.connection import Client, Listener

    before = Resources.snapshot()
    with Listener(family="AF_UNIX") as listener:
        client = Client(listener.address, family="AF_UNIX")
        server = listener.accept()
        try:
            with pytest.raises(AssertionError, match=rf"fd {server.fileno()} -> socket:\[\d+\] "
                                                     rf"\({listener.address}\)"):
                check_no_leaks(before, timeout=0.2)
        finally:
            client.close()
            server.close()
    check_no_leaks(before, timeout=1.0)


def _hold_a_sharer_connection(address, authkey, key, start, asked, go):
    from multiprocessing import current_process
    from multiprocessing.connection import Client
    from multiprocessing.reduction import recv_handle

    current_process().authkey = authkey
    start.wait(30)
    conn = Client(address, authkey=authkey)
    asked.set()
    go.wait(30)
    conn.send((key, os.getpid()))
    os.close(recv_handle(conn))
    conn.close()


def test_a_connection_the_resource_sharer_accepts_is_not_a_leak():
    """multiprocessing's resource sharer, started by an earlier fd handed to a worker, accepts
    a worker's late connection at any time: the accepted socket is the sharer's, not the
    checked code's (CI once saw one fail an unrelated check)."""
    from multiprocessing import current_process, resource_sharer

    ctx = mp.get_context("fork")
    fd = os.open(__file__, os.O_RDONLY)
    try:
        shared = resource_sharer.DupFd(fd)  # (starts the sharer, which keeps a duplicate)
    finally:
        os.close(fd)
    address, key = shared._id
    start, asked, go = ctx.Event(), ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_a_sharer_connection,
                        args=(address, bytes(current_process().authkey), key, start, asked, go))
    child.start()  # (its pipes before the snapshot)
    before = Resources.snapshot()
    start.set()
    try:
        assert asked.wait(30)
        # the sharer's thread holds the accepted connection (a socket on the sharer's path)
        # until the worker asks
        deadline = time.monotonic() + 5
        while True:
            now = Resources.snapshot()
            paths = _unix_socket_paths()
            accepted = [fd for fd, t in now.fds.items()
                        if before.fds.get(fd) != t and paths.get(t) == address]
            if accepted:
                break
            assert time.monotonic() < deadline, "the sharer never accepted the connection"
            time.sleep(0.01)
        # only the sharer's connection is judged: a thread left by an earlier test may open a
        # socket of its own meanwhile (CI saw one)
        listed = now.new_since(before).get("fds", [])
        assert not [line for line in listed for fd in accepted if line.startswith(f"fd {fd} ")]
    finally:
        go.set()
        child.join(30)
    assert child.exitcode == 0
    child.close()
