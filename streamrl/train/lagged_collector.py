"""LaggedCollector: collection in a worker process that runs ahead of the learner by a bounded
number of policy versions (the asynchronous topology of on-policy pipelines)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.envs.common import EnvBase
from streamrl.graph import Graph, Process
from streamrl.ops import PolicyWeights, Rollout, Trigger

__all__ = ["LaggedCollector"]


class LaggedCollector:
    """Collects ``frames_per_batch`` batches in a worker process while the caller trains on
    the previous one, at most ``max_policy_lag`` policy versions behind the learner.

    The topology is ``Trigger (thread) -> Rollout (process)``: the rollout collects one batch
    per token, with a shared copy of ``policy`` (:class:`~streamrl.ops.PolicyWeights`). The
    iterator asks for batch ``k + max_policy_lag`` as soon as it hands out batch ``k``, so the
    worker steps the envs while the loop trains; :meth:`update_policy_weights_` publishes the
    policy's new weights (the worker uses them from its next step on) and bumps
    :attr:`policy_version`. A batch carries the version at which its collection started
    (``("collector", "policy_version")``); it was asked for when the learner had published
    ``k`` versions and is trained on after ``k + max_policy_lag`` publications (one per
    batch), so ``policy_version - stamp <= max_policy_lag`` for every batch: the stamp is a
    bound, steps collected after a mid-batch publication are fresher.

    The iterator yields ``ceil(total_frames / frames_per_batch)`` batches and asks for no
    more (the budget is never overshot). ``total_frames`` may be changed between passes.

    Args:
        create_env_fn: a zero-argument callable building the (batched) env; it runs in the
            worker (forked: it need not be picklable).
        policy: the module the learner trains (``td -> td`` writing the action and its
            log-prob); the worker runs a copy in shared memory.
        frames_per_batch: frames per batch (``T = frames_per_batch // num_envs``).
        total_frames: frames of one pass.
        max_policy_lag: how many batches the worker may collect ahead (``>= 1``).

    >>> from streamrl.envs import GymEnv
    >>> collector = LaggedCollector(lambda: GymEnv("CartPole-v1"), nn.Linear(4, 2),
    ...                             frames_per_batch=8, total_frames=20)
    >>> collector.num_batches, collector.policy_version  # nothing runs before iterating
    (3, 0)
    """

    def __init__(self, create_env_fn: Callable[[], EnvBase], policy: nn.Module, *,
                 frames_per_batch: int, total_frames: int, max_policy_lag: int = 1,
                 start_method: str | None = None):
        if not callable(create_env_fn):
            raise TypeError(f"create_env_fn must be callable, found {type(create_env_fn).__name__}")
        if not isinstance(policy, nn.Module):
            raise TypeError(f"policy must be a torch.nn.Module (its weights are shared with the "
                            f"worker), found {type(policy).__name__}")
        for name, value in (("frames_per_batch", frames_per_batch),
                            ("total_frames", total_frames), ("max_policy_lag", max_policy_lag)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, found {value!r}")
        self.create_env_fn, self.policy = create_env_fn, policy
        self.frames_per_batch, self.total_frames = frames_per_batch, total_frames
        self.max_policy_lag = max_policy_lag
        self.start_method = start_method
        self.weights = PolicyWeights(policy)
        self.frames = 0
        self._seed: int | None = None
        self._iterator: Any = None  # the running graph's stream (a generator)
        self._closed = False

    @property
    def policy_version(self) -> int:
        """Weights published so far (the learner's version)."""
        return self.weights.version

    @property
    def num_batches(self) -> int:
        """Batches one pass yields."""
        return math.ceil(self.total_frames / self.frames_per_batch)

    def set_seed(self, seed: int) -> int:
        """Seed the worker's env (and its torch generator) for the next pass; returns
        ``seed``."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, found {type(seed).__name__}")
        self._seed = seed
        return seed

    def update_policy_weights_(self) -> None:
        """Publish the policy's current weights to the worker (a new version)."""
        self.weights.publish(self.policy)

    def _build(self) -> tuple[Graph, Any, Trigger]:
        g = Graph("lagged-collector")
        trigger = Trigger()
        rollout = Rollout(self.create_env_fn, self.weights, frames_per_batch=self.frames_per_batch,
                          seed=self._seed, gated=True)
        t = g.add(trigger, name="trigger", placement="thread")
        # the env state stays in the worker: a resumed run starts new episodes
        r = g.add(rollout, name="rollout",
                  placement=Process(start_method=self.start_method, sync_state=False))
        g.connect(t, r, capacity=self.max_policy_lag + 1)
        return g, r, trigger

    def graph(self) -> Graph:
        """A new instance of the graph the collector runs (building it starts nothing)."""
        return self._build()[0]

    def __iter__(self) -> Iterator[TensorDictBase]:
        if self._closed:
            raise RuntimeError("LaggedCollector is shut down")
        return self._iterate()

    def _iterate(self) -> Iterator[TensorDictBase]:
        graph, out, trigger = self._build()
        stream: Any = graph.iterate(out, capacity=1, watchdog_timeout=None)
        self._iterator = stream
        n = self.num_batches
        asked = 1
        trigger.pull()
        try:
            for k in range(n):
                try:
                    batch = next(stream)
                except StopIteration:
                    return
                # batch k + max_policy_lag is trained on max_policy_lag publications from now
                wanted = min(n, k + 1 + self.max_policy_lag)
                if wanted > asked:
                    trigger.pull(wanted - asked)
                    asked = wanted
                self.frames += batch.numel()
                yield batch
        finally:
            trigger.stop()
            stream.close()
            self._iterator = None

    def shutdown(self) -> None:
        """Stop collecting and release the worker (idempotent)."""
        self._closed = True
        if self._iterator is not None:
            self._iterator.close()
            self._iterator = None

    def __enter__(self) -> LaggedCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (f"LaggedCollector(frames_per_batch={self.frames_per_batch}, "
                f"total_frames={self.total_frames}, max_policy_lag={self.max_policy_lag})")
