"""Sampling weighted by the freshness of each item's policy version (asynchronous training)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from streamrl.data.replay_buffers._state import Commit, int_entry
from streamrl.data.replay_buffers.samplers.base import Sampler, _check_batch_size, _check_nonempty

__all__ = ["StalenessAwareSampler"]


def _inverse_staleness(staleness: torch.Tensor) -> torch.Tensor:
    return 1.0 / (staleness.float() + 1.0)


class StalenessAwareSampler(Sampler):
    """Sample items in proportion to a weight that decays with their staleness.

    Each stored item carries the version of the policy that collected it (``version_key``);
    the training loop sets :attr:`consumer_version` (e.g. after each weight update), and an
    item's staleness is ``consumer_version - policy_version`` (counted as 0 for an item from a
    newer version). Items staler than ``max_staleness`` are never drawn; the others are drawn,
    with replacement, with probability proportional to ``staleness_weight_fn(staleness)``
    (default ``1 / (staleness + 1)``). ``info["staleness"]`` holds the drawn items' staleness.

    Args:
        max_staleness: the largest staleness drawn; ``-1`` (default): no limit.
        staleness_weight_fn: maps a staleness tensor to non-negative weights.
        version_key: the storage key of the policy versions (default ``"policy_version"``).
        seed: seed of the private generator.

    >>> from tensordict import TensorDict
    >>> from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    >>> sampler = StalenessAwareSampler(max_staleness=1)
    >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), sampler=sampler)
    >>> _ = rb.extend(TensorDict({"policy_version": torch.tensor([0.0, 0.0, 3.0])}, [3]))
    >>> sampler.consumer_version = 4
    >>> rb.sample(5)["policy_version"].tolist()  # version 0 is 4 versions old: never drawn
    [3.0, 3.0, 3.0, 3.0, 3.0]
    """

    def __init__(
        self,
        max_staleness: int = -1,
        staleness_weight_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
        version_key="policy_version",
        *,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed=seed)
        self.max_staleness = self._check_max_staleness(max_staleness)
        if staleness_weight_fn is not None and not callable(staleness_weight_fn):
            raise TypeError(f"staleness_weight_fn must be callable, found "
                            f"{type(staleness_weight_fn).__name__}")
        self.staleness_weight_fn = staleness_weight_fn or _inverse_staleness
        self.version_key = version_key
        self._consumer_version = 0

    @staticmethod
    def _check_max_staleness(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ValueError(f"max_staleness must be an int >= -1, found {value!r}")
        return value

    @property
    def consumer_version(self) -> int:
        """The policy version training is at (staleness is measured from it)."""
        return self._consumer_version

    @consumer_version.setter
    def consumer_version(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"consumer_version must be an int, found {value!r}")
        self._consumer_version = value

    def increment_consumer_version(self) -> None:
        """``consumer_version += 1``."""
        self._consumer_version += 1

    def _versions(self, storage) -> torch.Tensor:
        if not callable(getattr(storage, "column", None)):
            raise TypeError(f"StalenessAwareSampler needs a tensor storage (LazyTensorStorage, "
                            f"LazyMemmapStorage), found {type(storage).__name__}")
        try:
            versions = storage.column(self.version_key)
        except (KeyError, TypeError):
            raise KeyError(
                f"StalenessAwareSampler: the storage has no {self.version_key!r} entry (the "
                "policy version of each item, e.g. written by a PolicyVersion transform)"
            ) from None
        return versions.reshape(versions.shape[0], -1)[:, 0].cpu()

    def _weights(self, storage) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """``(index, staleness, weight)`` of the items that may be drawn: with a
        ``max_staleness``, only those within it (``index``: their storage indices, found with
        one comparison, so the weights are computed for them alone); else every stored item
        (``index`` None)."""
        versions = self._versions(storage)
        index = None
        if self.max_staleness >= 0:
            # staleness <= max_staleness, in the versions' own dtype (no float64 copy of all)
            index = torch.nonzero(
                versions >= self._consumer_version - self.max_staleness).squeeze(1)
            versions = versions[index]
        staleness = (self._consumer_version - versions.double()).clamp_min(0)
        weight = torch.as_tensor(self.staleness_weight_fn(staleness), dtype=torch.float64)
        if weight.shape != staleness.shape or bool((weight < 0).any()) or not bool(
            torch.isfinite(weight).all()
        ):
            raise ValueError("staleness_weight_fn must return one finite weight >= 0 per item")
        return index, staleness, weight

    def can_sample(self, storage, batch_size: int) -> bool:
        """Whether some stored item is fresh enough (within ``max_staleness`` of
        :attr:`consumer_version`, with a weight > 0) to be drawn."""
        if len(storage) == 0:
            return False
        return bool((self._weights(storage)[2] > 0).any())

    def sample(self, storage, batch_size: int):
        """Indices drawn by freshness; ``info["staleness"]``: their staleness."""
        _check_nonempty(storage)
        batch_size = _check_batch_size(batch_size)
        candidates, staleness, weight = self._weights(storage)
        if not bool((weight > 0).any()):
            raise RuntimeError(
                f"no item can be sampled: every item is staler than max_staleness="
                f"{self.max_staleness} (consumer_version={self._consumer_version}) or has "
                "weight 0"
            )
        # inverse-CDF draws: the law of multinomial(weight, replacement=True), at a fraction of
        # its cost on large storages (one cumsum, one binary search per draw)
        cdf = weight.cumsum(0)
        u = torch.rand(batch_size, dtype=torch.float64, generator=self._generator) * cdf[-1]
        last = int(torch.nonzero(weight).max())  # u == total (rounding) lands on a weighted item
        drawn = torch.searchsorted(cdf, u, right=True).clamp_max_(last)
        index = drawn if candidates is None else candidates[drawn]
        return index, {"staleness": staleness[drawn].float()}

    def state_dict(self) -> dict[str, Any]:
        """RNG state, ``consumer_version`` and ``max_staleness``."""
        return {**super().state_dict(), "consumer_version": self._consumer_version,
                "max_staleness": self.max_staleness}

    def _prepare_load(self, state: dict[str, Any]) -> Commit:
        base = super()._prepare_load(state)
        where = f"{type(self).__name__} state"
        version = int_entry(state, "consumer_version", where, lo=-(2**62))
        max_staleness = int_entry(state, "max_staleness", where, lo=-1)

        def commit() -> None:
            base()
            self.consumer_version = version
            self.max_staleness = max_staleness

        return commit
