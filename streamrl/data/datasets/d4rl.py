"""HDF5 files in D4RL's layout as a replay buffer, converted once into a memory-mapped cache."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.datasets import _cache
from streamrl.data.datasets.common import BaseDatasetExperienceReplay, default_root
from streamrl.data.replay_buffers.samplers import Sampler
from streamrl.data.replay_buffers.writers import Writer

__all__ = ["D4RLExperienceReplay"]

_REQUIRED = ("observations", "actions", "rewards", "terminals")
_CHUNK_ROWS = 1 << 16


def _import_h5py():
    try:
        import h5py
    except ImportError as err:
        raise ImportError("D4RL files need the 'h5py' package: "
                          "pip install 'streamrl[offline]'") from err
    return h5py


class D4RLExperienceReplay(BaseDatasetExperienceReplay):
    """An HDF5 file in D4RL's layout as a read-only :class:`TensorDictReplayBuffer`.

    ``dataset_id`` is the path of a local ``.hdf5`` file (fields ``observations``,
    ``actions``, ``rewards``, ``terminals``; optional ``timeouts``, ``next_observations``,
    ``infos/...`` and a ``metadata`` group), or the name of a cache converted before. The
    file is converted once into ``<root>/<stem>`` (memory-mapped) and reopened from there,
    also after the file is gone; a file whose size or modification time changed is converted
    again. Nothing is downloaded.

    Keys are TorchRL's: ``observation``, ``action``, ``info`` and under ``"next"``:
    ``observation``, ``reward``, ``terminated``, ``truncated``, ``done``, ``info``; the root
    ``reward``/``done``/``terminated``/``truncated`` are those of the previous step (as
    TorchRL does). With ``next_observations`` every row is kept; without, ``("next",
    "observation")`` is the following row's observation, zeroed where the episode ended (it
    belongs to another episode), and the last row is dropped.

    Args:
        dataset_id: path of the HDF5 file, or the name of an existing cache under ``root``.
        batch_size: default size of :meth:`sample`.
        sampler, writer, collate_fn, pin_memory, prefetch, transform: as in
            :class:`TensorDictReplayBuffer` (the writer defaults to
            :class:`ImmutableDatasetWriter`).
        split_trajs: not supported (``ValueError``); use ``SliceSampler``.
        from_env, direct_download, terminate_on_end, env_kwargs: TorchRL's ways to fetch a
            dataset through ``d4rl`` or the internet; only the local reading is supported
            (``from_env=False``, ``direct_download`` ``None``/``True``, ``terminate_on_end``
            ``None``/``True``, no ``env_kwargs``), anything else raises ``ValueError``.
        use_truncated_as_done: ``done = terminated | truncated`` (default) or ``terminated``.
        download: ``True``: convert if there is no up-to-date cache; ``"force"``: convert
            again; ``False``: only open the cache.
        root: cache directory (default ``~/.cache/streamrl/d4rl``, or
            ``$STREAMRL_DATASETS_ROOT/d4rl``).

    Attributes:
        metadata: the file's ``metadata`` group (plus ``source``, ``total_steps``).
    """

    def __init__(
        self,
        dataset_id: str | os.PathLike,
        batch_size: int | None,
        sampler: Sampler | None = None,
        writer: Writer | None = None,
        collate_fn: Callable | None = None,
        pin_memory: bool = False,
        prefetch: int | None = None,
        transform: Callable | None = None,
        split_trajs: bool = False,
        from_env: bool = False,
        use_truncated_as_done: bool = True,
        direct_download: bool | None = None,
        terminate_on_end: bool | None = None,
        download: bool | str = True,
        root: str | os.PathLike | None = None,
        **env_kwargs: Any,
    ) -> None:
        _check_local_only(split_trajs, from_env, direct_download, terminate_on_end, env_kwargs)
        if download not in (True, False, "force"):
            raise ValueError(f"download must be True, False or 'force', found {download!r}")
        self.root = Path(root) if root is not None else default_root("d4rl")
        self.use_truncated_as_done = bool(use_truncated_as_done)
        self.from_env = False
        source = Path(dataset_id)
        is_file = source.is_file()
        self.dataset_id = source.stem if is_file else str(dataset_id)
        path = self.root / self.dataset_id
        fresh = download == "force" or not _up_to_date(path, source, self.use_truncated_as_done)
        if is_file and download and fresh:
            _convert(source, path, self.use_truncated_as_done)
        elif not _cache.is_cached(path):
            if is_file:
                raise FileNotFoundError(f"{str(source)!r}: no cache at {str(path)!r} and "
                                        f"download=False (pass download=True to convert it)")
            raise ValueError(f"unknown dataset id {str(dataset_id)!r}: expected the path of "
                             f"a local HDF5 file in D4RL's layout or a cache at "
                             f"{str(path)!r}, found neither (streamrl does not download "
                             f"D4RL datasets)")
        built = _cache.read_metadata(path).get("use_truncated_as_done")
        if built is not None and built != self.use_truncated_as_done:
            raise ValueError(f"the cache at {str(path)!r} was built with use_truncated_as_done="
                             f"{built}, found use_truncated_as_done="
                             f"{self.use_truncated_as_done} (pass the file with "
                             f"download='force' to convert it again)")
        storage, metadata = _cache.open_cache(path)
        super().__init__(
            data_path=path, storage=storage, metadata=metadata, batch_size=batch_size,
            sampler=sampler, writer=writer, collate_fn=collate_fn, pin_memory=pin_memory,
            prefetch=prefetch, transform=transform,
        )


def _check_local_only(split_trajs, from_env, direct_download, terminate_on_end, env_kwargs):
    if split_trajs:
        raise ValueError("split_trajs=True is not supported: sample sub-trajectories with "
                         "SliceSampler instead")
    if from_env:
        raise ValueError("from_env=True needs the d4rl package and its gym envs, which "
                         "streamrl does not use: pass the path of a local HDF5 file")
    if direct_download is False:
        raise ValueError("direct_download=False (loading through d4rl) is not supported: "
                         "pass the path of a local HDF5 file")
    if terminate_on_end is False:
        raise ValueError("terminate_on_end=False is d4rl.qlearning_dataset's option, not "
                         "supported: the file's terminals and timeouts are used as they are")
    if env_kwargs:
        raise ValueError(f"env_kwargs are d4rl's options, not supported; found "
                         f"{sorted(env_kwargs)}")


def _stamp(source: Path) -> dict[str, Any]:
    stat = source.stat()
    return {"source": str(source.resolve()), "source_size": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns}


def _up_to_date(path: Path, source: Path, truncated_as_done: bool) -> bool:
    if not _cache.is_cached(path) or not source.is_file():
        return _cache.is_cached(path)
    meta = _cache.read_metadata(path)
    stamp = {**_stamp(source), "use_truncated_as_done": truncated_as_done}
    return all(meta.get(k) == v for k, v in stamp.items())


def _open(source: Path):
    h5py = _import_h5py()
    try:
        return h5py.File(source, "r")
    except OSError as err:
        raise ValueError(f"{str(source)!r}: {_describe_h5_error(err)}") from err


def _describe_h5_error(err: OSError) -> str:
    text = str(err)
    m = re.search(r"eof = (\d+).*stored_eof = (\d+)", text)
    if m:
        return (f"truncated HDF5 file: expected {m.group(2)} bytes (as its header says), "
                f"found {m.group(1)}")
    return f"not a readable HDF5 file ({text})"


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist()) if value.dtype != object else [
            _to_json(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _leaves(group, prefix: str = "") -> dict[str, Any]:
    h5py = _import_h5py()
    out = {}
    for name, item in group.items():
        key = f"{prefix}{name}"
        if isinstance(item, h5py.Group):
            out.update(_leaves(item, key + "/"))
        else:
            out[key] = item
    return out


def _convert(source: Path, dest: Path, truncated_as_done: bool) -> None:
    with _open(source) as f:
        leaves = _leaves(f)
        metadata = {k[len("metadata/"):]: v for k, v in leaves.items()
                    if k.startswith("metadata/")}
        data = {k: v for k, v in leaves.items() if not k.startswith("metadata/")}
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            what = "no terminal flags" if "terminals" in missing else "missing fields"
            raise ValueError(f"{str(source)!r}: {what}: expected D4RL's fields "
                             f"{list(_REQUIRED)}, field {missing[0]!r} is missing (found "
                             f"{sorted(data)})")
        n = int(data["observations"].shape[0])
        for key, dset in data.items():
            if dset.ndim == 0 or dset.shape[0] != n:
                raise ValueError(f"{str(source)!r}, field {key!r}: expected {n} rows (as "
                                 f"'observations'), found shape {list(dset.shape)}")
        has_next = "next_observations" in data
        total = n if has_next else n - 1
        meta = {"metadata": {k: _to_json(v[()]) for k, v in metadata.items()}, **_stamp(source),
                "format": "d4rl-hdf5", "use_truncated_as_done": truncated_as_done}
        try:
            _cache.build_cache(dest, total, _chunks(data, total, has_next, truncated_as_done),
                               meta)
        except OSError as err:
            raise ValueError(f"{str(source)!r}: {_describe_h5_error(err)}") from err


def _read(data: dict[str, Any], key: str, start: int, stop: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(data[key][start:stop]))


def _previous(x: torch.Tensor, off: int, count: int) -> torch.Tensor:
    """Rows ``off - 1 .. off + count - 2`` of ``x``: the previous step's values of rows
    ``off ..``; zeros before the first row of the file."""
    if off:
        return x[off - 1: off - 1 + count].clone()
    out = torch.zeros_like(x[:count])
    out[1:] = x[: count - 1]
    return out


def _chunks(data: dict[str, Any], total: int, has_next: bool,
            truncated_as_done: bool) -> Iterator[TensorDictBase]:
    infos = sorted(k for k in data if k.startswith("infos/"))
    for start in range(0, total, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, total)
        # one row before (the root flags are the previous step's) and one after (next obs)
        lo = max(start - 1, 0)
        hi = stop + (0 if has_next else 1)
        terminated = _read(data, "terminals", lo, hi).to(torch.bool).reshape(-1, 1)
        if "timeouts" in data:
            truncated = _read(data, "timeouts", lo, hi).to(torch.bool).reshape(-1, 1)
        else:
            truncated = torch.zeros_like(terminated)
        done = terminated | truncated if truncated_as_done else terminated.clone()
        reward = _read(data, "rewards", lo, hi).reshape(-1, 1)
        obs = _read(data, "observations", lo, hi)
        off = start - lo  # 1, except for the first chunk
        count = stop - start
        rows = slice(off, off + count)
        if has_next:
            next_obs = _read(data, "next_observations", start, stop)
        else:
            next_obs = obs[off + 1: off + 1 + count].clone()
            next_obs[(terminated[rows] | truncated[rows]).squeeze(-1)] = 0
        td = TensorDict({
            "observation": obs[rows],
            "action": _read(data, "actions", start, stop),
            "reward": _previous(reward, off, count),
            "done": _previous(done, off, count),
            "terminated": _previous(terminated, off, count),
            "truncated": _previous(truncated, off, count),
            "next": {
                "observation": next_obs,
                "reward": reward[rows],
                "done": done[rows],
                "terminated": terminated[rows],
                "truncated": truncated[rows],
            },
        }, batch_size=[count])
        for key in infos:
            name = tuple(key.split("/")[1:])
            td.set(("info", *name), _read(data, key, start, stop))
            if not has_next:
                td.set(("next", "info", *name), _read(data, key, start + 1, stop + 1))
        yield td
