"""Checkpoint files: written atomically, read back without executing pickled code."""

from __future__ import annotations

import enum
import glob
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from streamrl.errors import name_file

__all__ = ["load_checkpoint", "remove_temporaries", "save_checkpoint"]

_SCALARS = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device,
            torch.Size)


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError naming the first entry that ``torch.load(weights_only=True)`` rejects."""
    if isinstance(obj, (torch.Tensor, *_SCALARS)) and not isinstance(obj, enum.Enum):
        return
    if isinstance(obj, (dict, OrderedDict)):
        for key, value in obj.items():
            if not isinstance(key, (str, int, float, bool, type(None))):
                raise TypeError(
                    f"checkpoint key at {where} must be a str/int/float/bool, found "
                    f"{type(key).__name__}"
                )
            _check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, (list, tuple, set)) and type(obj) in (list, tuple, set):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(
        f"checkpoint entry {where} has type {type(obj).__name__}; expected tensors, numbers, "
        "strings, None and dicts/lists/tuples of them (so that it loads with "
        "torch.load(weights_only=True)); convert it, e.g. with dataclasses.asdict or "
        ".state_dict()"
    )


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically and return the path.

    The file is written next to ``path`` under a temporary name, flushed to disk and renamed
    over ``path``, so a crash never leaves a half-written checkpoint. ``state`` may hold only
    what ``torch.load(weights_only=True)`` accepts (tensors, numbers, strings, None,
    dicts/lists/tuples of them); anything else raises ``TypeError`` before writing.

    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> p = save_checkpoint(f"{d}/ckpt.pt", {"w": torch.ones(2), "frames": 10})
    >>> load_checkpoint(p)["frames"]
    10
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping, found {type(state).__name__}")
    _check_plain(dict(state), "state")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        name_file(exc, path)  # "No space left on device: '<path>'", not a bare errno
        raise
    return path


def remove_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`save_checkpoint` calls for ``path`` left
    beside it when their process was killed mid-write (a failed write removes its own);
    returns what was deleted. Call it only while no other process is saving to ``path``
    (e.g. when a run starts in a directory a killed run wrote into).

    >>> import tempfile
    >>> remove_temporaries(f"{tempfile.mkdtemp()}/checkpoint.pt")
    []
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", *,
                    mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no
    pickled code runs). ``mmap=True`` maps the tensors' bytes instead of reading them (for a
    look at a large checkpoint's entries; ``torch.load``'s ``mmap``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} holds a {type(state).__name__}, expected a dict")
    return state
