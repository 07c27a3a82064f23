"""AsyncBatchedCollector: envs stepping independently, served by one batching policy server."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.collectors._base import DataCollectorBase, check_env_fns, publish
from streamrl.collectors._options import CollectorOptions, as_device
from streamrl.envs.common import EnvBase
from streamrl.envs.utils import ExplorationType
from streamrl.graph import Graph, Node, Process
from streamrl.ops import BatchedPolicyServer, EnvSource, PolicyWeights, TransitionBatcher, Trigger

__all__ = ["AsyncBatchedCollector"]

_ENV_BACKENDS = ("threading", "multiprocessing")
# TorchRL 0.14 arguments that configure machinery this topology does not have
_REFUSED = ("transport", "server_config", "device_config", "weight_sync", "worker_affinity",
            "driver_affinity", "post_collect_hook")


class AsyncBatchedCollector(DataCollectorBase):
    """Envs that step independently and a policy server that batches whichever are ready
    (TorchRL 0.14's ``AsyncBatchedCollector``).

    The topology::

        N x EnvSource (threads or processes) --obs_i--> BatchedPolicyServer (thread)
            --action_i--> EnvSource_i                                   (feedback edges)
        N x EnvSource --out_i--> TransitionBatcher --> postproc
            (-> CompleteTrajectories) (-> ReplaySink) -> (iterator)

    There is no barrier: a fast env keeps stepping while a slow one is busy, and each policy
    call serves the observations that accumulated while the previous call ran (at most
    ``max_batch_size``). Batches are flat ``[frames_per_batch]`` transitions in arrival order,
    with ``"env_index"``, ``("collector", "traj_ids")``, ``("collector", "policy_version")``
    and ``policy_version_key``; the last batch is cut to ``total_frames``.

    Args:
        create_env_fn: one env constructor (or env) per env slot.

    Keyword Args:
        policy: ``td -> td`` writing the action (a module is shared with its version, see
            :meth:`update_policy_weights_`). Exclusive with ``policy_factory``.
        policy_factory: a zero-argument callable returning the policy (called once here:
            the server runs in a thread of this process).
        frames_per_batch: frames per batch (required).
        total_frames: frames in all; ``-1``: endless.
        max_batch_size: most envs per policy call (default 64).
        min_batch_size: hold observations back until this many are pending (default 1); see
            :class:`~streamrl.ops.BatchedPolicyServer` for when the hold ends.
        server_timeout: seconds a held observation waits at most, checked when another
            arrives (default 0.01).
        device: the device the policy runs on.
        env_backend: ``"threading"`` (default) or ``"multiprocessing"``: where the envs run;
            ``backend`` is the fallback for it.
        policy_backend: ``"threading"`` only (the server is a thread of this process).
        reset_at_each_iter: only ``False`` (envs step free of batch boundaries).
        postproc: applied to each batch (after ``yield_completed_trajectories``).
        exploration_type: the exploration type the policy runs under.
        replay_buffer: extend this buffer with every batch; the iterator yields ``None``.
        yield_completed_trajectories: yield one whole episode per iteration (``[T]``, in time
            order); the trajectories completed within each ``frames_per_batch`` frames
            become available together.
        create_env_kwargs: one dict for every constructor, or one per constructor.
        policy_version: the version of the initial weights.
        policy_version_key: also stamp the version under this key (``None``: do not).
        env_exchange, envs_per_worker, transition_chunk_size, verbose, weight_sync_model_id:
            accepted with their defaults only.

    ``transport``, ``server_config``, ``device_config``, ``weight_sync``,
    ``worker_affinity``, ``driver_affinity``, ``post_collect_hook`` and the ``"ray"`` /
    ``"monarch"`` backends raise ``TypeError`` / ``ValueError`` naming the argument.

    >>> from tensordict.nn import TensorDictModule
    >>> from torch import nn
    >>> from streamrl.envs.libs.gym import GymEnv
    >>> policy = TensorDictModule(nn.Linear(4, 2), in_keys=["observation"], out_keys=["action"])
    >>> collector = AsyncBatchedCollector([lambda: GymEnv("CartPole-v1")] * 2, policy=policy,
    ...                                   frames_per_batch=16, total_frames=40)
    >>> [batch.batch_size[0] for batch in collector]
    [16, 16, 8]
    >>> collector.shutdown()
    """

    _graph_name = "async-batched-collector"

    def __init__(
        self,
        create_env_fn: Sequence[EnvBase | Callable[..., EnvBase]],
        *,
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        policy_factory: Callable[[], Callable] | None = None,
        frames_per_batch: int,
        total_frames: int = -1,
        max_batch_size: int | None = None,
        min_batch_size: int | None = None,
        server_timeout: float | None = None,
        device: Any = None,
        backend: str | None = None,
        env_backend: str | None = None,
        policy_backend: str | None = None,
        env_exchange: str = "auto",
        envs_per_worker: int = 1,
        transition_chunk_size: int | str = "auto",
        reset_at_each_iter: bool = False,
        postproc: Callable[[TensorDictBase], TensorDictBase] | None = None,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
        replay_buffer: Any = None,
        yield_completed_trajectories: bool = False,
        weight_sync_model_id: str = "policy",
        verbose: bool = False,
        create_env_kwargs: dict | list[dict] | None = None,
        policy_version: int = 0,
        policy_version_key: Any = "policy_version",
        **refused: Any,
    ):
        name = type(self).__name__
        _refuse(name, refused, backend, policy_backend, env_exchange, envs_per_worker,
                transition_chunk_size, weight_sync_model_id, verbose)
        if (policy is None) == (policy_factory is None):
            raise TypeError(f"{name} needs exactly one of policy and policy_factory")
        if policy_factory is not None:
            if not callable(policy_factory):
                raise TypeError(f"policy_factory must be callable, found {policy_factory!r}")
            policy = policy_factory()
        if not callable(policy):
            raise TypeError(f"policy must be callable, found {type(policy).__name__}")
        self.env_backend = env_backend if env_backend is not None else (backend or "threading")
        if self.env_backend not in _ENV_BACKENDS:
            raise ValueError(f"env_backend must be one of {_ENV_BACKENDS}, found {self.env_backend!r}")
        if not isinstance(yield_completed_trajectories, bool):
            raise TypeError(
                f"yield_completed_trajectories must be a bool, found {yield_completed_trajectories!r}"
            )
        options = CollectorOptions.parse(name, False, dict(
            frames_per_batch=frames_per_batch, total_frames=total_frames,
            create_env_kwargs=create_env_kwargs, reset_at_each_iter=reset_at_each_iter,
            postproc=postproc, exploration_type=exploration_type, replay_buffer=replay_buffer,
            trajs_per_batch=1 if yield_completed_trajectories else None,
            traj_format="cat" if yield_completed_trajectories else None,
        ))
        if options.reset_at_each_iter:
            raise ValueError(
                f"{name}: reset_at_each_iter=True is not supported: the envs step free of "
                "batch boundaries (no barrier at which to reset them all)"
            )
        fns = check_env_fns(create_env_fn)
        super().__init__(policy, options, num_workers=len(fns))
        self.yield_completed_trajectories = yield_completed_trajectories
        self.create_env_fn = [
            functools.partial(fn, **kw) if kw else fn
            for fn, kw in zip(fns, options.env_kwargs(len(fns)), strict=True)
        ]
        self.device = self.policy_device = as_device(device, "device")
        self.weights = PolicyWeights(policy) if isinstance(policy, nn.Module) else None
        self._server_args = dict(
            max_batch_size=64 if max_batch_size is None else max_batch_size,
            min_batch_size=1 if min_batch_size is None else min_batch_size,
            server_timeout=0.01 if server_timeout is None else server_timeout,
            device=self.device, exploration_type=options.exploration_type,
            policy_version=policy_version, policy_version_key=policy_version_key,
        )
        # checks the server's arguments now, before any env is built
        BatchedPolicyServer(policy, len(fns), **self._server_args)
        self._seeds: list[int | None] = [None] * self.num_workers
        self._server: BatchedPolicyServer | None = None

    # ------------------------------------------------------------------ the graph
    def _head(self, g: Graph, gated: bool, budget: int | None) -> tuple[Node, Trigger | None]:
        n = self.num_workers
        total = None if self.total_frames == -1 else self.total_frames
        policy = self.weights if self.weights is not None else self.policy
        self._server = BatchedPolicyServer(policy, n, total_frames=total, **self._server_args)
        server = g.add(self._server, name="server", placement="thread")
        batcher = g.add(TransitionBatcher(self.frames_per_batch, n, total_frames=total,
                                          per_env=self.yield_completed_trajectories),
                        name="batcher")
        for i, fn in enumerate(self.create_env_fn):
            placement = Process() if self.env_backend == "multiprocessing" else "thread"
            env = g.add(EnvSource(fn, seed=self._seeds[i]), name=f"env{i}", placement=placement)
            g.connect(env["obs"], server[f"obs_{i}"], capacity=1)
            g.connect(server[f"action_{i}"], env["action"], capacity=1, feedback=True)
            g.connect(env["out"], batcher[f"in_{i}"], capacity=2)
        return batcher, None

    # ------------------------------------------------------------------ control
    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed the envs for the next pass: env ``i`` gets ``seed + i`` (every env ``seed``
        with ``static_seed``); returns the next free seed, ``seed + num_envs`` (``seed``
        with ``static_seed``)."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, found {type(seed).__name__}")
        if static_seed:
            self._seeds = [seed] * self.num_workers
            return seed
        self._seeds = [seed + i for i in range(self.num_workers)]
        return seed + self.num_workers

    def update_policy_weights_(self, policy_or_weights: nn.Module | TensorDictBase | dict | None = None,
                               *, weights: Any = None, policy: Any = None) -> None:
        """Copy new weights (a module, a TensorDict of parameters or a state dict; default:
        the policy given at construction, with its current weights) into the server's copy and
        bump the version; the server uses them from its next call."""
        given = [x for x in (policy_or_weights, weights, policy) if x is not None]
        if len(given) > 1:
            raise TypeError("update_policy_weights_ takes one of policy_or_weights, weights, policy")
        if self.weights is None:
            if given:
                raise TypeError(
                    "update_policy_weights_ got weights but the policy is not a torch module "
                    f"({type(self.policy).__name__})"
                )
            return
        publish(self.weights, given[0] if given else self.policy)

    def _close_envs(self) -> None:
        for fn in self.create_env_fn:
            if isinstance(fn, EnvBase):
                fn.close()


def _refuse(owner: str, refused: dict[str, Any], backend: Any, policy_backend: Any,
            env_exchange: Any, envs_per_worker: Any, chunk: Any, model_id: Any,
            verbose: Any) -> None:
    """TypeError/ValueError naming the first argument this topology does not implement."""
    for key in refused:
        if key in _REFUSED:
            if refused[key] is None:
                continue
            raise TypeError(
                f"{owner}: {key} is not supported (streamrl serves the policy from a thread of "
                "the collecting graph; see docs/torchrl_differences.md)"
            )
        raise TypeError(f"{owner} got an unexpected keyword argument {key!r}")
    for key, value in (("backend", backend), ("policy_backend", policy_backend)):
        if value not in (None, "threading", "multiprocessing") or (
            key == "policy_backend" and value == "multiprocessing"
        ):
            raise ValueError(
                f"{owner}: {key}={value!r} is not supported (envs run in threads or processes, "
                "the policy server in a thread; ray and monarch are not available here)"
            )
    defaults = (("env_exchange", env_exchange, "auto"), ("envs_per_worker", envs_per_worker, 1),
                ("transition_chunk_size", chunk, "auto"), ("weight_sync_model_id", model_id, "policy"),
                ("verbose", verbose, False))
    for key, value, default in defaults:
        if value != default:
            raise ValueError(
                f"{owner}: {key}={value!r} is not supported (only its default {default!r}: one "
                "env per EnvSource, transitions delivered one step at a time)"
            )
