"""Write transitions (a replay buffer's or collector batches') as a Minari dataset."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from streamrl.data.datasets.minari_data import _import_minari, minari_datasets_root

__all__ = ["write_minari_dataset"]

_TRAJ_KEYS = (("collector", "traj_ids"), ("episode",))


def write_minari_dataset(
    data: Any,
    dataset_id: str,
    *,
    env: Any = None,
    observation_space: Any = None,
    action_space: Any = None,
    seeds: Sequence[int | None] | None = None,
    drop_incomplete: bool = True,
    root: str | os.PathLike | None = None,
    algorithm_name: str | None = None,
    author: str | None = None,
    author_email: str | None = None,
    code_permalink: str | None = None,
    description: str | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    data_format: str = "hdf5",
):
    """Write transitions as a Minari dataset that ``minari.load_dataset(dataset_id)`` reads.

    ``data`` is a replay buffer (its stored rows, oldest first) or a TensorDict of
    transitions with batch dims ``[N]`` or ``[envs, T]`` (collector batches) and the keys
    ``observation``, ``action``, ``("next", "observation")``, ``("next", "reward")`` and
    ``("next", "terminated")`` (or ``("next", "done")``); ``("next", "truncated")`` is
    optional. Rows are grouped into episodes by ``("collector", "traj_ids")`` or
    ``episode`` when present, otherwise cut after each done step (each env's row separately
    for ``[envs, T]``); the rows of an episode must follow each other (each step's next
    observation is the following step's observation).

    Args:
        data: a replay buffer or a TensorDict of transitions.
        dataset_id: the Minari id (``namespace/name-v0``); must not exist yet.
        env: the env the data comes from: a gymnasium id, ``EnvSpec`` or env; its spec is
            saved (``dataset.recover_environment()``) and its spaces checked against the data.
        observation_space, action_space: the spaces, when ``env`` is not given (or to
            override its spaces).
        seeds: the reset seed of each written episode (``None`` entries: unknown).
        drop_incomplete: leave out episodes whose last step is neither terminated nor
            truncated (default); ``False``: mark their last step truncated.
        root: the Minari datasets directory (default: ``$MINARI_DATASETS_PATH`` or
            ``~/.minari/datasets``, where ``minari.load_dataset`` looks).
        algorithm_name, author, author_email, code_permalink, description, ref_min_score,
            ref_max_score: Minari's metadata.
        data_format: Minari's storage format (``"hdf5"`` or ``"arrow"``).

    Returns:
        the written ``minari.MinariDataset``.

    The dataset is written in a temporary directory beside its final place and renamed there
    when complete, so a failure leaves nothing behind.
    """
    minari = _import_minari()
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    env_spec = _env_spec(env)
    if env_spec is not None and (observation_space is None or action_space is None):
        made = gym.make(env_spec)
        observation_space = observation_space or made.observation_space
        action_space = action_space or made.action_space
        made.close()
    if observation_space is None or action_space is None:
        raise ValueError("expected env= or both observation_space= and action_space=, "
                         "found neither")
    episodes = _episodes(_rows(data), drop_incomplete)
    if not episodes:
        raise ValueError("no complete episode to write: expected at least one episode ending "
                         "with a terminated or truncated step (or drop_incomplete=False)")
    if seeds is not None and len(seeds) != len(episodes):
        raise ValueError(f"seeds: expected one per written episode ({len(episodes)}), found "
                         f"{len(seeds)}")
    buffers = []
    for i, ep in enumerate(episodes):
        where = f"episode {i}"
        obs = torch.cat([_leaf(ep, "observation", where)[:1],
                         _leaf(ep, ("next", "observation"), where)])
        buffers.append(EpisodeBuffer(
            id=i,
            seed=None if seeds is None else seeds[i],
            observations=_fit(obs, observation_space, f"{where}, field 'observation'"),
            actions=_fit(_leaf(ep, "action", where), action_space, f"{where}, field 'action'"),
            rewards=_leaf(ep, ("next", "reward"), where).reshape(-1).numpy(),
            terminations=ep["_terminated"].numpy(),
            truncations=ep["_truncated"].numpy(),
        ))

    base = Path(root) if root is not None else minari_datasets_root()
    dest = base / dataset_id
    if dest.exists():
        raise ValueError(f"dataset {dataset_id!r} already exists at {str(dest)!r}: expected a "
                         f"new id (Minari datasets are not overwritten)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        storage = MinariStorage.new(tmp / "data", observation_space=observation_space,
                                    action_space=action_space, env_spec=env_spec,
                                    data_format=data_format)
        storage.update_metadata(_metadata(
            dataset_id, minari.__version__, algorithm_name=algorithm_name,
            author={author} if author else None,
            author_email={author_email} if author_email else None,
            code_permalink=code_permalink, description=description,
            ref_min_score=ref_min_score, ref_max_score=ref_max_score))
        storage.update_episodes(buffers)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return minari.MinariDataset(dest / "data")


def _metadata(dataset_id: str, version: str, **fields: Any) -> dict[str, Any]:
    out = {"dataset_id": dataset_id, "minari_version": version}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def _env_spec(env: Any):
    if env is None:
        return None
    import gymnasium as gym

    if isinstance(env, gym.envs.registration.EnvSpec):
        return env
    if isinstance(env, str):
        return gym.spec(env)
    if isinstance(env, gym.Env):
        if env.spec is None:
            raise ValueError("env: expected a registered gymnasium env (with a spec), found "
                             "one without (pass observation_space/action_space instead)")
        return env.spec
    raise TypeError(f"env: expected a gymnasium id, EnvSpec or env, found "
                    f"{type(env).__name__}")


def _rows(data: Any) -> TensorDictBase:
    """The rows of ``data``: ``[N]`` or ``[envs, T]``."""
    if isinstance(data, TensorDictBase):
        if data.batch_dims not in (1, 2):
            raise ValueError(f"expected transitions with batch dims [N] or [envs, T], found "
                             f"batch size {list(data.batch_size)}")
        return data
    storage = getattr(data, "storage", None)
    if storage is None or not hasattr(storage, "max_size"):
        raise TypeError(f"expected a replay buffer or a TensorDict, found "
                        f"{type(data).__name__}")
    n = len(storage)
    if n == 0:
        raise ValueError("the replay buffer is empty: nothing to write")
    # oldest first: a full circular storage starts at its write head
    start = storage.head % storage.max_size if n == storage.max_size else 0
    index = (torch.arange(n) + start) % storage.max_size
    rows = storage.get(index)
    if not isinstance(rows, TensorDictBase):
        raise TypeError(f"expected a replay buffer of TensorDicts, found items of type "
                        f"{type(rows).__name__}")
    return rows.reshape(-1)


def _flags(rows: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
    keys = set(rows.keys(True, True))
    if ("next", "terminated") in keys:
        terminated = rows["next", "terminated"]
    elif ("next", "done") in keys:
        terminated = rows["next", "done"]
    else:
        raise ValueError(f"no terminal flags: expected ('next', 'terminated') or ('next', "
                         f"'done'), found keys {sorted(map(str, keys))}")
    if ("next", "truncated") in keys:
        truncated = rows["next", "truncated"]
    else:
        truncated = torch.zeros_like(terminated)
    shape = rows.batch_size
    return terminated.reshape(shape).to(torch.bool), truncated.reshape(shape).to(torch.bool)


def _episodes(rows: TensorDictBase, drop_incomplete: bool) -> list[TensorDictBase]:
    terminated, truncated = _flags(rows)
    rows = rows.clone(False)
    rows.set("_terminated", terminated)
    rows.set("_truncated", truncated)
    traj_key = next((k for k in _TRAJ_KEYS if k in rows.keys(True, True)), None)
    streams = [rows] if rows.batch_dims == 1 else list(rows.unbind(0))
    pieces: list[TensorDictBase] = []
    for stream in streams:
        if traj_key is not None:
            ids = stream.get(traj_key).reshape(-1)
            for tid in dict.fromkeys(ids.tolist()):
                pieces.append(stream[ids == tid])
        else:
            ends = (stream["_terminated"] | stream["_truncated"]).nonzero().reshape(-1).tolist()
            start = 0
            for end in ends:
                pieces.append(stream[start:end + 1])
                start = end + 1
            if start < stream.batch_size[0]:
                pieces.append(stream[start:])
    out = []
    for ep in pieces:
        ended = bool(ep["_terminated"][-1] or ep["_truncated"][-1])
        if not ended:
            if drop_incomplete:
                continue
            ep = ep.clone()
            ep["_truncated"][-1] = True
        out.append(ep)
    for i, ep in enumerate(out):
        _check_consecutive(ep, f"episode {i}")
    return out


def _leaf(ep: TensorDictBase, key, where: str) -> Any:
    try:
        return ep.get(key)
    except KeyError:
        raise ValueError(f"{where}: expected field {key!r}, found keys "
                         f"{sorted(map(str, ep.keys(True, True)))}") from None


def _check_consecutive(ep: TensorDictBase, where: str) -> None:
    flags = ep["_terminated"] | ep["_truncated"]
    if bool(flags[:-1].any()):
        step = int(flags[:-1].nonzero()[0])
        raise ValueError(f"{where}: expected its steps to end only at the last one, found an "
                         f"end at step {step} of {ep.batch_size[0]} (traj ids mix episodes)")
    now = _leaf(ep, "observation", where)
    nxt = _leaf(ep, ("next", "observation"), where)
    if now.shape[0] < 2:
        return
    pairs = ([(nxt.get(k), now.get(k)) for k in now.keys(True, True)]
             if isinstance(now, TensorDictBase) else [(nxt, now)])
    rows = torch.zeros(now.shape[0] - 1, dtype=torch.bool)
    for a, b in pairs:
        rows |= (a[:-1] != b[1:]).reshape(rows.shape[0], -1).any(-1)
    if bool(rows.any()):
        step = int(rows.nonzero()[0])
        raise ValueError(f"{where}: expected each step's ('next', 'observation') to be the "
                         f"following step's 'observation', found a difference after step "
                         f"{step} (rows are not consecutive steps of one episode)")


def _fit(value: Any, space: Any, where: str) -> Any:
    """``value`` as an array of ``space``'s shape and dtype (a one-hot action of a Discrete
    space becomes its index; a TensorDict for a Dict space becomes a dict of arrays);
    ``ValueError`` naming the field if it cannot."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        if not isinstance(value, TensorDictBase) or set(value.keys()) != set(space.spaces):
            found = sorted(value.keys()) if isinstance(value, TensorDictBase) else "a tensor"
            raise ValueError(f"{where}: expected the keys of the Dict space "
                             f"{sorted(space.spaces)}, found {found}")
        return {k: _fit(value.get(k), sub, f"{where[:-1]}/{k}'")
                for k, sub in space.spaces.items()}
    if isinstance(value, TensorDictBase):
        raise ValueError(f"{where}: expected a tensor for space {space}, found a TensorDict "
                         f"with keys {sorted(value.keys())}")
    rows = value.shape[0]
    if (isinstance(space, gym.spaces.Discrete) and value.ndim == 2
            and value.shape[1] == int(space.n)):
        value = value.argmax(-1) + int(space.start)
    expected = (rows, *space.shape)
    if tuple(value.shape) != expected:
        raise ValueError(f"{where}: expected shape {list(expected)} (space {space}), found "
                         f"{list(value.shape)}")
    array = value.detach().cpu().numpy()
    want = np.dtype(space.dtype)
    if array.dtype != want:
        if not np.can_cast(array.dtype, want, casting="same_kind"):
            raise ValueError(f"{where}: expected dtype {want} (space {space}), found "
                             f"{array.dtype}")
        array = array.astype(want)
    return array
