"""OfflineToOnlineReplayBuffer: a fixed offline dataset and a growing online buffer, sampled
together in a set proportion (offline-to-online fine-tuning)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.replay_buffers.rate_limiters import RateLimiter
from streamrl.data.replay_buffers.replay_buffer import ReplayBuffer
from streamrl.data.replay_buffers.storages import LazyTensorStorage, Storage

__all__ = ["OfflineToOnlineReplayBuffer"]


class OfflineToOnlineReplayBuffer:
    """A read-only offline dataset plus an online buffer that :meth:`extend` fills;
    :meth:`sample` draws exactly ``round(offline_fraction * n)`` rows from the dataset and the
    rest from the online buffer, as one ``[n]`` TensorDict (all from the dataset while the
    online buffer is empty; all online once the fraction is annealed to 0). TorchRL 0.14's
    class of the same name and arguments.

    The online rows keep only the dataset's keys (those the collected batches have too),
    cast to the dataset's dtypes, so the two halves concatenate: a collector's
    ``("collector", ...)`` entries and a policy's extra outputs are dropped, as TorchRL's
    offline-to-online hook does. A batch missing one of the dataset's keys is refused,
    naming it (``ValueError``).

    ``rate_limiter`` (a streamrl addition, e.g. a
    :class:`~streamrl.data.SampleToInsertRatio`) counts the online inserts and the sampled
    rows of whole batches, so the buffer drops into
    :func:`~streamrl.ops.build_offpolicy_graph` in place of a ratio-limited one; its waits
    last at most ``rate_limit_timeout`` seconds. :meth:`state_dict` holds the online
    buffer, the limiter, the fraction and the dataset sampler's generator, not the dataset's
    rows.

    Args:
        offline_dataset: a replay buffer holding the dataset (e.g. a
            :class:`~streamrl.data.datasets.MinariExperienceReplay`) or an id for
            :func:`~streamrl.data.datasets.load_dataset` (``"minari:ID"``, ``"d4rl:PATH"``),
            built with ``batch_size`` and ``dataset_kwargs`` and closed with this buffer.
        online_storage: the online buffer's storage; or ``online_capacity`` rows of a
            :class:`LazyTensorStorage` (one of the two).
        offline_fraction: the share of each batch from the dataset, in (0, 1).
        batch_size: :meth:`sample`'s default size.
        transform: applied to each sampled batch.

    >>> from tensordict import TensorDict
    >>> offline = ReplayBuffer(storage=LazyTensorStorage(100))
    >>> _ = offline.extend(TensorDict({"observation": torch.zeros(100, 3)}, [100]))
    >>> rb = OfflineToOnlineReplayBuffer(offline, online_capacity=50, batch_size=8)
    >>> _ = rb.extend(TensorDict({"observation": torch.ones(4, 3), "extra": torch.ones(4)}, [4]))
    >>> rb.sample()["observation"][:, 0].tolist()  # 4 offline rows, then 4 online ones
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, offline_dataset: Any, *, online_storage: Storage | None = None,
                 online_capacity: int | None = None, offline_fraction: float = 0.5,
                 batch_size: int | None = None, transform: Callable | None = None,
                 rate_limiter: RateLimiter | None = None,
                 rate_limit_timeout: float | None = None, **dataset_kwargs: Any):
        if (online_storage is None) == (online_capacity is None):
            raise ValueError("pass one of online_storage or online_capacity, found "
                             f"{'both' if online_storage is not None else 'neither'}")
        if isinstance(offline_fraction, bool) or not isinstance(offline_fraction, (int, float)) \
                or not 0.0 < offline_fraction < 1.0:
            raise ValueError(f"offline_fraction must be in (0, 1), found {offline_fraction!r}")
        if batch_size is not None and (isinstance(batch_size, bool)
                                       or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, found {batch_size!r}")
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiter):
            raise TypeError(f"rate_limiter must be a RateLimiter, found "
                            f"{type(rate_limiter).__name__}")
        self._owns_dataset = isinstance(offline_dataset, str)
        if self._owns_dataset:
            from streamrl.data.datasets import load_dataset

            if batch_size is None and "batch_size" not in dataset_kwargs:
                raise ValueError("batch_size is needed to build the dataset "
                                 f"{offline_dataset!r}")
            dataset_kwargs.setdefault("batch_size", batch_size)
            offline_dataset = load_dataset(offline_dataset, **dataset_kwargs)
        elif dataset_kwargs:
            raise TypeError(f"dataset keyword arguments ({sorted(dataset_kwargs)}) are for a "
                            "dataset given by its id; pass them to the dataset instead")
        if not callable(getattr(offline_dataset, "sample", None)):
            raise TypeError(f"offline_dataset must be a replay buffer or a dataset id, found "
                            f"{type(offline_dataset).__name__}")
        if len(offline_dataset) == 0:
            raise ValueError("offline_dataset is empty")
        self._offline = offline_dataset
        storage = online_storage if online_storage is not None else LazyTensorStorage(
            int(online_capacity))  # type: ignore[arg-type]  # checked above: one is given
        self._online = ReplayBuffer(storage=storage)
        self._base_fraction = self._fraction = float(offline_fraction)
        self._batch_size = batch_size
        self._transform = transform
        self._rate_limiter = rate_limiter
        self.rate_limit_timeout = rate_limit_timeout
        self._layout: dict[Any, torch.dtype] | None = None  # the dataset's keys and dtypes
        self._lock = threading.Lock()  # extend and sample from different threads

    # ------------------------------------------------------------------ the two buffers
    @property
    def offline_buffer(self) -> Any:
        """The dataset."""
        return self._offline

    @property
    def online_buffer(self) -> ReplayBuffer:
        """The buffer of the rows :meth:`extend` added."""
        return self._online

    @property
    def offline_fraction(self) -> float:
        """The share of each batch drawn from the dataset now (after :meth:`anneal`)."""
        return self._fraction

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The limiter of online inserts and sampled rows, if any."""
        return self._rate_limiter

    @property
    def write_count(self) -> int:
        """Rows added by :meth:`extend` so far."""
        return self._online.write_count

    def __len__(self) -> int:
        return len(self._offline) + len(self._online)

    def anneal(self, step: int, total_steps: int) -> None:
        """Lower the offline fraction linearly from its start to 0 at ``total_steps``."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, found {total_steps!r}")
        self._fraction = self._base_fraction * max(0.0, 1.0 - step / total_steps)

    # ------------------------------------------------------------------ writing and reading
    def extend(self, data: TensorDictBase) -> torch.Tensor:
        """Add ``data``'s rows (their dataset keys) to the online buffer; returns their
        indices there. Waits for the rate limiter first, when there is one."""
        rows = self._aligned(data)
        n = rows.shape[0] if rows.batch_dims else 1
        if self._rate_limiter is not None and n:
            self._rate_limiter.insert(n, timeout=self.rate_limit_timeout)
        try:
            with self._lock:
                return self._online.extend(rows)
        except BaseException:
            if self._rate_limiter is not None and n:
                self._rate_limiter._undo("insert", n)
            raise

    def sample(self, batch_size: int | None = None) -> TensorDictBase:
        """A ``[batch_size]`` batch: the dataset's share first, then the online rows."""
        n = batch_size if batch_size is not None else self._batch_size
        if n is None:
            raise ValueError("sample() needs a batch_size (none given here or at "
                             "construction)")
        if self._rate_limiter is not None:
            self._rate_limiter.sample(n, timeout=self.rate_limit_timeout)
        try:
            with self._lock:
                n_offline = round(self._fraction * n)
                if len(self._online) == 0 or n_offline >= n:
                    out = self._from_offline(n)
                elif n_offline == 0:
                    out = self._online.sample(n)
                else:  # the dataset's rows with the keys the online rows kept
                    online = self._online.sample(n - n_offline)
                    offline = self._offline.sample(n_offline).select(*online.keys(True, True))
                    out = torch.cat([offline, online], 0)  # type: ignore[assignment]
        except BaseException:
            if self._rate_limiter is not None:
                self._rate_limiter._undo("sample", n)
            raise
        return out if self._transform is None else self._transform(out)

    def _from_offline(self, n: int) -> TensorDictBase:
        layout = self._dataset_layout()
        return self._offline.sample(n).select(*layout)

    def _dataset_layout(self) -> dict[Any, torch.dtype]:
        """The dataset's leaf keys and dtypes (read from one sampled row, once)."""
        if self._layout is None:
            probe = self._offline.sample(1)
            self._layout = {k: v.dtype for k, v in probe.items(True, True)
                            if isinstance(v, torch.Tensor)}
        return self._layout

    def _aligned(self, data: TensorDictBase) -> TensorDictBase:
        """``data`` with the dataset's keys that it has, in the dataset's dtypes; the rows of
        a batch of several dims flattened."""
        if not isinstance(data, TensorDictBase):
            raise TypeError(f"extend takes a TensorDict of transitions, found "
                            f"{type(data).__name__}")
        if data.batch_dims > 1:
            data = data.reshape(-1)
        layout = self._dataset_layout()
        present = set(data.keys(True, True))
        # the dataset's own bookkeeping (episode ids, infos) may be absent from live data
        needed = [k for k in layout if k in present or _transition_key(k)]
        missing = [k for k in needed if k not in present]
        if missing:
            raise ValueError(f"the batch has no {missing[0]!r}, which the dataset's rows have "
                           f"(dataset keys: {sorted(map(str, layout))}; batch keys: "
                           f"{sorted(map(str, present))})")
        if self._online.write_count == 0:  # the online rows keep the keys they start with
            self._layout = layout = {k: layout[k] for k in needed}
        rows = data.select(*layout)
        for key, dtype in layout.items():
            if rows.get(key).dtype != dtype:
                rows.set(key, rows.get(key).to(dtype))
        return rows

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The online buffer, the limiter's counters, the fraction and the dataset
        sampler's generator (not the dataset's rows)."""
        sampler = getattr(self._offline, "sampler", None)
        with self._lock:
            return {
                "online": self._online.state_dict(),
                "rate_limiter": (self._rate_limiter.state_dict()
                                 if self._rate_limiter is not None else None),
                "offline_fraction": self._fraction,
                "offline_sampler": (sampler.sampling_state()  # type: ignore[union-attr]
                                    if hasattr(sampler, "sampling_state") else None),
            }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        missing = {"online", "rate_limiter", "offline_fraction", "offline_sampler"} - set(state)
        if missing:
            raise ValueError(f"not an OfflineToOnlineReplayBuffer state: no {sorted(missing)}")
        if (state["rate_limiter"] is None) != (self._rate_limiter is None):
            raise ValueError(f"the state {'has no' if state['rate_limiter'] is None else 'has a'}"
                             f" rate limiter, this buffer "
                             f"{'has' if self._rate_limiter is not None else 'has none'}")
        with self._lock:
            self._online.load_state_dict(state["online"])
            if self._rate_limiter is not None:
                self._rate_limiter.load_state_dict(state["rate_limiter"])
            if state["offline_sampler"] is not None:
                self._offline.sampler.load_sampling_state(state["offline_sampler"])
            self._fraction = float(state["offline_fraction"])

    def close(self) -> None:
        """Close the online buffer, and the dataset when it was built here."""
        self._online.close()
        if self._owns_dataset:
            self._offline.close()

    def __repr__(self) -> str:
        return (f"OfflineToOnlineReplayBuffer(offline={len(self._offline)}, "
                f"online={len(self._online)}, offline_fraction={self._fraction:g})")


def _transition_key(key: Any) -> bool:
    """Whether ``key`` is one every transition has (its observation and action, the next
    step's observation, reward and flags), as opposed to a dataset's bookkeeping (episode
    ids, infos, D4RL's previous-step reward and flags at the root)."""
    path = key if isinstance(key, tuple) else (key,)
    if path[0] == "next":
        return len(path) > 1 and path[1] in ("observation", "reward", "done", "terminated")
    return path[0] in ("observation", "action")
