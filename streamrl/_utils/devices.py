"""Small machine helpers: the accelerator to use, and a deterministic chain of seeds."""

from __future__ import annotations

import numpy as np
import torch


def get_available_device(return_str: bool = False) -> torch.device | str:
    """The first accelerator found (CUDA, then NPU, then MPS), or the CPU.

    >>> get_available_device(return_str=True) in ("cuda", "npu", "mps", "cpu")
    True
    """
    if torch.cuda.is_available():
        name = "cuda"
    elif getattr(getattr(torch, "npu", None), "is_available", lambda: False)():
        name = "npu"
    elif torch.backends.mps.is_available():
        name = "mps"
    else:
        name = "cpu"
    return name if return_str else torch.device(name)


def seed_generator(seed: int) -> int:
    """The next seed of a deterministic chain that starts at ``seed`` (in ``[0, 2**32 - 1)``).

    >>> seed_generator(0) == seed_generator(0), seed_generator(0) != seed_generator(1)
    (True, True)
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, found {type(seed).__name__}")
    return int(np.random.default_rng(int(seed) & (2**64 - 1)).integers(0, 2**32 - 1))
