"""Collectors with one worker process per env constructor: lockstep and asynchronous."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.collectors._base import DataCollectorBase, check_env_fns, publish
from streamrl.collectors._options import CollectorOptions, per_worker
from streamrl.envs.common import EnvBase
from streamrl.graph import Graph, Map, Node, Process
from streamrl.ops import PolicyWeights, Rollout, StackBatches, Trigger, make_env

__all__ = ["AsyncCollector", "MultiCollector", "MultiSyncDataCollector", "MultiaSyncDataCollector"]

_ARGS_DOC = """
    Keyword Args: those of :class:`~streamrl.collectors.SyncDataCollector` (TorchRL 0.14's
    names; anything else raises ``TypeError``), with these differences:

    * ``create_env_kwargs``: one dict for every worker, or one dict per worker.
    * ``env_device``: one device, or one per worker; ``policy_device`` must be the CPU (or
      None): the workers' copies of the policy live in CPU shared memory.
    * ``init_random_frames``: the first ``ceil(n / frames_per_batch)`` batches (of the whole
      collector, spread over the workers) take random actions.
    * ``update_at_each_batch``: call :meth:`update_policy_weights_` before each batch
      (lockstep) or after each one (asynchronous).
    * ``mp_start_method``: the workers' multiprocessing start method.
    * ``compile_policy`` / ``cudagraph_policy``: each worker wraps its copy of the policy.
    * no ``policy_factory``: the workers share one policy's weights (pass the policy).
"""


class MultiCollector(DataCollectorBase):
    """The multi-process collectors' common base, as TorchRL 0.14's ``MultiCollector``.

    ``MultiCollector(create_env_fn, policy, sync=True, ...)`` makes a
    :class:`MultiSyncDataCollector` (lockstep) and ``sync=False`` a
    :class:`MultiaSyncDataCollector` (free-running); the other arguments are theirs. Without
    ``sync`` it raises ``TypeError``: the base alone does not say how to collect. The
    subclasses accept ``sync`` only with their own value.

    >>> from streamrl.envs import GymEnv
    >>> collector = MultiCollector([lambda: GymEnv("CartPole-v1")], None, sync=True,
    ...                            frames_per_batch=8, total_frames=8)
    >>> type(collector).__name__, isinstance(collector, MultiCollector)
    ('MultiSyncDataCollector', True)
    >>> collector.shutdown()
    """

    _multi = True
    _sync: bool | None = None
    #: the workers read the policy's weights from shared memory (PolicyWeights)
    _share_weights = True

    def __new__(cls, *args: Any, sync: bool | None = None, **kwargs: Any) -> MultiCollector:
        if sync is not None and not isinstance(sync, bool):
            raise TypeError(f"sync must be True, False or None, found {sync!r}")
        if cls is MultiCollector:
            if sync is None:
                raise TypeError(
                    "MultiCollector needs sync=True (MultiSyncDataCollector: lockstep) or "
                    "sync=False (MultiaSyncDataCollector: free-running)"
                )
            cls = MultiSyncDataCollector if sync else MultiaSyncDataCollector
        elif sync is not None and sync != cls._sync:
            raise ValueError(f"{cls.__name__} collects with sync={cls._sync}, found sync={sync}")
        return super().__new__(cls)

    def __init__(
        self,
        create_env_fn: Sequence[EnvBase | Callable[..., EnvBase]],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        *,
        sync: bool | None = None,
        **kwargs: Any,
    ):
        options = CollectorOptions.parse(type(self).__name__, self._multi, kwargs)
        fns = check_env_fns(create_env_fn)
        super().__init__(policy, options, num_workers=len(fns))
        env_kwargs = options.env_kwargs(self.num_workers)
        self.create_env_fn = [
            functools.partial(fn, **kw) if kw else fn for fn, kw in zip(fns, env_kwargs, strict=True)
        ]
        self._env_devices = per_worker(self.env_device, self.num_workers, "env_device")
        policy_devices = per_worker(self.policy_device, self.num_workers, "policy_device")
        if any(d is not None and d.type != "cpu" for d in policy_devices):
            raise ValueError(
                "policy_device must be the CPU (or None) for the multi-process collectors: the "
                f"workers share the weights through CPU shared memory; found {policy_devices}"
            )
        self.mp_start_method = options.mp_start_method
        # one shared copy per worker, so update_policy_weights_(worker_ids=...) can address one
        self.weights = (
            [PolicyWeights(policy) for _ in range(self.num_workers)]
            if isinstance(policy, nn.Module) and self._share_weights else None
        )
        self._seeds: list[int | None] = [None] * self.num_workers
        self._env_counts: dict[int, int] = {}

    # ------------------------------------------------------------------ rollouts
    def _rollout(self, i: int, frames_per_batch: int, random_frames: int, gated: bool,
                 budget: int | None) -> Rollout:
        rollout = Rollout(
            self.create_env_fn[i],
            self._worker_policy(i),
            frames_per_batch=frames_per_batch,
            total_frames=budget,
            max_frames_per_traj=self.max_frames_per_traj,
            exploration_type=self.exploration_type,
            seed=self._seeds[i],
            gated=gated,
            worker_index=i,
            num_workers=self.num_workers,
            init_random_frames=random_frames,
            reset_at_each_iter=self.reset_at_each_iter,
            env_device=self._env_devices[i],
            policy_wrapper=self.options.policy_wrapper(),
            trust_policy=self.options.trust_policy,
            **self._rollout_options(),
        )
        self._rollouts.append(rollout)
        return rollout

    def _worker_policy(self, i: int) -> Any:
        """What worker ``i``'s rollout runs: its shared copy of the weights, or the policy."""
        return self.weights[i] if self.weights is not None else self.policy

    def _rollout_options(self) -> dict[str, Any]:
        """More :class:`~streamrl.ops.Rollout` arguments (none here)."""
        return {}

    def _connect_trigger(self, g: Graph, trigger: Node, rollout: Node, i: int) -> None:
        """Connect the lockstep trigger to worker ``i``'s rollout."""
        g.connect(trigger, rollout)

    def _placement(self, i: int) -> Any:
        """Where worker ``i``'s rollout runs."""
        return Process(start_method=self.mp_start_method)

    # ------------------------------------------------------------------ control
    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed the workers' envs for the next pass: worker ``i`` gets the seed that follows
        worker ``i - 1``'s envs (``seed + envs before it``); returns the next free seed
        (``seed + all envs``), or ``seed`` itself with ``static_seed`` (every worker gets
        ``seed``). Counting the envs builds each distinct env constructor once, here."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, found {type(seed).__name__}")
        if static_seed:
            self._seeds = [seed] * self.num_workers
            return seed
        seeds, nxt = [], seed
        for fn in self.create_env_fn:
            seeds.append(nxt)
            nxt += self._num_envs(fn)
        self._seeds = seeds
        return nxt

    def _num_envs(self, fn: Any) -> int:
        if isinstance(fn, EnvBase):
            return max(1, fn.batch_size.numel())
        if id(fn) not in self._env_counts:
            env = make_env(fn)
            try:
                self._env_counts[id(fn)] = max(1, env.batch_size.numel())
            finally:
                env.close()
        return self._env_counts[id(fn)]

    def reset(self, reset_idx: Sequence[bool] | None = None) -> None:
        """Reset the envs of the workers ``reset_idx`` marks (all when None) before their next
        batch: new episodes, with new trajectory ids (a pass not yet started resets them
        anyway)."""
        if reset_idx is not None and len(reset_idx) != self.num_workers:
            raise ValueError(
                f"reset_idx must hold one bool per worker ({self.num_workers}), found {list(reset_idx)}"
            )
        for rollout in self._rollouts:
            if reset_idx is None or reset_idx[rollout.worker_index]:
                rollout.request_reset()

    def update_policy_weights_(self, policy_or_weights: nn.Module | TensorDictBase | dict | None = None,
                               *, worker_ids: int | list[int] | None = None) -> None:
        """Copy ``policy_or_weights`` (a module, a TensorDict of parameters or a state dict;
        default: the policy given at construction, with its current weights) into the shared
        copy of the workers ``worker_ids`` (default: all) and bump their policy version; they
        use the weights from their next step on."""
        targets = self._resolve_targets(worker_ids)
        if self.weights is None:
            if policy_or_weights is not None:
                raise TypeError(
                    "update_policy_weights_ got weights but the policy is not a torch module "
                    f"({type(self.policy).__name__})"
                )
            return
        source = self.policy if policy_or_weights is None else policy_or_weights
        for i in targets:
            publish(self.weights[i], source)

    def _close_envs(self) -> None:
        for fn in self.create_env_fn:
            if isinstance(fn, EnvBase):
                fn.close()


class MultiSyncDataCollector(MultiCollector):
    __doc__ = """One worker process per env constructor, collecting in lockstep.

    Each iteration every worker collects ``frames_per_batch // num_workers`` frames with the
    latest published weights, and the batches are stacked: ``[num_workers, *env_batch, T]``.
    The topology is ``Trigger -> N x Rollout (processes) -> StackBatches -> postproc
    (-> CompleteTrajectories) (-> ReplaySink) -> (iterator)``.
    """ + _ARGS_DOC
    _graph_name = "multi-sync-collector"
    _sync = True

    def _head(self, g: Graph, gated: bool, budget: int | None) -> tuple[Node, Trigger | None]:
        if self.frames_per_batch % self.num_workers:
            raise ValueError(
                f"frames_per_batch ({self.frames_per_batch}) must be divisible by the number of "
                f"workers ({self.num_workers})"
            )
        per_worker_frames = self.frames_per_batch // self.num_workers
        random_frames = self.options.random_batches() * per_worker_frames
        stack = g.add(StackBatches(self.num_workers), name="stack")
        trigger = Trigger() if gated else None
        t = g.add(trigger, name="trigger", placement="thread") if trigger is not None else None
        for i in range(self.num_workers):
            r = g.add(
                self._rollout(i, per_worker_frames, random_frames, gated,
                              None if budget is None else budget * per_worker_frames),
                name=f"rollout{i}",
                placement=self._placement(i),
            )
            if t is not None:
                self._connect_trigger(g, t, r, i)
            g.connect(r, stack[f"in{i}"], capacity=1)
        return stack, trigger


class MultiaSyncDataCollector(MultiCollector):
    __doc__ = """One worker process per env constructor, collecting without waiting for the
    learner.

    Workers keep collecting while the loop trains (each holds at most one finished batch);
    every iteration yields the next ``frames_per_batch`` batch from whichever worker is ready,
    stamped with the policy version that produced it (``("collector", "policy_version")``).
    The topology is ``N x Rollout (processes) -> merge -> postproc (-> CompleteTrajectories)
    (-> ReplaySink) -> (iterator)``.
    """ + _ARGS_DOC
    _graph_name = "multi-async-collector"
    _sync = False

    def _head(self, g: Graph, gated: bool, budget: int | None) -> tuple[Node, Trigger | None]:
        random_batches = math.ceil(self.options.random_batches() / self.num_workers)
        random_frames = random_batches * self.frames_per_batch
        merge = g.add(Map(_identity), name="merge")
        for i in range(self.num_workers):
            # the budget's batches, shared out (a worker with no share still makes one)
            share = None if budget is None else max(
                1, (budget // self.num_workers + (i < budget % self.num_workers))
                * self.frames_per_batch)
            r = g.add(
                self._rollout(i, self.frames_per_batch, random_frames, False, share),
                name=f"rollout{i}",
                placement=self._placement(i),
            )
            g.connect(r, merge, capacity=1)
        return merge, None


class AsyncCollector(MultiaSyncDataCollector):
    """Runs one collector in a worker process, free-running (TorchRL's ``AsyncCollector``: a
    :class:`MultiaSyncDataCollector` with one worker): batches are collected while the loop
    trains, each stamped with the policy version that produced it.

    Args:
        create_env_fn: an env constructor (or env).
        policy: ``td -> td`` writing the action; ``None`` takes random actions.

    Keyword Args: those of :class:`MultiaSyncDataCollector` (``create_env_kwargs`` is one
    dict, or a list of one).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> with AsyncCollector(lambda: GymEnv("CartPole-v1"), None,
    ...                     frames_per_batch=20, total_frames=40) as collector:
    ...     [batch.batch_size for batch in collector]
    [torch.Size([20]), torch.Size([20])]
    """

    def __init__(
        self,
        create_env_fn: EnvBase | Callable[..., EnvBase],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        **kwargs: Any,
    ):
        if isinstance(create_env_fn, (list, tuple)):
            raise TypeError(
                "AsyncCollector runs one env constructor; for several use MultiaSyncDataCollector"
            )
        super().__init__([create_env_fn], policy, **kwargs)


def _identity(batch: Any) -> Any:
    return batch

