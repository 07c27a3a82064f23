"""RayCollector: the multi-worker collectors with each rollout on a Ray actor (TorchRL 0.14's
``torchrl.collectors.distributed.RayCollector``)."""

from __future__ import annotations

import copy
import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.collectors._base import load_weights
from streamrl.collectors.multi import (
    MultiaSyncDataCollector,
    MultiCollector,
    MultiSyncDataCollector,
)
from streamrl.envs.common import EnvBase
from streamrl.graph import Graph, Node, Ray
from streamrl.ops import Trigger, WeightsSource, WeightsToken

__all__ = ["RayCollector"]

#: TorchRL's default actor options of a remote collector (``DEFAULT_REMOTE_CLASS_CONFIG``,
#: without its GPU share: streamrl's rollouts run their policy on the CPU)
DEFAULT_REMOTE_CLASS_CONFIG = {"num_cpus": 1, "num_gpus": 0, "memory": 2 * 1024**3}
_COLLECTOR_CLASSES = ("Collector", "SyncDataCollector")


def _remote_placement(config: dict[str, Any]) -> Ray:
    if not isinstance(config, dict):
        raise TypeError(f"remote_configs must be a dict or a list of dicts, found "
                        f"{type(config).__name__}")
    options = dict(config)
    num_cpus, num_gpus = options.pop("num_cpus", None), options.pop("num_gpus", None)
    resources = options.pop("resources", None)
    memory = options.pop("memory", None)
    if memory is not None and (not isinstance(memory, numbers.Real) or memory < 0):
        raise ValueError(f"remote_configs memory must be a number of bytes >= 0, found "
                         f"{memory!r}")
    # Ray's own restarts would re-run the actor from the pickled rollout, unwired: streamrl
    # restarts it instead, from the rollout's state after the last batch received
    restarts = options.pop("max_restarts", 0)
    if not isinstance(restarts, int) or isinstance(restarts, bool) or restarts < 0:
        raise ValueError(f"remote_configs max_restarts must be an int >= 0 (streamrl restarts "
                         f"a collector a bounded number of times), found {restarts!r}")
    failure: dict[str, Any] = (
        {"on_failure": "restart", "max_restarts": restarts} if restarts else {})
    return Ray(num_cpus, num_gpus, resources, memory=memory, actor_options=options, direct=True,
               **failure)


class RayCollector(MultiCollector):
    """N collectors on Ray actors, lockstep (``sync=True``) or free-running (``sync=False``,
    the default), as TorchRL 0.14's ``RayCollector``.

    Each collector is a :class:`~streamrl.ops.Rollout` on its own actor
    (``Ray(direct=True)``), on this machine or any node of the cluster Ray is connected to;
    batches go from the actors straight into the driver's graph, and weights go out to them
    from the driver: :meth:`update_policy_weights_` snapshots the policy's parameters once per
    call and each actor loads the newest version before its next batch (batches are stamped
    with it in ``("collector", "policy_version")``). In lockstep the weights travel with the
    token that asks for the batch, so each batch is collected with exactly the weights sent
    before it; free-running, they go on a latest-value edge. The topology is the multi-process
    collectors' (:class:`~streamrl.collectors.MultiSyncDataCollector`: ``Trigger -> N x Rollout
    -> StackBatches``; :class:`~streamrl.collectors.MultiaSyncDataCollector`: first ready
    first served) plus one :class:`~streamrl.ops.WeightsSource` per actor.

    Args:
        create_env_fn: an env constructor (repeated ``num_collectors`` times) or a list of
            them (one per collector).
        policy: the policy module (``td -> td``), or None for random actions.

    Keyword Args:
        policy_factory: builds the policy (instead of ``policy``).
        frames_per_batch, total_frames, ...: as :class:`MultiSyncDataCollector`; with
            ``sync=True`` ``frames_per_batch`` is the stacked batch of all collectors (it
            must divide by their number).
        collector_class: ``"Collector"``/``"SyncDataCollector"`` or that class (each actor
            runs one rollout); others raise ``TypeError``.
        collector_kwargs: more collector arguments, for every collector.
        num_workers_per_collector: envs per collector, stepped in one ``SerialEnv`` on the
            actor (default 1).
        sync: lockstep (stacked batches) or free-running.
        ray_init_config: keyword arguments of ``ray.init`` when Ray is not initialized yet
            (``ray.init()`` starts a local Ray by default).
        remote_configs: the actors' options (``num_cpus``, ``num_gpus``, ``memory``,
            ``resources``; other keys go to ``ray.remote(...).options``): one dict for all or
            one per collector; default ``DEFAULT_REMOTE_CLASS_CONFIG`` (1 CPU, 2 GiB).
            ``max_restarts=N`` (free-running only) replaces a collector whose actor dies, up
            to N times, and its rollout continues from its state after the last batch the
            driver received (frame count, trajectory ids, and the env's episodes where the
            env's state can be captured; else new episodes); a batch the dead actor had
            made and not sent is made again. Ray's own restarts are not used.
        num_collectors: how many collectors (default: ``len(create_env_fn)`` for a list, else 1).
        update_after_each_batch: publish the policy's weights after each batch.
        replay_buffer: batches are written into it (the writer runs on the driver) and the
            iterator yields ``None``.
        max_weight_update_interval, weight_updater, weight_sync_schemes: only TorchRL's
            defaults (-1, None, None) are accepted; weights always travel as above.

    ``request_reset`` of the rollouts (``reset``) does not reach remote actors.
    """

    _share_weights = False

    def __new__(cls, *args: Any, sync: bool = False, **kwargs: Any) -> RayCollector:
        if cls is RayCollector:
            if not isinstance(sync, bool):
                raise TypeError(f"sync must be True or False, found {sync!r}")
            cls = _RaySyncCollector if sync else _RayAsyncCollector
        return object.__new__(cls)

    def __init__(
        self,
        create_env_fn: EnvBase | Callable[..., EnvBase] | Sequence[Any],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        *,
        policy_factory: Callable[[], Any] | None = None,
        collector_class: Any = None,
        collector_kwargs: dict[str, Any] | None = None,
        num_workers_per_collector: int = 1,
        sync: bool = False,
        ray_init_config: dict[str, Any] | None = None,
        remote_configs: dict[str, Any] | list[dict[str, Any]] | None = None,
        num_collectors: int | None = None,
        update_after_each_batch: bool = False,
        max_weight_update_interval: int = -1,
        weight_updater: Any = None,
        weight_sync_schemes: Any = None,
        **kwargs: Any,
    ):
        if max_weight_update_interval != -1 or weight_updater is not None or (
            weight_sync_schemes is not None
        ):
            raise ValueError(
                "RayCollector sends weights one way only (update_policy_weights_, one snapshot "
                "per call, the newest loaded by each actor before its next batch): "
                "max_weight_update_interval must be -1 and weight_updater and "
                f"weight_sync_schemes None, found {max_weight_update_interval!r}, "
                f"{weight_updater!r}, {weight_sync_schemes!r}")
        name = getattr(collector_class, "__name__", collector_class)
        if collector_class is not None and name not in _COLLECTOR_CLASSES:
            raise TypeError(f"collector_class must be one of {_COLLECTOR_CLASSES} (each actor "
                            f"runs one rollout), found {name!r}")
        if collector_kwargs:
            clash = sorted(set(collector_kwargs) & set(kwargs))
            if clash:
                raise TypeError(f"{clash} given both as arguments and in collector_kwargs")
            kwargs = {**collector_kwargs, **kwargs}
        fns = self._env_fns(create_env_fn, num_collectors, num_workers_per_collector)
        configs = DEFAULT_REMOTE_CLASS_CONFIG if remote_configs is None else remote_configs
        if isinstance(configs, dict):
            configs = [configs] * len(fns)
        configs = list(configs)
        if len(configs) != len(fns):
            raise ValueError(f"remote_configs: one dict for all collectors or one per "
                             f"collector ({len(fns)}), found {len(configs)}")
        self._placements = [_remote_placement(c) for c in configs]
        if self._sync and any(p.on_failure == "restart" for p in self._placements):
            raise ValueError("remote_configs max_restarts needs sync=False: in lockstep a "
                             "collector that dies takes the batch its request asked for "
                             "with it")
        self._init_ray(ray_init_config)
        if policy_factory is not None:
            if policy is not None:
                raise TypeError("RayCollector takes policy or policy_factory, not both")
            policy = policy_factory()
        if update_after_each_batch:
            kwargs["update_at_each_batch"] = True
        super().__init__(fns, policy, **kwargs)
        module = self.policy if isinstance(self.policy, nn.Module) else None
        self._sources = ([WeightsSource(module) for _ in range(self.num_workers)]
                         if module is not None else None)

    @staticmethod
    def _env_fns(create_env_fn: Any, num_collectors: int | None,
                 per_collector: int) -> list[Any]:
        if isinstance(per_collector, bool) or not isinstance(per_collector, int) or (
            per_collector < 1
        ):
            raise ValueError(f"num_workers_per_collector must be an int >= 1, found "
                             f"{per_collector!r}")
        if num_collectors is not None and (isinstance(num_collectors, bool) or not isinstance(
                num_collectors, int) or num_collectors < 1):
            raise ValueError(f"num_collectors must be an int >= 1, found {num_collectors!r}")
        if isinstance(create_env_fn, (list, tuple)):
            fns = list(create_env_fn)
            if num_collectors is not None and num_collectors != len(fns):
                raise ValueError(f"num_collectors ({num_collectors}) differs from the number "
                                 f"of env constructors ({len(fns)})")
        else:
            fns = [create_env_fn] * (num_collectors or 1)
        if per_collector > 1:
            from streamrl.envs import SerialEnv

            fns = [functools.partial(SerialEnv, per_collector, fn) for fn in fns]
        return fns

    @staticmethod
    def _init_ray(config: dict[str, Any] | None) -> None:
        from streamrl._utils.ray_init import ensure_init, import_ray

        ray = import_ray("RayCollector")
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"ray_init_config must be a dict, found {type(config).__name__}")
        if not ray.is_initialized():
            ensure_init(ray, **(config or {}))

    # ------------------------------------------------------------------ the multi collector's hooks
    def _placement(self, i: int) -> Ray:
        return self._placements[i]

    def _worker_policy(self, i: int) -> Any:
        # each actor gets its own copy (pickled with the rollout); weights follow by message
        return copy.deepcopy(self.policy) if isinstance(self.policy, nn.Module) else self.policy

    def _rollout_options(self) -> dict[str, Any]:
        return {"weights_port": self._sources is not None}

    def _head(self, g: Graph, gated: bool, budget: int | None) -> tuple[Node, Trigger | None]:
        head, trigger = super()._head(g, gated, budget)  # type: ignore[misc]
        if trigger is None:  # free-running: the newest weights on a latest-value edge
            for i, source in enumerate(self._sources or ()):
                node = g.add(source, name=f"weights{i}", placement="thread")
                g.connect(node, g[f"rollout{i}"]["weights"], kind="latest")
        return head, trigger

    def _connect_trigger(self, g: Graph, trigger: Node, rollout: Node, i: int) -> None:
        if self._sources is None:
            g.connect(trigger, rollout)
            return
        # lockstep: each token carries the weights (once per version), so a batch is
        # collected with exactly the weights published before it was asked for
        token = g.add(WeightsToken(self._sources[i]), name=f"weights{i}")
        g.connect(trigger, token).connect(token, rollout)

    # ------------------------------------------------------------------ control
    def update_policy_weights_(self, policy_or_weights: nn.Module | TensorDictBase | dict | None = None,
                               *, worker_ids: int | list[int] | None = None) -> None:
        """Send ``policy_or_weights`` (a module, a TensorDict of parameters or a state dict;
        default: the policy's current weights) to the actors ``worker_ids`` (default: all):
        one snapshot, loaded by each before its next batch."""
        targets = self._resolve_targets(worker_ids)
        if self._sources is None:
            if policy_or_weights is not None:
                raise TypeError("update_policy_weights_ got weights but the policy is not a "
                                f"torch module ({type(self.policy).__name__})")
            return
        source: Any = self.policy
        if policy_or_weights is not None and policy_or_weights is not self.policy:
            source = copy.deepcopy(self.policy)
            load_weights(source, policy_or_weights)
        for i in targets:
            self._sources[i].publish(source)

    def local_policy(self) -> Any:
        """The driver's policy (whose weights :meth:`update_policy_weights_` sends)."""
        return self.policy

    @property
    def remote_collectors(self) -> list[Any]:
        """The actor handles of the running collectors (empty when none runs)."""
        run = getattr(self._graph, "_last_run", None) if self._graph is not None else None
        deployment = getattr(run, "deployment", None)
        if deployment is None:
            return []
        return [deployment.actors[f"rollout{i}"] for i in range(self.num_workers)
                if f"rollout{i}" in deployment.actors]

    def shutdown(self, timeout: float | None = None, close_env: bool = True,
                 raise_on_error: bool = True, shutdown_ray: bool = False) -> None:
        """Stop collecting (the actors are gone once the run has ended, see
        :meth:`~streamrl.collectors.DataCollectorBase.shutdown`); ``shutdown_ray`` also shuts
        Ray down in this process (TorchRL's flag)."""
        try:
            super().shutdown(timeout=timeout, close_env=close_env,
                             raise_on_error=raise_on_error)
        finally:
            if shutdown_ray:
                import ray

                ray.shutdown()

    @property
    def policy_version(self) -> int:
        """The newest version sent to any actor (0 before the first send)."""
        return max((s.version for s in self._sources or ()), default=0)

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        if self._sources is not None:
            out["policy_version"] = self.policy_version
        return out


class _RaySyncCollector(RayCollector, MultiSyncDataCollector):
    _graph_name = "ray-sync-collector"
    _sync = True


class _RayAsyncCollector(RayCollector, MultiaSyncDataCollector):
    _graph_name = "ray-async-collector"
    _sync = False
