"""The few exceptions the graph runtime raises."""

from __future__ import annotations

__all__ = ["DeadlockError", "GraphError", "GraphValidationError", "OperatorError", "PeerLostError"]


class GraphError(Exception):
    """Base class of the errors raised by :mod:`streamrl.graph`."""


class GraphValidationError(GraphError, ValueError):
    """The graph is malformed: an unknown or unconnected port, a cycle with no feedback edge,
    or capacities with which a cycle cannot make progress."""


class OperatorError(GraphError):
    """An operator raised while the graph ran.

    The graph is cancelled and this error is raised to the caller of ``run``. ``operator`` is the
    operator's name, ``hook`` the hook that raised (``open``, ``step``, ``finish`` or ``close``;
    ``start`` when its placement could not start it, e.g. a worker process that died; for a
    worker process that died between hook calls, the hook it was waiting to run),
    and ``__cause__`` (also ``original``) is the exception the operator raised. For a
    process-placed operator the original is rebuilt in this process when it can be pickled,
    otherwise it is the :class:`streamrl.errors.RemoteError` carrying the remote traceback.
    """

    def __init__(self, operator: str, hook: str, original: BaseException):
        self.operator = operator
        self.hook = hook
        self.original = original
        super().__init__(
            f"operator {operator!r} raised in {hook}(): {type(original).__name__}: {original}"
        )
        self.__cause__ = original

    def __reduce__(self):
        return (type(self), (self.operator, self.hook, self.original))


class DeadlockError(GraphError):
    """Every running operator has been blocked on its edges for longer than the watchdog timeout.

    ``blocked`` lists ``(operator, direction, edge, occupancy, capacity)`` for every blocked wait.
    """

    def __init__(self, message: str, blocked: list[tuple[str, str, str, int, int | None]]):
        super().__init__(message)
        self.blocked = blocked


class PeerLostError(GraphError):
    """The other end of an edge between two processes of a Ray application failed or went
    away (``Ray(direct=True)``). Usually a consequence: the run reports the operator that
    failed first, and this error only when no cause shows up within a few seconds.
    ``edge``: the edge whose other end was lost (None when not known)."""

    def __init__(self, message: str, edge: str | None = None):
        super().__init__(message)
        self.edge = edge
