"""The base of offline datasets: a read-only replay buffer over a memory-mapped cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDictBase

from streamrl.data.datasets import _cache
from streamrl.data.replay_buffers.samplers import Sampler
from streamrl.data.replay_buffers.storages import LazyMemmapStorage
from streamrl.data.replay_buffers.tensordict_buffer import TensorDictReplayBuffer
from streamrl.data.replay_buffers.writers import ImmutableDatasetWriter, Writer

__all__ = ["BaseDatasetExperienceReplay", "default_root"]


def default_root(kind: str) -> Path:
    """``$STREAMRL_DATASETS_ROOT/<kind>``, or ``~/.cache/streamrl/<kind>``."""
    base = os.environ.get("STREAMRL_DATASETS_ROOT")
    if base:
        return Path(base) / kind
    return Path(os.path.expanduser("~")) / ".cache" / "streamrl" / kind


class BaseDatasetExperienceReplay(TensorDictReplayBuffer):
    """A :class:`TensorDictReplayBuffer` over a fixed dataset cached under ``root``.

    Subclasses convert their source once into ``data_path`` (a memory-mapped storage and a
    ``metadata.json``); later opens reopen the cache without reading the source again. The
    writer defaults to :class:`ImmutableDatasetWriter`, so ``extend`` raises; to mix the
    dataset with fresh data, sample both (e.g. a :class:`ReplayBufferEnsemble`).
    """

    def __init__(
        self,
        *,
        data_path: Path,
        storage: LazyMemmapStorage,
        metadata: dict[str, Any],
        batch_size: int | None,
        sampler: Sampler | None = None,
        writer: Writer | None = None,
        collate_fn: Callable | None = None,
        pin_memory: bool = False,
        prefetch: int | None = None,
        transform: Callable | None = None,
    ) -> None:
        self._data_path = Path(data_path)
        self._memmap = storage
        self._float64_cast = False
        self.metadata = metadata
        super().__init__(
            storage=storage,
            sampler=sampler,
            writer=writer if writer is not None else ImmutableDatasetWriter(),
            collate_fn=collate_fn,
            pin_memory=pin_memory,
            prefetch=prefetch,
            batch_size=batch_size,
            transform=transform,
        )

    @property
    def data_path(self) -> Path:
        """The cache directory of this dataset."""
        return self._data_path

    @property
    def data_path_root(self) -> Path:
        """The cache directory of this dataset (TorchRL's name; no split variant here)."""
        return self._data_path

    def delete(self) -> None:
        """Close the buffer and remove its cache (the source is left alone)."""
        self.close()
        _cache.remove_cache(self._data_path)

    def cast_float64(self) -> BaseDatasetExperienceReplay:
        """Read the dataset's float64 fields as float32: sampled batches are cast (a
        transform added after the others) and :meth:`check_env` compares the cast dtypes.
        For a float32 network fed from an env whose float64 observations are cast too
        (``DoubleToFloat``), e.g. a MuJoCo dataset written by ``minari``. Idempotent; the
        cache keeps the stored dtypes.
        """
        if not self._float64_cast:
            self._float64_cast = True
            self.append_transform(_cast_float64)
        return self

    def check_env(self, env: Any) -> None:
        """Raise ``ValueError`` if ``env``'s observations or actions do not fit the dataset.

        ``env`` is a gymnasium env (its ``observation_space``/``action_space`` are compared)
        or an env with ``observation_spec``/``action_spec`` (a streamrl env). Shapes and
        dtypes of ``observation`` (each entry of a dict observation) and ``action`` are
        compared with the stored ones (after :meth:`cast_float64`, float64 ones as float32);
        the error names the field, the expected and the found.
        """
        stored = self._memmap.schema()
        if self._float64_cast:
            stored = {k: (shape, torch.float32 if dtype == torch.float64 else dtype)
                      for k, (shape, dtype) in stored.items()}
        for key, (shape, dtype) in _env_fields(env).items():
            if key not in stored:
                raise ValueError(f"dataset field {'/'.join(key)!r}: the env has it (shape "
                                 f"{list(shape)}, {dtype}), the dataset does not; found fields "
                                 f"{sorted('/'.join(k) for k in stored)}")
            found_shape, found_dtype = stored[key]
            if tuple(found_shape) != tuple(shape) or found_dtype != dtype:
                raise ValueError(f"dataset field {'/'.join(key)!r} does not match the env: "
                                 f"expected shape {list(shape)} and {dtype} (the env's), "
                                 f"found shape {list(found_shape)} and {found_dtype}")


def _cast_float64(data: TensorDictBase) -> TensorDictBase:
    """``data`` with its float64 leaves cast to float32 (the others as they are)."""
    cast = data.apply(lambda x: x.float() if x.dtype == torch.float64 else x)
    assert cast is not None  # apply returns a TensorDict unless every leaf maps to None
    return cast


def _torch_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return torch.from_numpy(np.zeros((), dtype=dtype)).dtype


def _space_fields(space: Any, prefix: tuple[str, ...]) -> dict[tuple[str, ...], tuple]:
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        out: dict[tuple[str, ...], tuple] = {}
        for name, sub in space.spaces.items():
            out.update(_space_fields(sub, (*prefix, name)))
        return out
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete,
                          gym.spaces.MultiBinary)):
        return {prefix: (tuple(space.shape or ()), _torch_dtype(space.dtype))}
    raise ValueError(f"field {'/'.join(prefix)!r}: unsupported space {space!r} (expected Box, "
                     f"Discrete, MultiDiscrete, MultiBinary or Dict)")


def _env_fields(env: Any) -> dict[tuple[str, ...], tuple]:
    if hasattr(env, "observation_spec") and hasattr(env, "action_spec"):
        fields: dict[tuple[str, ...], tuple] = {}
        obs = env.observation_spec
        for key in obs.keys(True, True):
            key = (key,) if isinstance(key, str) else tuple(key)
            leaf = obs[key]
            fields[key] = (tuple(leaf.shape[len(env.batch_size):]), leaf.dtype)
        act = env.action_spec
        fields[("action",)] = (tuple(act.shape[len(env.batch_size):]), act.dtype)
        return fields
    if hasattr(env, "observation_space") and hasattr(env, "action_space"):
        return {**_space_fields(env.observation_space, ("observation",)),
                **_space_fields(env.action_space, ("action",))}
    raise TypeError(f"expected a gymnasium env or an env with observation_spec/action_spec, "
                    f"found {type(env).__name__}")
