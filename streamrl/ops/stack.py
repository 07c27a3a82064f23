"""StackBatches: zips one batch from each of N inputs into one batch with a leading dim N."""

from __future__ import annotations

from typing import Any

import torch

from streamrl.graph import Operator

__all__ = ["StackBatches"]


class StackBatches(Operator):
    """Waits for one batch on each input port ``in0 .. in{N-1}`` and emits them stacked along a
    new leading dim (batch sizes must match)."""

    input_mode = "all"

    def __init__(self, n: int):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        self.inputs = tuple(f"in{i}" for i in range(n))

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        batches = [inputs[p] for p in self.inputs]
        sizes = {tuple(b.batch_size) for b in batches}
        if len(sizes) != 1:
            raise ValueError(f"StackBatches needs equal batch sizes, found {sorted(sizes)}")
        return {"out": torch.stack(batches, 0)}

    def __repr__(self) -> str:
        return f"StackBatches(n={len(self.inputs)})"
