"""Choice: a value drawn from one of several specs (or one of several fixed values)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import NonTensorData, NonTensorStack

from streamrl.data.specs._base import TensorSpec

__all__ = ["Choice"]

_CHOICE_TYPES = (TensorSpec, NonTensorData, NonTensorStack)


class Choice(TensorSpec):
    """One of ``choices``: specs (``rand`` samples a randomly chosen one) or fixed
    ``NonTensorData`` values (``rand`` returns a randomly chosen one).

    The choices must share type, shape, dtype and device. ``is_in`` holds when any choice
    accepts the value (for fixed values: when it equals one of them).

    >>> from streamrl.data.specs import Bounded
    >>> spec = Choice([Bounded(0.0, 1.0, (1,)), Bounded(10.0, 11.0, (1,))])
    >>> spec.is_in(torch.tensor([10.5])), spec.is_in(torch.tensor([5.0]))
    (True, False)
    >>> from tensordict import NonTensorData
    >>> words = Choice([NonTensorData(w) for w in ["a", "b"]])
    >>> words.rand().data in ("a", "b")
    True
    """

    domain = "discrete"

    def __init__(self, choices: list) -> None:
        if not isinstance(choices, list | tuple):
            raise TypeError(f"choices must be a list, found {type(choices).__name__}")
        choices = list(choices)
        if not choices:
            raise ValueError("Choice needs at least one choice")
        bad = [type(c).__name__ for c in choices if not isinstance(c, _CHOICE_TYPES)]
        if bad:
            raise TypeError(
                f"each choice must be either a TensorSpec, NonTensorData, or NonTensorStack, "
                f"found {bad}"
            )
        first = choices[0]
        for c in choices[1:]:
            if type(c) is not type(first):
                raise TypeError(
                    f"all choices must be the same type, found {type(first).__name__} and "
                    f"{type(c).__name__}"
                )
            if c.shape != first.shape:
                raise ValueError(
                    f"all choices must have the same shape, found {tuple(first.shape)} and "
                    f"{tuple(c.shape)}"
                )
            if isinstance(c, TensorSpec) and c.dtype != first.dtype:
                raise ValueError(
                    f"all choices must have the same dtype, found {first.dtype} and {c.dtype}"
                )
            if isinstance(c, TensorSpec) and c.device != first.device:
                raise ValueError(
                    f"all choices must have the same device, found {first.device} and {c.device}"
                )
        self.choices = choices
        self.shape = first.shape
        self.device = first.device if first.device is not None else torch.device("cpu")
        self.dtype = getattr(first, "dtype", None)  # type: ignore[assignment]
        self._fixed = not isinstance(first, TensorSpec)

    @property
    def num_choices(self) -> int:
        """The number of choices."""
        return len(self.choices)

    def cardinality(self) -> int | float:
        """The number of distinct values: the sum of the choices' cardinalities (a fixed
        value counts one; ``inf`` when a choice is continuous).

        >>> from streamrl.data.specs import Categorical
        >>> Choice([Categorical(2), Categorical(3)]).cardinality()
        5
        """
        if self._fixed:
            return len(self.choices)
        return sum(c.cardinality() for c in self.choices)

    def _pick(self) -> Any:
        return self.choices[int(torch.randint(len(self.choices), ()))]

    def rand(self, shape: Any = None) -> Any:
        """A sample of a uniformly chosen spec (or a uniformly chosen fixed value)."""
        chosen = self._pick()
        if self._fixed:
            if shape:
                raise ValueError("a Choice of fixed values does not take a sample shape")
            return chosen.clone()
        return chosen.rand(shape)

    def zero(self, shape: Any = None) -> Any:
        """The zero of the first choice (the first fixed value)."""
        first = self.choices[0]
        if self._fixed:
            return first.clone()
        return first.zero(shape)

    def one(self, shape: Any = None) -> Any:
        """The one of the first choice (the first fixed value)."""
        first = self.choices[0]
        return first.clone() if self._fixed else first.one(shape)

    def is_in(self, val: Any) -> bool:
        """Whether any choice accepts ``val`` (equals it, for fixed values)."""
        if self._fixed:
            if not isinstance(val, NonTensorData | NonTensorStack):
                return False
            return any(val.tolist() == c.tolist() for c in self.choices)
        return any(c.is_in(val) for c in self.choices)

    def check(self, val: Any, name: str = "value") -> None:
        """Raise ``ValueError`` when no choice accepts ``val``."""
        if not self.is_in(val):
            raise ValueError(f"{name}: not in any of the {len(self.choices)} choices")

    assert_is_in = check

    def _project(self, val: Any) -> Any:
        """``val`` if a choice holds it, else the first choice's projection of it."""
        if self.is_in(val):
            return val
        if self._fixed:
            return self.choices[0].clone()
        return self.choices[0].project(val)

    def _map(self, fn: Any) -> Choice:
        return Choice([fn(c) for c in self.choices])

    def expand(self, *shape: Any) -> Choice:
        """Every choice expanded to ``shape``."""
        return self._map(lambda c: c.expand(*shape))

    def unsqueeze(self, dim: int) -> Choice:
        """Every choice with a new size-1 dim at ``dim``."""
        return self._map(lambda c: c.unsqueeze(dim))

    def squeeze(self, dim: int | None = None) -> Choice:
        """Every choice without the size-1 dim ``dim`` (all of them when None)."""
        return self._map(lambda c: c.squeeze() if dim is None else c.squeeze(dim))

    def __getitem__(self, index: Any) -> Choice:
        """Every choice indexed with ``index``."""
        return self._map(lambda c: c[index])

    def unbind(self, dim: int = 0) -> tuple[Choice, ...]:
        """The Choices of the slices along ``dim``."""
        parts = [c.unbind(dim) for c in self.choices]
        return tuple(Choice(list(p)) for p in zip(*parts, strict=True))

    def to(self, dest: Any) -> Choice:
        """Every choice moved (or cast) to ``dest``."""
        return self._map(lambda c: c.to(dest))

    def clone(self) -> Choice:
        """A copy with cloned choices."""
        return self._map(lambda c: c.clone())

    def _space_eq(self, other: TensorSpec) -> bool:
        theirs = getattr(other, "choices", [])
        if len(theirs) != len(self.choices):
            return False
        if self._fixed:
            return all(a.tolist() == b.tolist() for a, b in zip(self.choices, theirs, strict=True))
        return all(a == b for a, b in zip(self.choices, theirs, strict=True))

    def _space_str(self) -> str:
        return f"{len(self.choices)} choices"
