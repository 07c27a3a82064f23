"""Recording Minari datasets: episodes of a policy played in a gym env, or the replay buffer
held in an off-policy checkpoint (``streamrl dataset create``)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from streamrl.data.datasets import write_minari_dataset
from streamrl.data.datasets.minari_data import minari_datasets_root
from streamrl.data.replay_buffers import LazyTensorStorage
from streamrl.envs import GymEnv
from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.train.driver import torch_threads

__all__ = ["Recording", "check_dataset_id", "dataset_from_replay", "record_dataset"]

# Minari's form of an id: (namespace/)name-vN (the version is required to load it)
_ID = re.compile(r"(?:[-\w][-\w/]*[-\w]+/)?[-\w]+?-v\d+")
_EXPLORATION = {"deterministic": ExplorationType.DETERMINISTIC,
                "random": ExplorationType.RANDOM}


@dataclass
class Recording:
    """What :func:`record_dataset` / :func:`dataset_from_replay` wrote: the Minari dataset,
    its directory, and each written episode's return, length and reset seed."""

    dataset: Any
    path: Path
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)


def check_dataset_id(dataset_id: str, *, root: str | Path | None = None,
                     force: bool = False) -> Path:
    """The directory ``dataset_id`` goes to under Minari's root; ``ValueError`` for an id
    not of Minari's form ``(namespace/)name-vN``, or one that exists (unless ``force``)."""
    if not isinstance(dataset_id, str) or not _ID.fullmatch(dataset_id):
        raise ValueError(f"dataset id {dataset_id!r}: expected Minari's form "
                         f"(namespace/)name-vN, e.g. pendulum/random-v0")
    dest = (Path(root) if root is not None else minari_datasets_root()) / dataset_id
    if dest.exists() and not force:
        raise ValueError(f"dataset {dataset_id!r} already exists at {str(dest)!r}: expected "
                         f"a new id (or --force to replace it)")
    return dest


def _check_env_id(env_id: str) -> None:
    import gymnasium as gym

    try:
        gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"unknown env {env_id!r}: expected a registered gymnasium id "
                         f"({type(exc).__name__}: {exc})") from None


def _act(env: GymEnv, policy: nn.Module | str, noise: float) -> Callable:
    """``td -> td`` with ``action`` set: uniform from the action spec for ``"random"``,
    else ``policy`` on float32 inputs (float64 observations cast), plus Gaussian noise of
    ``noise`` half-ranges clipped to the bounds."""
    spec: Any = env.action_spec
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if noise and not (isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor)):
        raise ValueError(f"noise: expected a bounded continuous action space, found "
                         f"{type(spec).__name__}")

    def act(td: TensorDictBase) -> TensorDictBase:
        if isinstance(policy, str):
            action = spec.rand()
        else:
            inputs = td.apply(lambda t: t.float() if t.dtype == torch.float64 else t)
            action = policy(inputs).get("action")
        if noise and low is not None and high is not None:
            action = action + noise * (high - low) / 2 * torch.randn_like(action)
            action = torch.maximum(torch.minimum(action, high), low)
        td.set("action", action.to(spec.dtype))
        return td

    return act


def _write(dest: Path, dataset_id: str, root: str | Path | None,
           write: Callable[[Path | str | None], Any]) -> Any:
    """``write(root)``; over an existing ``dest`` (``force``): written under a temporary
    root beside it first, then swapped in, so a failed write leaves the old dataset."""
    if not dest.exists():
        return write(root)
    base = Path(root) if root is not None else minari_datasets_root()
    tmp_root = Path(tempfile.mkdtemp(prefix=".streamrl-force-", dir=base))
    try:
        write(tmp_root)
        old = tmp_root / ".replaced"
        os.replace(dest, old)
        os.replace(tmp_root / dataset_id, dest)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    import minari

    return minari.MinariDataset(dest / "data")


def _max_steps(env_id: str) -> int:
    import gymnasium as gym

    return gym.spec(env_id).max_episode_steps or 100_000


def record_dataset(env_id: str, policy: nn.Module | str, episodes: int, seed: int,
                   dataset_id: str, *, exploration: str = "deterministic",
                   noise: float = 0.0, algorithm_name: str | None = None,
                   description: str | None = None, ref_min_score: float | None = None,
                   ref_max_score: float | None = None, root: str | Path | None = None,
                   force: bool = False, max_steps: int | None = None) -> Recording:
    """Play ``episodes`` episodes of ``policy`` in gym env ``env_id`` and write them as the
    Minari dataset ``dataset_id``.

    ``policy`` is ``"random"`` (uniform actions from the action spec) or an actor module
    (``observation -> action``, e.g. from
    :func:`~streamrl.train.checkpoint_policy.policy_from_checkpoint`), run in
    ``exploration`` mode (``"deterministic"``: the distribution's mode; ``"random"``:
    sampled), with Gaussian ``noise`` (in half-ranges of the action bounds) added.
    Episode ``k`` starts from ``reset(seed=seed + k)``; the seeds are written per episode,
    the torch RNG (random actions, sampling, noise) is seeded with ``seed`` and restored
    afterwards, as is torch's thread count (one while the episodes are played). The env's
    observations are written as the env gives them (float64 ones are cast to float32 for
    the policy only). ``description`` defaults to how the data was made.
    ``force``: an existing dataset of that id is replaced once the episodes are played
    (the new one is written beside it and swapped in: a failure leaves the old one).
    """
    if exploration not in _EXPLORATION:
        raise ValueError(f"exploration: expected one of {sorted(_EXPLORATION)}, found "
                         f"{exploration!r}")
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes: expected a positive int, found {episodes!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed: expected an int, found {seed!r}")
    if not noise >= 0:
        raise ValueError(f"noise: expected a number >= 0, found {noise!r}")
    if isinstance(policy, str) and policy != "random":
        raise ValueError(f"policy: expected 'random' or an actor module, found {policy!r}")
    _check_env_id(env_id)
    dest = check_dataset_id(dataset_id, root=root, force=force)
    steps = max_steps or _max_steps(env_id)
    env = GymEnv(env_id)
    rollouts: list[TensorDictBase] = []
    try:
        act = _act(env, policy, noise)
        # one row at a time: a second intra-op thread only waits (3 HalfCheetah episodes on
        # a busy 2-core machine: 7.1 s with two threads, 4.8 s with one, startup included)
        with torch_threads(1), torch.random.fork_rng(devices=[]), torch.no_grad(), \
                set_exploration_type(_EXPLORATION[exploration]):
            torch.manual_seed(seed)
            for k in range(episodes):
                env.set_seed(seed + k)
                rollout = env.rollout(steps, act, break_when_any_done=True)
                if not bool(rollout["next", "done"][-1].any()):
                    raise RuntimeError(f"episode {k} (seed {seed + k}) did not end within "
                                       f"{steps} steps")
                rollouts.append(rollout.select("observation", "action", ("next", "observation"),
                                               ("next", "reward"), ("next", "terminated"),
                                               ("next", "truncated")))
    finally:
        env.close()
    who = "uniformly random actions" if isinstance(policy, str) else (
        f"the {algorithm_name or 'checkpoint'} policy, {exploration} actions"
        + (f" plus Gaussian noise of {noise} half-ranges" if noise else ""))
    if description is None:
        description = (f"{episodes} episodes of {env_id} played with {who}; episode k reset "
                       f"with seed {seed} + k (streamrl dataset create)")
    data = TensorDict.cat(rollouts, 0)
    seeds: list[int | None] = [seed + k for k in range(episodes)]
    dataset = _write(dest, dataset_id, root, lambda where: write_minari_dataset(
        data, dataset_id, env=env_id, seeds=seeds, root=where,
        algorithm_name=algorithm_name or ("random" if isinstance(policy, str) else None),
        description=description, ref_min_score=ref_min_score, ref_max_score=ref_max_score))
    return Recording(dataset, dest,
                     [float(r["next", "reward"].double().sum()) for r in rollouts],
                     [r.batch_size[0] for r in rollouts], seeds)


def replay_rows(buffer_state: dict[str, Any], *, where: str = "buffer") -> TensorDictBase:
    """The rows of a replay buffer's ``state_dict`` (``state["buffer"]`` of an off-policy
    checkpoint), oldest first. When the buffer has wrapped, the oldest trajectory lost its
    first steps to the overwrite: its rows are left out (by ``("collector", "traj_ids")``).
    """
    storage_state = buffer_state.get("storage") if isinstance(buffer_state, dict) else None
    if not isinstance(storage_state, dict):
        found = sorted(buffer_state) if isinstance(buffer_state, dict) else type(buffer_state)
        raise ValueError(f"{where}: expected a replay buffer state (with a 'storage' entry), "
                         f"found {found}")
    if not storage_state.get("len"):
        raise ValueError(f"{where}: the replay buffer is empty, nothing to write")
    if storage_state.get("is_td") is not True:
        raise ValueError(f"{where}: expected a replay buffer of TensorDict rows, found one "
                         f"of plain tensors")
    storage = LazyTensorStorage(int(storage_state["max_size"]))
    storage.load_state_dict({**storage_state, "type": "LazyTensorStorage"})
    n = len(storage)
    start = storage.head % storage.max_size if n == storage.max_size else 0
    rows = storage.get((torch.arange(n) + start) % storage.max_size)
    if not isinstance(rows, TensorDict):
        rows = rows.to_tensordict()
    # wrapped: more rows were inserted than it holds (the limiter counts inserts; without
    # one, a full buffer is taken as wrapped)
    limiter = buffer_state.get("rate_limiter")
    inserted = limiter.get("inserts") if isinstance(limiter, dict) else None
    wrapped = n == storage.max_size and (inserted is None or int(inserted) > n)
    traj = ("collector", "traj_ids")
    if wrapped and traj in rows.keys(True, True):
        ids = rows.get(traj).reshape(-1)
        rows = rows[ids != ids[0]]
    return rows


def dataset_from_replay(buffer_state: dict[str, Any], env_id: str, dataset_id: str, *,
                        algorithm_name: str | None = None, description: str | None = None,
                        ref_min_score: float | None = None,
                        ref_max_score: float | None = None, root: str | Path | None = None,
                        force: bool = False, source: str = "a checkpoint") -> Recording:
    """Write the replay buffer of an off-policy checkpoint (``buffer_state``, its
    ``state["buffer"]``) as the Minari dataset ``dataset_id`` of env ``env_id`` (a
    medium-replay dataset): rows oldest first, grouped into episodes by their collector
    trajectory ids; the episode still running at the end is left out, and so is a first one
    cut by the buffer's wrap-around. Seeds are unknown (``None``)."""
    _check_env_id(env_id)
    dest = check_dataset_id(dataset_id, root=root, force=force)
    rows = replay_rows(buffer_state)
    if description is None:
        description = (f"the replay buffer of {source} ({rows.batch_size[0]} rows, oldest "
                       f"first; partial first/last episodes left out) in {env_id} "
                       f"(streamrl dataset create --from-replay)")
    keys = [k for k in ("observation", "action", ("next", "observation"), ("next", "reward"),
                        ("next", "terminated"), ("next", "truncated"), ("next", "done"),
                        ("collector", "traj_ids")) if k in rows.keys(True, True)]
    dataset = _write(dest, dataset_id, root, lambda where: write_minari_dataset(
        rows.select(*keys), dataset_id, env=env_id, root=where, algorithm_name=algorithm_name,
        description=description, ref_min_score=ref_min_score, ref_max_score=ref_max_score))
    returns, lengths = [], []
    for ep in dataset.iterate_episodes():
        returns.append(float(ep.rewards.sum()))
        lengths.append(len(ep.rewards))
    return Recording(dataset, dest, returns, lengths, [None] * len(returns))
