"""A summary of an offline dataset (``streamrl dataset info``): a local Minari dataset
(``minari:ID`` or its directory) or a D4RL-layout HDF5 file (``d4rl:PATH``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from streamrl.data.datasets.common import default_root
from streamrl.data.datasets.minari_data import minari_datasets_root

__all__ = ["dataset_info", "format_info"]


def dataset_info(spec: str) -> dict[str, Any]:
    """``id``, ``source``, ``path``, ``episodes``, ``steps``, ``observation_space``,
    ``action_space``, ``env_spec``, ``seeds`` (first and last, ``None`` when unknown),
    ``returns`` (mean/min/max over complete episodes), ``ref_min_score`` /
    ``ref_max_score``, ``algorithm_name``, ``description`` and ``cache`` (streamrl's
    memory-mapped copy, when one exists) of the dataset ``spec`` names: ``minari:ID``,
    ``d4rl:PATH`` or the path of a Minari dataset directory. ``FileNotFoundError`` /
    ``ValueError`` say what was expected and found."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"expected minari:ID, d4rl:PATH or a Minari dataset directory, "
                         f"found {spec!r}")
    if spec.startswith("d4rl:"):
        return _d4rl(Path(spec[len("d4rl:"):]))
    if spec.startswith("minari:"):
        dataset_id = spec[len("minari:"):]
        path = minari_datasets_root() / dataset_id
        if not (path / "data").is_dir():
            raise FileNotFoundError(f"minari:{dataset_id}: no local Minari dataset at "
                                    f"{str(path)!r} (MINARI_DATASETS_PATH or "
                                    f"~/.minari/datasets; 'minari download' fetches one)")
        return _minari(path)
    path = Path(spec)
    if path.is_dir():
        if path.name == "data" and (path / "metadata.json").is_file():
            path = path.parent
        if (path / "data" / "metadata.json").is_file():
            return _minari(path)
    raise FileNotFoundError(f"{spec!r}: expected minari:ID, d4rl:PATH or a Minari dataset "
                            f"directory (with data/metadata.json), found "
                            f"{'a directory without it' if path.is_dir() else 'no such directory'}")


def _returns(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}


def _cache(kind: str, dataset_id: str) -> str | None:
    path = default_root(kind) / dataset_id
    return str(path) if (path / "metadata.json").is_file() else None


def _minari(path: Path) -> dict[str, Any]:
    import minari

    dataset = minari.MinariDataset(path / "data")
    storage = dataset.storage
    meta = storage.metadata
    n = dataset.total_episodes
    returns = list(storage.apply(lambda ep: float(np.sum(ep["rewards"], dtype=np.float64))))
    seeds = [m.get("seed") for m in storage.get_episode_metadata([0, n - 1])] if n else []
    seeds = [None if s is None else int(s) for s in seeds]
    env_spec = dataset.env_spec
    dataset_id = str(meta.get("dataset_id", path.name))
    return {
        "id": dataset_id,
        "source": "minari",
        "path": str(path),
        "episodes": int(n),
        "steps": int(dataset.total_steps),
        "observation_space": str(dataset.observation_space),
        "action_space": str(dataset.action_space),
        "env_spec": None if env_spec is None else env_spec.id,
        "seeds": seeds,
        "returns": _returns(returns),
        "ref_min_score": meta.get("ref_min_score"),
        "ref_max_score": meta.get("ref_max_score"),
        "algorithm_name": meta.get("algorithm_name"),
        "description": meta.get("description"),
        "cache": _cache("minari", dataset_id),
    }


def _d4rl(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"d4rl:{path}: expected a local HDF5 file in D4RL's layout, "
                                f"found {'a directory' if path.is_dir() else 'no such file'}")
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"d4rl:{path}: expected an HDF5 file, found one h5py cannot open "
                         f"({exc})") from None
    with f:
        missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
        if missing:
            raise ValueError(f"d4rl:{path}: expected D4RL's datasets observations, actions, "
                             f"rewards, terminals; missing {missing} (found {sorted(f)})")
        rewards = np.asarray(f["rewards"][:], dtype=np.float64).reshape(-1)
        ends = np.asarray(f["terminals"][:], dtype=bool).reshape(-1)
        if "timeouts" in f:
            ends = ends | np.asarray(f["timeouts"][:], dtype=bool).reshape(-1)
        meta = {k: _plain(v[()]) for k, v in f["metadata"].items()
                if isinstance(v, h5py.Dataset)} if "metadata" in f else {}
        meta.update({k: _plain(v) for k, v in f.attrs.items()})
        obs, act = f["observations"], f["actions"]
        spaces = (f"{list(obs.shape[1:])} {obs.dtype}", f"{list(act.shape[1:])} {act.dtype}")
    stops = np.flatnonzero(ends) + 1
    sums: Any = np.add.reduceat(rewards, np.concatenate([[0], stops[:-1]])) if len(stops) else []
    return {
        "id": path.stem,
        "source": "d4rl",
        "path": str(path),
        "episodes": len(stops),
        "steps": len(rewards),
        "incomplete_steps": int(len(rewards) - (stops[-1] if len(stops) else 0)),
        "observation_space": spaces[0],
        "action_space": spaces[1],
        "env_spec": meta.get("env_name") or meta.get("env"),
        "seeds": [None, None],
        "returns": _returns([float(s) for s in sums]),
        "ref_min_score": meta.get("ref_min_score"),
        "ref_max_score": meta.get("ref_max_score"),
        "algorithm_name": meta.get("algorithm") or meta.get("algorithm_name"),
        "description": meta.get("description"),
        "cache": _cache("d4rl", path.stem),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 16 else f"array{list(value.shape)}"
    return value


def format_info(info: dict[str, Any]) -> str:
    """:func:`dataset_info`'s summary as aligned ``key: value`` lines."""
    returns = info["returns"]
    seeds = info["seeds"]
    lines = [
        ("id", info["id"]),
        ("source", f"{info['source']} ({info['path']})"),
        ("episodes", info["episodes"]),
        ("steps", info["steps"] if not info.get("incomplete_steps") else
         f"{info['steps']} ({info['incomplete_steps']} in an unfinished last episode)"),
        ("observation space", info["observation_space"]),
        ("action space", info["action_space"]),
        ("env spec", info["env_spec"] or "unknown"),
        ("seeds", "unknown" if not seeds or seeds[0] is None else
         f"first {seeds[0]}, last {seeds[-1]}"),
        ("return", "no complete episode" if returns is None else
         f"mean {returns['mean']:.2f}, min {returns['min']:.2f}, max {returns['max']:.2f}"),
        ("ref scores", "none" if info["ref_min_score"] is None and info["ref_max_score"] is None
         else f"min {info['ref_min_score']}, max {info['ref_max_score']}"),
        ("algorithm", info["algorithm_name"] or "unknown"),
        ("description", info["description"] or ""),
        ("cache", info["cache"] or "none (made on first load)"),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in lines)
