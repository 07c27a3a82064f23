"""What every collector shares: the iterator over a running graph, weights, shutdown."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from streamrl.envs.utils import ExplorationType
from streamrl.graph import Graph, Node
from streamrl.ops import PolicyWeights, Trigger


def _as_device(device: Any) -> torch.device | None:
    if device is None:
        return None
    if isinstance(device, (list, tuple)):
        devices = {torch.device(d) for d in device}
        if len(devices) != 1:
            raise ValueError(
                f"collected batches are stacked on one device; found several: {sorted(map(str, devices))}"
            )
        return devices.pop()
    return torch.device(device)


class DataCollectorBase:
    """Iterates the batches a collecting graph produces (``for batch in collector``).

    Subclasses build the graph in :meth:`_build` and return ``(graph, output node, trigger)``;
    a trigger (lockstep collection) is pulled once per batch, so nothing is collected before
    the loop asks for it.
    """

    def __init__(
        self,
        policy: Callable[[TensorDictBase], TensorDictBase] | None,
        *,
        frames_per_batch: int,
        total_frames: int = -1,
        max_frames_per_traj: int = -1,
        device: Any = None,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
    ):
        if not isinstance(frames_per_batch, int) or frames_per_batch < 1:
            raise ValueError(f"frames_per_batch must be a positive int, got {frames_per_batch!r}")
        if not isinstance(total_frames, int) or (total_frames < 1 and total_frames != -1):
            raise ValueError(f"total_frames must be a positive int or -1, got {total_frames!r}")
        if policy is not None and not callable(policy):
            raise TypeError(f"policy must be callable or None, found {type(policy).__name__}")
        self.policy = policy
        self.frames_per_batch = frames_per_batch
        self.total_frames = total_frames
        self.max_frames_per_traj = max_frames_per_traj
        self.device = _as_device(device)
        self.exploration_type = exploration_type
        self.frames = 0
        self._seed: int | None = None
        self._iterator: Iterator[Any] | None = None
        self._graph: Graph | None = None
        self._closed = False

    # ------------------------------------------------------------------ to implement
    def _build(self) -> tuple[Graph, Node, Trigger | None]:
        raise NotImplementedError

    # ------------------------------------------------------------------ iteration
    @property
    def num_batches(self) -> int | None:
        """Batches one pass yields (``None``: endless, when ``total_frames == -1``)."""
        if self.total_frames == -1:
            return None
        return math.ceil(self.total_frames / self.frames_per_batch)

    def __iter__(self) -> Iterator[TensorDictBase]:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is shut down")
        graph, out, trigger = self._build()
        self._graph = graph
        stream = graph.iterate(out, capacity=1, watchdog_timeout=None)
        self._iterator = stream
        count = 0
        try:
            while self.num_batches is None or count < self.num_batches:
                if trigger is not None:
                    trigger.pull()
                try:
                    batch = next(stream)
                except StopIteration:
                    return
                if self.device is not None:
                    batch = batch.to(self.device)
                count += 1
                self.frames += batch.numel()
                yield batch
        finally:
            if trigger is not None:
                trigger.stop()
            stream.close()
            self._iterator = None

    def graph(self) -> Graph:
        """A new instance of the graph this collector runs (to print, draw or inspect)."""
        return self._build()[0]

    # ------------------------------------------------------------------ control
    def set_seed(self, seed: int) -> int:
        """Seed the envs (worker ``i`` gets ``seed + i``) for the next iteration."""
        self._seed = int(seed)
        return self._seed

    def update_policy_weights_(self, policy_weights: nn.Module | None = None) -> None:
        """Make the collecting copies of the policy use the latest weights (and bump the
        policy version stamped on batches)."""

    def stats(self) -> Any:
        """The collecting graph's metrics (see :meth:`streamrl.graph.Graph.stats`)."""
        if self._graph is None:
            raise RuntimeError("the collector has not run yet")
        return self._graph.stats()

    def shutdown(self) -> None:
        """Stop collecting and release envs and worker processes. Idempotent."""
        self._closed = True
        if self._iterator is not None:
            self._iterator.close()
            self._iterator = None

    def __enter__(self) -> DataCollectorBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(frames_per_batch={self.frames_per_batch}, "
            f"total_frames={self.total_frames})"
        )


def shared_weights(policy: Any) -> PolicyWeights | None:
    """Shared-memory weights for a module policy (``None`` for other callables)."""
    return PolicyWeights(policy) if isinstance(policy, nn.Module) else None


def check_env_fns(create_env_fn: Any) -> Sequence[Any]:
    """A non-empty list of env factories (or envs)."""
    if not isinstance(create_env_fn, (list, tuple)) or not create_env_fn:
        raise ValueError(
            "create_env_fn must be a non-empty list of env constructors (one per worker), "
            f"found {create_env_fn!r}"
        )
    return list(create_env_fn)
