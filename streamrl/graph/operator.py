"""The operator interface: a few synchronous hooks; the runtime owns everything else."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

__all__ = ["Many", "Operator"]

_MODES = ("all", "any")


class Many:
    """Several items emitted on one output port by a single hook call.

    Examples:
        >>> from streamrl.graph import Many, Operator
        >>> class Split(Operator):
        ...     def step(self, inputs):
        ...         return {"out": Many(inputs["in"])}
        >>> Split().step({"in": [1, 2]})["out"].items
        [1, 2]
    """

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]):
        self.items = list(items)

    def __repr__(self) -> str:
        return f"Many({self.items!r})"


class Operator:
    """A node of a graph: named input and output ports and synchronous hooks.

    The same operator runs unchanged on the event loop, in a worker thread or in a worker
    process (placement is chosen when it is added to a graph). Subclasses implement
    :meth:`step` and, when needed, :meth:`open`, :meth:`finish` and :meth:`close`.

    Hook results are ``None`` (nothing to emit) or a dict mapping an output port to an item (or
    to :class:`Many` items). Messages are batches: a TensorDict with leading batch dims or a
    small control value, never one transition per message.

    Class attributes (or instance attributes set in ``__init__``):

    * ``inputs`` / ``outputs``: port names; defaults ``("in",)`` and ``("out",)``. A source has
      ``inputs = ()``, a sink ``outputs = ()``.
    * ``input_mode``: ``"all"`` steps with one item from every input port (zip); ``"any"`` steps
      with whichever ports have an item (merge).
    * ``primes``: how many items :meth:`open` emits on each output port. Used to check, when the
      graph is built, that a feedback cycle's capacities can hold them.
    * ``state_keys``: attribute names saved by the default :meth:`state_dict`.
    * ``latest_triggers``: an operator whose only inputs are latest-value ports is stepped
      when a new value arrives (default True); with False it is stepped as a source instead,
      and each step's inputs hold the latest-value ports that have a new value (e.g. a
      rollout that loads new weights when they come, between the batches it collects).
    * ``pipeline_safe``: the operator never ends the stream itself (its ``step`` raises no
      ``StopIteration``), so a process placement may send it its next input before the previous
      output is delivered (see :class:`~streamrl.graph.Process`). Default False.

    Heavy or unpicklable resources (environments, files, CUDA tensors) belong in :meth:`open`,
    not ``__init__``: a process-placed operator is pickled to its worker before ``open`` runs.

    Examples:
        >>> from streamrl.graph import Operator
        >>> class Add(Operator):
        ...     inputs = ("a", "b")
        ...     state_keys = ("calls",)
        ...     def __init__(self):
        ...         self.calls = 0
        ...     def step(self, inputs):
        ...         self.calls += 1
        ...         return {"out": inputs["a"] + inputs["b"]}
        >>> op = Add()
        >>> op.step({"a": 1, "b": 2})
        {'out': 3}
        >>> op.state_dict()
        {'calls': 1}
    """

    inputs: tuple[str, ...] = ("in",)
    outputs: tuple[str, ...] = ("out",)
    input_mode: str = "all"
    primes: int = 0
    state_keys: tuple[str, ...] = ()
    pipeline_safe: bool = False
    latest_triggers: bool = True

    def open(self) -> dict[str, Any] | None:
        """Called once before the first step; may emit initial items (priming a feedback cycle)."""
        return None

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        """Process one set of input items and return the items to emit.

        A source (no inputs) is stepped repeatedly with an empty dict and ends its stream by
        raising ``StopIteration``. Any operator may raise ``StopIteration`` to end early.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement step(inputs)")

    def finish(self) -> dict[str, Any] | None:
        """Called once when the inputs have ended: emit what is left (e.g. a partial batch)."""
        return None

    def close(self) -> None:
        """Release resources. Called once after the run, also after an error; must not raise."""

    def state_dict(self) -> dict[str, Any]:
        """The operator's state; by default the attributes named in ``state_keys``."""
        return {k: getattr(self, k) for k in self.state_keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""
        if not isinstance(state, dict):
            raise TypeError(f"expected a dict state, got {type(state).__name__}")
        expected, found = set(self.state_keys), set(state)
        if expected != found:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict expected keys {sorted(expected)}, "
                f"found {sorted(found)}"
            )
        for k, v in state.items():
            setattr(self, k, v)

    def restart_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """The state to load into a fresh copy of this operator that takes over after the
        process running it died (``Ray(on_failure="restart")``), from ``state``, the last
        :meth:`state_dict` taken after one of its outputs was sent. By default ``state``
        itself; an operator whose state cannot always be restored exactly returns what can be
        (a rollout whose env state was not captured starts new episodes)."""
        return state

    def __enter__(self) -> Operator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def check_operator(op: object) -> Operator:
    """Validate an operator's declared ports and mode; return it."""
    if not isinstance(op, Operator):
        raise TypeError(
            f"expected a streamrl.graph.Operator (wrap functions with Source/Map/Sink), "
            f"found {type(op).__name__}"
        )
    for attr in ("inputs", "outputs"):
        ports = getattr(op, attr)
        if not isinstance(ports, tuple) or not all(isinstance(p, str) and p for p in ports):
            raise TypeError(f"{type(op).__name__}.{attr} must be a tuple of names, found {ports!r}")
        if len(set(ports)) != len(ports):
            raise ValueError(f"{type(op).__name__}.{attr} has duplicate port names: {ports!r}")
    if op.input_mode not in _MODES:
        raise ValueError(
            f"{type(op).__name__}.input_mode must be one of {_MODES}, found {op.input_mode!r}"
        )
    if not isinstance(op.primes, int) or op.primes < 0:
        raise ValueError(f"{type(op).__name__}.primes must be an int >= 0, found {op.primes!r}")
    return op


def async_hooks(op: Operator) -> list[str]:
    """Names of the hooks that ``op`` implements as coroutines (run on the event loop only)."""
    return [h for h in ("open", "step", "finish") if inspect.iscoroutinefunction(getattr(op, h))]
