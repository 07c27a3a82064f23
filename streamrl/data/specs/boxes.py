"""Spaces of specs (``spec.space``): the set of values a spec allows, without shape."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["BinaryBox", "Box", "BoxList", "CategoricalBox"]


class Box:
    """Base of spec spaces: ``to`` moves tensor attributes, ``clone`` deep-copies.

    >>> CategoricalBox(3).clone() == CategoricalBox(3)
    True
    """

    def to(self, dest: Any) -> Box:
        """A copy with tensor attributes moved (or cast) to ``dest``."""
        out = self.clone()
        for name, val in vars(out).items():
            if isinstance(val, torch.Tensor):
                setattr(out, name, val.to(dest))
        return out

    def clone(self) -> Box:
        """A deep copy."""
        return copy.deepcopy(self)

    def __iter__(self) -> Iterator[Any]:
        yield from vars(self).values()


def _positive_int(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} needs a positive int n, found {n!r}")
    return n


class CategoricalBox(Box):
    """``n`` categories (the space of :class:`Categorical` and :class:`OneHot`).

    >>> CategoricalBox(3)
    CategoricalBox(n=3)
    """

    def __init__(self, n: int) -> None:
        self.n = _positive_int(n, "CategoricalBox")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoricalBox) and self.n == other.n

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n})"


class BinaryBox(Box):
    """``n`` binary values (the space of :class:`Binary`).

    >>> BinaryBox(4) == BinaryBox(4), BinaryBox(4) == BinaryBox(3)
    (True, False)
    """

    def __init__(self, n: int) -> None:
        self.n = _positive_int(n, "BinaryBox")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BinaryBox) and self.n == other.n

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BinaryBox(n={self.n})"


class BoxList(Box):
    """A list of boxes, one per variable (as the spaces of multi-variable specs).

    >>> boxes = BoxList.from_nvec(torch.tensor([2, 3]))
    >>> len(boxes), [b.n for b in boxes]
    (2, [2, 3])
    """

    def __init__(self, boxes: list) -> None:
        self.boxes = list(boxes)
        bad = [type(b).__name__ for b in self.boxes if not isinstance(b, Box)]
        if bad:
            raise TypeError(f"BoxList holds boxes, found {bad}")

    @classmethod
    def from_nvec(cls, nvec: Any) -> BoxList:
        """A (nested) BoxList of :class:`CategoricalBox` from the category counts ``nvec``."""
        t = torch.as_tensor(nvec)
        if t.ndim == 0:
            return cls([CategoricalBox(int(t))])
        if t.ndim == 1:
            return cls([CategoricalBox(int(n)) for n in t.tolist()])
        return cls([cls.from_nvec(row) for row in t.unbind(0)])

    def to(self, dest: Any) -> BoxList:
        """A copy with every box moved to ``dest``."""
        return BoxList([b.to(dest) for b in self.boxes])

    def __iter__(self) -> Iterator[Any]:
        return iter(self.boxes)

    def __len__(self) -> int:
        return len(self.boxes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoxList) and self.boxes == other.boxes

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BoxList(boxes={self.boxes})"
