"""Minari datasets as a replay buffer, converted once into a memory-mapped cache."""

from __future__ import annotations

import os
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
from streamrl.data.specs import spec_from_gym_space

__all__ = ["MinariExperienceReplay", "minari_datasets_root"]

# rows gathered before one write into the cache (many short episodes, few writes)
_CHUNK_ROWS = 1 << 16


def minari_datasets_root() -> Path:
    """Where Minari keeps local datasets: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``."""
    path = os.environ.get("MINARI_DATASETS_PATH")
    if path:
        return Path(path)
    return Path(os.path.expanduser("~")) / ".minari" / "datasets"


def _import_minari():
    try:
        import minari
    except ImportError as err:
        raise ImportError("Minari datasets need the 'minari' package: "
                          "pip install 'streamrl[offline]'") from err
    return minari


class MinariExperienceReplay(BaseDatasetExperienceReplay):
    """A Minari dataset as a read-only :class:`TensorDictReplayBuffer`.

    The dataset is read from the local Minari datasets (``$MINARI_DATASETS_PATH`` or
    ``~/.minari/datasets``, as ``minari.load_dataset`` reads it), converted once into a
    memory-mapped cache under ``<root>/<dataset_id>`` and reopened from there afterwards,
    without the source. Nothing is downloaded: fetch a remote dataset first with
    ``minari download ID``.

    Each stored row is one transition, with TorchRL's keys: ``observation``, ``action``,
    ``episode`` and under ``"next"``: ``observation``, ``reward``, ``terminated``,
    ``truncated``, ``done`` (flags and reward with a trailing dim of 1); dict observations are
    nested TensorDicts, numeric ``infos`` go to ``info`` and ``("next", "info")``.

    Args:
        dataset_id: the Minari id (``namespace/name-v0``).
        batch_size: default size of :meth:`sample`.
        root: cache directory (default ``~/.cache/streamrl/minari``, or
            ``$STREAMRL_DATASETS_ROOT/minari``).
        download: ``True``: convert the local Minari dataset if there is no cache yet;
            ``"force"``: convert again, replacing the cache; ``False``: only open the cache.
        sampler, writer, collate_fn, pin_memory, prefetch, transform: as in
            :class:`TensorDictReplayBuffer` (the writer defaults to
            :class:`ImmutableDatasetWriter`).
        split_trajs: not supported (``ValueError``); sample whole sub-trajectories with
            ``SliceSampler(traj_key="episode")`` instead.
        load_from_local_minari: convert from the local Minari dataset even if a cache exists.

    Attributes:
        metadata: the Minari metadata, with ``observation_space`` / ``action_space`` as specs
            (``observation_space_gym`` / ``action_space_gym``: the gymnasium spaces).
    """

    def __init__(
        self,
        dataset_id: str,
        batch_size: int | None,
        *,
        root: str | os.PathLike | None = None,
        download: bool | str = True,
        sampler: Sampler | None = None,
        writer: Writer | None = None,
        collate_fn: Callable | None = None,
        pin_memory: bool = False,
        prefetch: int | None = None,
        transform: Callable | None = None,
        split_trajs: bool = False,
        load_from_local_minari: bool = False,
    ) -> None:
        if download not in (True, False, "force"):
            raise ValueError(f"download must be True, False or 'force', found {download!r}")
        if split_trajs:
            raise ValueError("split_trajs=True is not supported: sample sub-trajectories with "
                             "SliceSampler(traj_key='episode') instead")
        if not isinstance(dataset_id, str) or not dataset_id:
            raise ValueError(f"dataset_id must be a non-empty str, found {dataset_id!r}")
        self.dataset_id = dataset_id
        self.root = Path(root) if root is not None else default_root("minari")
        self.split_trajs = False
        self.download = download
        self.load_from_local_minari = load_from_local_minari
        path = self.root / dataset_id
        convert = download == "force" or load_from_local_minari or (
            download and not _cache.is_cached(path))
        if convert:
            _convert(dataset_id, path)
        elif not _cache.is_cached(path):
            raise FileNotFoundError(f"dataset {dataset_id!r}: no cache at {str(path)!r} and "
                                    f"download=False (pass download=True to convert the local "
                                    f"Minari dataset)")
        storage, metadata = _cache.open_cache(path)
        super().__init__(
            data_path=path, storage=storage, metadata=_with_specs(metadata),
            batch_size=batch_size, sampler=sampler, writer=writer, collate_fn=collate_fn,
            pin_memory=pin_memory, prefetch=prefetch, transform=transform,
        )

    @property
    def specs(self) -> dict[str, Any]:
        """``{"observation": spec, "action": spec}`` from the dataset's spaces."""
        return {"observation": self.metadata["observation_space"],
                "action": self.metadata["action_space"]}


def _with_specs(metadata: dict[str, Any]) -> dict[str, Any]:
    from minari.serialization import deserialize_space

    out = dict(metadata)
    for name in ("observation_space", "action_space"):
        space = deserialize_space(metadata[name])
        out[f"{name}_gym"] = space
        out[name] = spec_from_gym_space(space, categorical_action_encoding=True)
    return out


def _local_ids(base: Path, limit: int = 20) -> list[str]:
    ids = sorted(str(p.parent.parent.relative_to(base))
                 for p in base.glob("**/data/metadata.json"))
    return ids[:limit]


def _convert(dataset_id: str, dest: Path) -> None:
    minari = _import_minari()
    from minari.dataset.minari_storage import MinariStorage

    base = minari_datasets_root()
    source = base / dataset_id / "data"
    if not (source / "metadata.json").is_file():
        raise ValueError(f"unknown dataset id {dataset_id!r}: expected a local Minari dataset "
                         f"at {str(source)!r}, found none (local datasets: "
                         f"{_local_ids(base)}); streamrl does not download, run "
                         f"`minari download {dataset_id}` first")
    storage = MinariStorage.read(source)
    raw = MinariStorage.read_raw_metadata(source)
    if raw.get("minari_version") not in minari.supported_dataset_versions:
        raise ValueError(f"dataset {dataset_id!r}: expected a Minari version in "
                         f"{sorted(minari.supported_dataset_versions)}, found "
                         f"{raw.get('minari_version')!r}")
    metadata = {k: v for k, v in raw.items() if k not in ("total_steps",)}
    metadata["source"] = str(source)
    chunks = _chunks(storage, dataset_id)
    try:
        _cache.build_cache(dest, int(storage.total_steps), chunks, metadata)
    except OSError as err:  # h5py's error for a damaged or truncated file
        raise ValueError(f"dataset {dataset_id!r}: cannot read {str(source)!r} ({err})") from err


def _chunks(storage, dataset_id: str) -> Iterator[TensorDictBase]:
    pending: list[TensorDictBase] = []
    rows = 0
    first_keys: list | None = None
    episodes = storage.get_episodes(range(storage.total_episodes))
    for ep in episodes:
        td = _episode_td(ep, storage.observation_space, storage.action_space, dataset_id)
        keys = sorted(map(str, td.keys(True, True)))
        if first_keys is None:
            first_keys = keys
        elif keys != first_keys:
            raise ValueError(f"dataset {dataset_id!r}, episode {ep['id']}: expected the fields "
                             f"of the first episode {first_keys}, found {keys}")
        pending.append(td)
        rows += td.batch_size[0]
        if rows >= _CHUNK_ROWS:
            yield TensorDict.cat(pending)
            pending, rows = [], 0
    if pending:
        yield TensorDict.cat(pending)


def _tensor(value: Any, where: str) -> torch.Tensor:
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind in "USV":
        raise ValueError(f"{where}: expected numeric data, found dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _check_space(value: Any, space: Any, rows: int, where: str, field: str) -> Any:
    """``value`` as a tensor (or nested dict of tensors) of ``rows`` rows fitting ``space``."""
    import gymnasium as gym

    where_field = f"{where}, field {field!r}"
    if isinstance(space, gym.spaces.Dict):
        if not isinstance(value, dict) or set(value) != set(space.spaces):
            found = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"{where_field}: expected the keys of the dataset's Dict space "
                             f"{sorted(space.spaces)}, found {found}")
        return {k: _check_space(value[k], space.spaces[k], rows, where, f"{field}/{k}")
                for k in space.spaces}
    tensor = _tensor(value, where_field)
    expected = (rows, *space.shape)
    if tuple(tensor.shape) != expected:
        raise ValueError(f"{where_field}: expected shape {list(expected)} (the dataset's space "
                         f"{space}), found {list(tensor.shape)}")
    want = torch.from_numpy(np.zeros((), dtype=space.dtype)).dtype
    if tensor.dtype != want:
        raise ValueError(f"{where_field}: expected dtype {want} (the dataset's space {space}), "
                         f"found {tensor.dtype}")
    return tensor


def _take(tree: Any, index: slice) -> Any:
    if isinstance(tree, dict):
        return {k: _take(v, index) for k, v in tree.items()}
    return tree[index]


def _episode_td(ep: dict, obs_space: Any, act_space: Any, dataset_id: str) -> TensorDict:
    where = f"dataset {dataset_id!r}, episode {ep['id']}"
    for name in ("observations", "actions", "rewards", "terminations", "truncations"):
        if ep.get(name) is None:
            raise ValueError(f"{where}: expected field {name!r}, found fields "
                             f"{sorted(k for k, v in ep.items() if v is not None)}")
    n = int(np.asarray(ep["rewards"]).shape[0])
    obs = _check_space(ep["observations"], obs_space, n + 1, where, "observations")
    action = _check_space(ep["actions"], act_space, n, where, "actions")
    flags = {}
    for name, key in (("terminations", "terminated"), ("truncations", "truncated")):
        flag = _tensor(ep[name], f"{where}, field {name!r}")
        if tuple(flag.shape) != (n,):
            raise ValueError(f"{where}, field {name!r}: expected shape [{n}] (one per step), "
                             f"found {list(flag.shape)}")
        flags[key] = flag.to(torch.bool).unsqueeze(-1)
    reward = _tensor(ep["rewards"], f"{where}, field 'rewards'").reshape(n, 1)
    nxt: dict[str, Any] = {
        "observation": _take(obs, slice(1, n + 1)),
        "reward": reward,
        **flags,
        "done": flags["terminated"] | flags["truncated"],
    }
    root: dict[str, Any] = {
        "observation": _take(obs, slice(0, n)),
        "action": action,
        "episode": torch.full((n,), int(ep["id"]), dtype=torch.int64),
        "next": nxt,
    }
    info = ep.get("infos")
    if info:
        now, later = _split_info(info, n, f"{where}, field 'infos'")
        if now:
            root["info"] = now
        if later:
            nxt["info"] = later
    return TensorDict(root, batch_size=[n])


def _split_info(info: dict, n: int, where: str) -> tuple[dict, dict]:
    """Numeric info leaves: ``n + 1`` rows (reset + steps) -> (rows 0..n-1, rows 1..n);
    ``n`` rows (steps only) -> next only. Non-numeric leaves are left out."""
    now: dict[str, Any] = {}
    later: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, dict):
            sub_now, sub_later = _split_info(value, n, f"{where}/{key}")
            if sub_now:
                now[key] = sub_now
            if sub_later:
                later[key] = sub_later
            continue
        array = np.asarray(value)
        if array.dtype == object or array.dtype.kind in "USV" or array.ndim == 0:
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if tensor.shape[0] == n + 1:
            now[key], later[key] = tensor[:n], tensor[1:]
        elif tensor.shape[0] == n:
            later[key] = tensor
        else:
            raise ValueError(f"{where}/{key}: expected {n + 1} rows (reset and each step) or "
                             f"{n} (each step), found {tensor.shape[0]}")
    return now, later
