"""Run directories: ``<root>/<name>-<UTC timestamp>``, never reused, or a directory a user
names; either is checked to be writable before a run starts."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

__all__ = ["make_run_dir", "writable_dir"]


def writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and its parents) unless it exists, check that a file can be written
    in it, and return it; ``ValueError`` naming the path and what is wrong with it otherwise
    (a file where a directory should be, a directory that cannot be created or written in).

    >>> import tempfile
    >>> writable_dir(f"{tempfile.mkdtemp()}/a/b").is_dir()
    True
    """
    path = Path(path)
    shown = str(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{shown!r} is not a directory (it is a file)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                raise ValueError(f"{shown!r} is not a directory: {str(parent)!r} is a "
                                 "file") from None
        raise ValueError(f"{shown!r} is not writable: the directory cannot be created "
                         f"({exc.strerror or exc})") from None
    try:  # permissions, a read-only file system, a full disk: only a write says
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{shown!r} is not writable: a file cannot be created in it "
                         f"({exc.strerror or exc})") from None
    return path


def make_run_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    """Create and return a fresh directory ``<root>/<name>-<YYYYmmdd-HHMMSS>`` (a ``-2``,
    ``-3`` ... suffix is added when two runs start in the same second); ``ValueError`` when
    ``root`` is not a writable directory (see :func:`writable_dir`)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(
            f"run name must be a non-empty string of letters, digits, '_', '.' or '-', "
            f"found {name!r}"
        )
    root = writable_dir(root)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = root / f"{name}-{stamp}"
    path, k = base, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
            path = base.with_name(f"{base.name}-{k}")
