"""Errors raised across layers: a worker process that died, an exception raised inside one;
and :func:`name_file`, which makes an ``OSError`` from writing an open file say which file.

Both :class:`streamrl.envs.ParallelEnv` (sub-envs in worker processes) and the graph's
:class:`~streamrl.graph.Process` placement run code in worker processes, so their errors live
here, below both. The other errors a user catches live with the layer that raises them:
:class:`streamrl.envs.EnvClosedError`, and :class:`streamrl.graph.GraphError` with its
subclasses :class:`~streamrl.graph.OperatorError`, :class:`~streamrl.graph.DeadlockError` and
:class:`~streamrl.graph.GraphValidationError`.

>>> err = RemoteError("env-0", "ValueError", "bad action", "Traceback ...")
>>> err.remote_type, err.worker_name
('ValueError', 'env-0')
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["RemoteError", "WorkerDiedError", "name_file"]


def name_file(exc: BaseException, path: str | os.PathLike[Any]) -> None:
    """Put ``path`` into ``exc`` when it is an ``OSError`` that names no file: a write on an
    open file fails with e.g. ``[Errno 28] No space left on device`` and no file name, and a
    one-line report of it should say which file (then ``... device: '<path>'``).

    >>> exc = OSError(28, "No space left on device")
    >>> name_file(exc, "run/metrics.csv"); str(exc)
    "[Errno 28] No space left on device: 'run/metrics.csv'"
    """
    if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
        exc.filename = os.fspath(path)


class WorkerDiedError(RuntimeError):
    """A worker process exited while the parent was waiting on it.

    ``worker_name`` names the worker, ``exitcode`` is its exit code (negative: the signal that
    killed it; ``None`` if unknown).
    """

    def __init__(self, name: str, exitcode: int | None):
        super().__init__(
            f"worker process {name!r} died unexpectedly (exit code {exitcode}); "
            "it may have crashed, run out of memory or been killed"
        )
        self.worker_name = name
        self.exitcode = exitcode


class RemoteError(RuntimeError):
    """An exception raised inside a worker process, re-raised in the parent.

    ``remote_type`` is the name of the original exception class, ``remote_message`` its
    message and ``remote_traceback`` the traceback printed in the worker; the original
    exception, when it could be pickled, is this error's ``__cause__``.
    """

    def __init__(self, name: str, remote_type: str, message: str, remote_traceback: str):
        super().__init__(
            f"{remote_type}: {message} (raised in worker process {name!r})\n\n"
            f"Remote traceback:\n{remote_traceback}"
        )
        self.worker_name = name
        self.remote_type = remote_type
        self.remote_message = message
        self.remote_traceback = remote_traceback
