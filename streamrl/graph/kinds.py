"""Ready-made operators for the common kinds: source, map, batcher, sink."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from tensordict import is_tensor_collection

from .operator import Operator

__all__ = ["Batcher", "Collect", "Map", "Sink", "Source"]


class Source(Operator):
    """A source built from an iterable or a zero-argument callable.

    An iterable is iterated (its ``StopIteration`` ends the stream); a callable is called once per
    step and ends the stream by raising ``StopIteration``. ``limit`` caps the number of items.
    Each run starts from the beginning of the iterable (iterate it again); the state is the
    number of items emitted, and after ``load_state_dict`` the next run skips that many items.

    Examples:
        >>> from streamrl.graph import Source
        >>> src = Source(range(3))
        >>> src.open()
        >>> [src.step({})["out"] for _ in range(3)]
        [0, 1, 2]
    """

    inputs = ()
    state_keys = ("count",)

    def __init__(self, items: Iterable[Any] | Callable[[], Any], *, limit: int | None = None):
        if not callable(items) and not isinstance(items, Iterable):
            raise TypeError(f"Source expects an iterable or a callable, found {type(items).__name__}")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be an int >= 0 or None, found {limit!r}")
        self._items = items
        self.limit = limit
        self.count = 0
        self._resume = 0
        self._it: Iterator[Any] | None = None

    def open(self) -> None:
        self.count, self._resume = self._resume, 0
        if not callable(self._items):
            self._it = iter(self._items)
            for _ in range(self.count):  # resume after load_state_dict
                next(self._it, None)

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.limit is not None and self.count >= self.limit:
            raise StopIteration
        if self._it is not None:
            item = next(self._it)
        elif callable(self._items):
            item = self._items()
        else:
            raise RuntimeError("Source.step() called before open()")
        self.count += 1
        return {"out": item}

    def close(self) -> None:
        self._it = None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._resume = self.count

    def __repr__(self) -> str:
        return f"Source({getattr(self._items, '__name__', type(self._items).__name__)})"


class Map(Operator):
    """Applies a function to every item; a ``None`` result emits nothing (a filter).

    Examples:
        >>> from streamrl.graph import Map
        >>> Map(lambda x: 2 * x).step({"in": 21})
        {'out': 42}
    """

    pipeline_safe = True

    def __init__(self, fn: Callable[[Any], Any]):
        if not callable(fn):
            raise TypeError(f"Map expects a callable, found {type(fn).__name__}")
        self.fn = fn

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        out = self.fn(inputs["in"])
        return None if out is None else {"out": out}

    def __repr__(self) -> str:
        return f"Map({getattr(self.fn, '__name__', type(self.fn).__name__)})"


def default_collate(items: list[Any]) -> Any:
    """Concatenate batched tensors/TensorDicts along dim 0, stack unbatched ones, else a list."""
    first = items[0]
    if is_tensor_collection(first) or isinstance(first, torch.Tensor):
        if first.ndim >= 1 if isinstance(first, torch.Tensor) else first.batch_dims >= 1:
            return torch.cat(items, 0)
        return torch.stack(items, 0)
    return list(items)


class Batcher(Operator):
    """Groups ``size`` items into one (a window); the end of the stream flushes a partial batch.

    ``collate`` turns the list of items into the emitted item (default: ``torch.cat`` of batched
    tensors/TensorDicts along dim 0, ``torch.stack`` of unbatched ones, else the list).

    Examples:
        >>> from streamrl.graph import Batcher
        >>> b = Batcher(2)
        >>> b.step({"in": 1}), b.step({"in": 2}), b.step({"in": 3}), b.finish()
        (None, {'out': [1, 2]}, None, {'out': [3]})
    """

    pipeline_safe = True

    def __init__(
        self,
        size: int,
        collate: Callable[[list[Any]], Any] | None = None,
        *,
        drop_last: bool = False,
    ):
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"Batcher size must be an int >= 1, found {size!r}")
        self.size = size
        self.collate = collate or default_collate
        self.drop_last = drop_last
        self._buf: list[Any] = []

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        self._buf.append(inputs["in"])
        if len(self._buf) < self.size:
            return None
        items, self._buf = self._buf, []
        return {"out": self.collate(items)}

    def finish(self) -> dict[str, Any] | None:
        items, self._buf = self._buf, []
        if not items or self.drop_last:
            return None
        return {"out": self.collate(items)}

    def state_dict(self) -> dict[str, Any]:
        return {"pending": list(self._buf)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"pending"}:
            raise ValueError(f"Batcher.load_state_dict expected keys ['pending'], found {state!r}")
        self._buf = list(state["pending"])

    def __repr__(self) -> str:
        return f"Batcher({self.size})"


class Sink(Operator):
    """Calls a function on every item and emits nothing.

    Examples:
        >>> from streamrl.graph import Sink
        >>> seen = []
        >>> Sink(seen.append).step({"in": 7}); seen
        [7]
    """

    pipeline_safe = True

    outputs = ()

    def __init__(self, fn: Callable[[Any], Any]):
        if not callable(fn):
            raise TypeError(f"Sink expects a callable, found {type(fn).__name__}")
        self.fn = fn

    def step(self, inputs: dict[str, Any]) -> None:
        self.fn(inputs["in"])

    def __repr__(self) -> str:
        return f"Sink({getattr(self.fn, '__name__', type(self.fn).__name__)})"


class Collect(Operator):
    """A sink that keeps every item in ``self.items`` (handy in tests and notebooks).

    Examples:
        >>> from streamrl.graph import Collect
        >>> c = Collect(); c.step({"in": 1}); c.items
        [1]
    """

    pipeline_safe = True

    outputs = ()

    def __init__(self):
        self.items: list[Any] = []

    def step(self, inputs: dict[str, Any]) -> None:
        self.items.append(inputs["in"])

    def state_dict(self) -> dict[str, Any]:
        return {"items": list(self.items)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"items"}:
            raise ValueError(f"Collect.load_state_dict expected keys ['items'], found {state!r}")
        self.items = list(state["items"])
