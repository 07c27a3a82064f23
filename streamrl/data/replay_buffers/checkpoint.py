"""Checkpoint files: written atomically, read without executing pickled code.

A checkpoint is one file written by ``torch.save`` that holds only tensors and plain Python
values (dict, list, tuple, str, int, float, bool, None), so ``torch.load(weights_only=True)``
reads it: loading a checkpoint never runs code from the file. The file is first written
beside its destination and then moved into place with ``os.replace``, so a crash leaves either
the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

__all__ = ["load_checkpoint", "save_checkpoint"]

_TD = "__tensordict__"
_TUPLE = "__tuple__"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same directory + ``os.replace``)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (tensors memory-mapped, on CPU).

    ``FileNotFoundError`` when there is no file; ``ValueError`` when it cannot be read as a
    checkpoint: truncated or corrupted (every record's CRC-32 is checked first), not written
    by ``torch.save``, or holding objects that only pickle could rebuild (which are refused,
    never executed).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint file at {path!r}")
    _check_archive(path)
    try:
        state = torch.load(path, weights_only=True, mmap=True, map_location="cpu")
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"cannot read the checkpoint {path!r} (truncated, corrupted, or not a pickle-free "
            f"torch.save file): {type(err).__name__}: {reason}"
        ) from err
    if not isinstance(state, dict):
        raise ValueError(f"the checkpoint {path!r} holds a {type(state).__name__}, not a dict")
    return state


def _check_archive(path: str) -> None:
    """``torch.save`` writes a zip archive with a CRC-32 per record: check them all, so that
    a flipped bit in the tensor data (which ``torch.load`` does not notice) is refused."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as err:  # a damaged header may raise BadZipFile, EOFError,
        # UnicodeDecodeError (names), NotImplementedError (compression method), ...
        raise ValueError(
            f"cannot read the checkpoint {path!r}: not a complete torch.save archive "
            f"(truncated or corrupted): {err}"
        ) from err
    if bad is not None:
        raise ValueError(
            f"cannot read the checkpoint {path!r}: record {bad!r} fails its CRC check "
            "(the file is corrupted)"
        )


def to_safe(obj):
    """Convert ``obj`` to tensors and plain values; ``TypeError`` for anything else."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, TensorDictBase):
        flat = {}
        for key, value in obj.items(include_nested=True, leaves_only=True):
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"TensorDict leaf {key!r} is a {type(value).__name__}, not a tensor"
                )
            flat[key if isinstance(key, tuple) else (key,)] = value
        return {
            _TD: [[list(k) for k in flat], list(flat.values())],
            "batch_size": list(obj.batch_size),
        }
    if isinstance(obj, list):
        return [to_safe(x) for x in obj]
    if isinstance(obj, tuple):
        return {_TUPLE: [to_safe(x) for x in obj]}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("only dicts with str keys can be checkpointed")
        if _TD in obj or _TUPLE in obj:
            raise TypeError(f"dict keys {_TD!r} and {_TUPLE!r} are reserved")
        return {k: to_safe(v) for k, v in obj.items()}
    raise TypeError(
        f"objects of type {type(obj).__name__} cannot be saved without pickle (supported: "
        "tensors, TensorDicts, numbers, str, None, and lists/tuples/str-keyed dicts of them)"
    )


def from_safe(obj):
    """Inverse of :func:`to_safe`."""
    if isinstance(obj, list):
        return [from_safe(x) for x in obj]
    if isinstance(obj, dict):
        if _TD in obj:
            keys, values = obj[_TD]
            if len(keys) != len(values) or not all(isinstance(v, torch.Tensor) for v in values):
                raise ValueError(
                    f"a saved TensorDict needs one tensor per key, found {len(keys)} key(s) "
                    f"and {len(values)} value(s)"
                )
            td = TensorDict(batch_size=obj["batch_size"])
            for key, value in zip(keys, values):
                td.set(tuple(key), value.clone())
            return td
        if _TUPLE in obj:
            return tuple(from_safe(x) for x in obj[_TUPLE])
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    return obj
