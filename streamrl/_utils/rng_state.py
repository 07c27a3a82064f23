"""The states of the process-wide generators (Python's ``random``, numpy's legacy global
generator, torch's CPU generator) as plain data, and back.

:class:`~streamrl.checkpoint.GlobalRNGState` saves this process's; VMAS keeps a copy of the
same three for its envs (``Environment.vmas_random_state``), which its env state saves.

>>> import random
>>> import numpy as np
>>> import torch
>>> plain = rng_states_to_plain(random.getstate(), np.random.get_state(), torch.get_rng_state())
>>> sorted(plain)
['numpy', 'python', 'torch_cpu']
>>> py, npy, cpu = rng_states_from_plain(plain)
>>> py == random.getstate() and torch.equal(cpu, torch.get_rng_state())
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

KEYS = ("python", "numpy", "torch_cpu")


def rng_states_to_plain(python: tuple, numpy: tuple, torch_cpu: torch.Tensor) -> dict[str, Any]:
    """``random.getstate()``, ``np.random.get_state()`` and a torch CPU generator state as a
    dict of plain data (``KEYS``)."""
    version, internal, gauss = python
    name, keys, pos, has_gauss, cached = numpy
    return {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch_cpu": torch_cpu.clone(),
    }


def check_torch_cpu_state(state: Any, owner: str) -> None:
    """Raise ``ValueError`` (naming ``owner``) unless ``state`` is a torch CPU generator
    state (a uint8 tensor)."""
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
        raise ValueError(f"{owner}: 'torch_cpu' must be a uint8 tensor (from "
                         "torch.get_rng_state())")


def rng_states_from_plain(state: Mapping[str, Any]) -> tuple[tuple, tuple, torch.Tensor]:
    """``(python, numpy, torch_cpu)`` states from :func:`rng_states_to_plain`'s dict, as
    ``random.setstate``, ``np.random.set_state`` and ``torch.set_rng_state`` take them."""
    py, npy = state["python"], state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    return ((py["version"], tuple(py["internal"]), py["gauss_next"]),
            (npy["name"], keys, npy["pos"], npy["has_gauss"], npy["cached"]),
            state["torch_cpu"].clone())
