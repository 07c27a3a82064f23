"""Count what a piece of code leaves behind: threads, child processes, file descriptors and
shared memory.

The fault-injection tests take a :class:`Resources` snapshot, run a failing case (often many
times), and check with :func:`check_no_leaks` that nothing new is left: no Python thread, no
descendant process, no open file descriptor, no shared-memory mapping of this process and no
new ``/dev/shm`` entry. Resources that a library creates once per process and keeps (e.g.
multiprocessing's resource tracker or resource-sharer thread) should exist before the first
snapshot: run the case once before it.

Linux only (it reads ``/proc``).

>>> import threading
>>> before = Resources.snapshot()
>>> t = threading.Thread(target=lambda: None); t.start(); t.join()
>>> check_no_leaks(before, timeout=1.0).threads == before.threads
True
"""

from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass

__all__ = ["Resources", "check_no_leaks", "descendants", "pid_alive"]

_SHM = "/dev/shm"


def _ppid_and_state(pid: int) -> tuple[int, str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:  # gone, or not ours to read
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def descendants(pid: int | None = None) -> dict[int, str]:
    """Processes descended from ``pid`` (default: this process), as ``{pid: state}`` with the
    state letter of ``/proc/PID/stat`` (``"Z"`` for a zombie, not yet reaped)."""
    root = os.getpid() if pid is None else pid
    parent_of: dict[int, tuple[int, str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            found = _ppid_and_state(int(name))
            if found is not None:
                parent_of[int(name)] = found
    out: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, state) in parent_of.items():
            if ppid == parent and child not in out:
                out[child] = state
                frontier.append(child)
    return out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    found = _ppid_and_state(pid)
    return found is not None and found[1] != "Z"


def _fd_target(fd: int) -> str | None:
    """What descriptor ``fd`` of this process points to now (``None`` when closed)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def _fds() -> dict[int, str]:
    out = {}
    own = f"/proc/{os.getpid()}/fd"
    for name in os.listdir("/proc/self/fd"):
        target = _fd_target(int(name))  # (None: the listing's own descriptor, closed by now)
        if target is not None and target != own:
            out[int(name)] = target
    return out


def _shm_maps() -> frozenset[str]:
    # shared memory mapped by this process: torch's shared tensors (their /dev/shm file is
    # unlinked at once, the mapping stays), multiprocessing.shared_memory, memfds
    out = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            path = parts[5].strip() if len(parts) == 6 else ""
            if path.startswith(_SHM + "/") or path.startswith("/memfd:"):
                out.add(path)
    return frozenset(out)


def _unix_socket_paths() -> dict[str, str]:
    """``{"socket:[inode]": path}`` of the bound Unix sockets of this machine (an accepted
    connection carries its listener's path)."""
    out = {}
    try:
        with open("/proc/net/unix") as f:
            next(f, None)
            for line in f:
                parts = line.split()
                if len(parts) >= 8:
                    out[f"socket:[{parts[6]}]"] = parts[7]
    except OSError:
        pass
    return out


def _process_singletons() -> tuple[set[int], set[int], set[int], str | None]:
    """(thread idents, pids, fds, the resource sharer's listener address) of the standard
    library's per-process multiprocessing helpers, started on first use and kept until
    exit."""
    from multiprocessing import forkserver, resource_sharer, resource_tracker

    threads: set[int] = set()
    pids: set[int] = set()
    fds: set[int] = set()
    sharer = getattr(resource_sharer, "_resource_sharer", None)
    thread = getattr(sharer, "_thread", None)
    if thread is not None and thread.ident is not None:
        threads.add(thread.ident)
    listener = getattr(sharer, "_listener", None)
    sock = getattr(getattr(listener, "_listener", None), "_socket", None)
    if sock is not None and sock.fileno() >= 0:
        fds.add(sock.fileno())
    address = getattr(listener, "address", None)
    tracker = getattr(resource_tracker, "_resource_tracker", None)
    server = getattr(forkserver, "_forkserver", None)
    for pid in (getattr(tracker, "_pid", None), getattr(server, "_forkserver_pid", None)):
        if pid is not None:
            pids.add(pid)
    for fd in (getattr(tracker, "_fd", None), getattr(server, "_forkserver_alive_fd", None)):
        if fd is not None:
            fds.add(fd)
    return threads, pids, fds, address if isinstance(address, str) else None


@dataclass(frozen=True)
class Resources:
    """What this process holds at one moment (see :meth:`snapshot`).

    Attributes:
        threads: live Python threads, ``{ident: name}``.
        children: descendant processes, ``{pid: state}`` (zombies included: a child that
            nobody reaped is a leak too).
        fds: open file descriptors, ``{fd: target}`` (``readlink`` of ``/proc/self/fd/N``).
        shm_maps: paths of the shared-memory segments this process maps.
        shm_files: entries of ``/dev/shm`` (of every process of the machine: compare
            snapshots, and expect other programs' entries to come and go).
    """

    threads: dict[int, str]
    children: dict[int, str]
    fds: dict[int, str]
    shm_maps: frozenset[str]
    shm_files: frozenset[str]

    @classmethod
    def snapshot(cls) -> Resources:
        """The resources held now (after a garbage collection, so that objects already
        unreachable do not count)."""
        gc.collect()
        return cls(
            threads={t.ident: t.name for t in threading.enumerate() if t.ident is not None},
            children=descendants(),
            fds=_fds(),
            shm_maps=_shm_maps(),
            shm_files=frozenset(os.listdir(_SHM)) if os.path.isdir(_SHM) else frozenset(),
        )

    def new_since(self, before: Resources) -> dict[str, list[str]]:
        """What this snapshot holds that ``before`` did not, by kind (only kinds with
        something new): ``threads``, ``children``, ``fds``, ``shm_maps``, ``shm_files``.
        The standard library's per-process multiprocessing helpers are left out, with the
        connections the resource sharer accepts from other processes fetching a handle
        (short-lived, but they come at any time: a worker of an earlier test may ask late);
        a new Unix socket is listed with its path. A socket is checked once more when it is
        read, so one closed since the snapshot (an accepted connection already answered) is
        not listed."""
        kept_threads, kept_pids, kept_fds, sharer = _process_singletons()
        fds = {fd: t for fd, t in self.fds.items() if before.fds.get(fd) != t and fd not in kept_fds}
        if any(t.startswith("socket:") for t in fds.values()):
            paths = _unix_socket_paths()
            # (a socket missing from the table may have been closed after the fds were read:
            # one the sharer accepted and answered in between; only one still open counts)
            fds = {fd: f"{t} ({paths[t]})" if t in paths else t for fd, t in fds.items()
                   if (sharer is None or paths.get(t) != sharer)
                   and (t in paths or not t.startswith("socket:") or _fd_target(fd) == t)}
        new = {
            "threads": [f"{name} (ident {i})" for i, name in self.threads.items()
                        if before.threads.get(i) != name and i not in kept_threads],
            "children": [f"pid {p} (state {s})" for p, s in self.children.items()
                         if p not in before.children and p not in kept_pids],
            "fds": [f"fd {fd} -> {t}" for fd, t in fds.items()],
            "shm_maps": sorted(self.shm_maps - before.shm_maps),
            "shm_files": sorted(self.shm_files - before.shm_files),
        }
        return {k: v for k, v in new.items() if v}


def check_no_leaks(
    before: Resources,
    timeout: float = 5.0,
    *,
    ignore: tuple[str, ...] = (),
    ignore_threads: tuple[str, ...] = (),
) -> Resources:
    """Wait up to ``timeout`` seconds for this process to hold nothing that ``before`` did
    not; return the last snapshot, or raise ``AssertionError`` listing what is left.

    ``ignore`` names kinds not to check (see :meth:`Resources.new_since`), e.g.
    ``("shm_files",)`` where other programs use ``/dev/shm`` at the same time;
    ``ignore_threads`` are thread-name prefixes not to count.
    """
    deadline = time.monotonic() + timeout
    while True:
        now = Resources.snapshot()
        left = {k: v for k, v in now.new_since(before).items() if k not in ignore}
        if "threads" in left and ignore_threads:
            kept = [t for t in left["threads"] if not t.startswith(ignore_threads)]
            left = {**left, "threads": kept} if kept else {
                k: v for k, v in left.items() if k != "threads"
            }
        if not left:
            return now
        if time.monotonic() > deadline:
            listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in left.items())
            raise AssertionError(f"left behind after {timeout} s: {listing}")
        time.sleep(0.05)
