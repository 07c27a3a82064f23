"""SyncDataCollector: one env (or batched env) and a policy, lockstep with the training loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl.collectors._base import DataCollectorBase, load_weights
from streamrl.collectors._options import CollectorOptions
from streamrl.envs.common import EnvBase
from streamrl.graph import Graph, Node
from streamrl.ops import Rollout, Trigger, make_env

__all__ = ["SyncDataCollector"]


class SyncDataCollector(DataCollectorBase):
    """Collects ``[*env_batch, T]`` batches in the calling process, one per iteration.

    The topology is ``Trigger -> Rollout -> postproc (-> CompleteTrajectories) (->
    ReplaySink) -> (iterator)``: a batch is collected only when the loop asks for the next
    one, with the policy object itself (no copy), so an on-policy learner always trains on
    data from its current weights. The env is built when the collector is (TorchRL's
    behaviour), so :meth:`set_seed` seeds it at once.

    Args:
        create_env_fn: an env or a callable that builds one (called with
            ``**create_env_kwargs``).
        policy: ``td -> td`` writing the action; ``None`` takes random actions.

    Keyword Args (TorchRL 0.14's names and meanings; anything else raises ``TypeError``):
        frames_per_batch: frames per batch (``T = frames_per_batch // num_envs``).
        total_frames: frames in one pass over the collector (``-1``: endless); the last
            batch is whole, so a pass yields ``ceil(total_frames / frames_per_batch)`` batches.
        device: fills whichever of ``storing_device``, ``env_device``, ``policy_device`` is
            not given.
        storing_device: move the yielded batches there.
        env_device: the env's device (the env is not moved: a mismatch is an error).
        policy_device: the policy runs there (a module is moved; its input is cast there and
            its output back to the env's device).
        create_env_kwargs: keyword arguments for ``create_env_fn``.
        max_frames_per_traj: truncate longer episodes (``None`` or negative: no limit).
        init_random_frames: the first ``ceil(n / frames_per_batch)`` batches take random
            actions from the env's action spec (rounded up, with a warning, as TorchRL).
        reset_at_each_iter: reset the env before every batch (new trajectory ids).
        reset_when_done: only ``True`` (done sub-envs are reset as they step).
        postproc: applied to every batch (after ``split_trajs``), e.g. a MultiStep.
        split_trajs: yield ``[n_trajs, T_max]`` zero-padded batches with a
            ``("collector", "mask")`` (:func:`~streamrl.collectors.split_trajectories`).
        exploration_type: the exploration type the policy runs under (RANDOM by default).
        replay_buffer: the collector extends it with every batch and yields ``None``.
        extend_buffer: only ``True`` (whole batches are written).
        trajs_per_batch: yield batches of exactly this many complete trajectories (padded
            ``[n, T_max]`` with the mask); with ``replay_buffer`` every completed trajectory
            is written flat instead.
        traj_format: ``"padded"`` (default) or ``"cat"`` (``[sum T_i]``), with
            ``trajs_per_batch`` only.
        compile_policy: ``True`` or a dict of :func:`~streamrl.compile_with_warmup` keyword
            arguments (``warmup=``, ``mode=``...): the rollout runs the policy compiled.
        cudagraph_policy: ``True`` or a dict of :class:`~tensordict.nn.CudaGraphModule`
            keyword arguments (``warmup=``): the rollout runs the policy in a CUDA graph
            (without CUDA, as it is).
        policy_factory: a zero-argument callable returning the policy (instead of
            ``policy``; called once, here).
        trust_policy: call the policy on the TensorDict as it is (by default a callable
            whose arguments are observation keys, ``def policy(observation)``, is wrapped
            into a TensorDict module, as ``env.rollout`` does).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> collector = SyncDataCollector(lambda: GymEnv("CartPole-v1"), None,
    ...                               frames_per_batch=50, total_frames=100)
    >>> [batch.batch_size for batch in collector]
    [torch.Size([50]), torch.Size([50])]
    >>> collector.shutdown()
    """

    _graph_name = "sync-collector"

    def __init__(
        self,
        create_env_fn: EnvBase | Callable[..., EnvBase],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        **kwargs: Any,
    ):
        options = CollectorOptions.parse(type(self).__name__, self._multi, kwargs)
        super().__init__(policy, options)
        if not isinstance(create_env_fn, EnvBase) and not callable(create_env_fn):
            raise TypeError(
                f"create_env_fn must be an env or a callable, found {type(create_env_fn).__name__}"
            )
        if not isinstance(options.create_env_kwargs, (dict, type(None))):
            raise TypeError(
                f"create_env_kwargs must be a dict, found {type(options.create_env_kwargs).__name__}"
            )
        (env_kwargs,) = options.env_kwargs(1)
        if isinstance(create_env_fn, EnvBase) and env_kwargs:
            raise ValueError("create_env_kwargs needs create_env_fn to be a callable, not an env")
        self.create_env_fn = create_env_fn
        self.env = make_env(functools.partial(create_env_fn, **env_kwargs)
                            if env_kwargs else create_env_fn)
        self.policy_version = 0
        self._seed: int | None = None

    def _head(self, g: Graph, gated: bool, budget: int | None) -> tuple[Node, Trigger | None]:
        # a restored rollout keeps counting its frames: this pass's budget comes on top
        done = 0 if self._loaded_rollout is None else int(self._loaded_rollout["frames"])
        rollout = Rollout(
            self.env,
            self.policy,
            frames_per_batch=self.frames_per_batch,
            total_frames=None if budget is None else done + budget * self.frames_per_batch,
            max_frames_per_traj=self.max_frames_per_traj,
            exploration_type=self.exploration_type,
            seed=self._seed,
            gated=gated,
            init_random_frames=self.options.random_batches() * self.frames_per_batch,
            reset_at_each_iter=self.reset_at_each_iter,
            env_device=self.env_device,
            policy_device=self.policy_device,
            policy_wrapper=self.options.policy_wrapper(),
            trust_policy=self.options.trust_policy,
        )
        rollout.version = self.policy_version
        if self._loaded_rollout is not None:
            rollout.load_state_dict(self._loaded_rollout)
            self._loaded_rollout = None
        self._rollouts = [rollout]
        r = g.add(rollout, name="rollout")
        if not gated:
            return r, None
        trigger = Trigger()
        g.connect(g.add(trigger, name="trigger", placement="thread"), r)
        return r, trigger

    def state_dict(self) -> dict[str, Any]:
        """The collector's state between batches: ``frames`` (collected so far),
        ``policy_version`` and ``rollout`` (its :meth:`~streamrl.ops.Rollout.state_dict`:
        while iterating, the envs mid-episode, their carried observations and trajectory
        ids). Plain data: it saves with :func:`streamrl.train.save_checkpoint`.

        >>> from streamrl.envs.libs.gym import GymEnv
        >>> collector = SyncDataCollector(lambda: GymEnv("CartPole-v1"), None,
        ...                               frames_per_batch=10, total_frames=20)
        >>> it = iter(collector); _ = next(it)
        >>> sorted(collector.state_dict()), collector.state_dict()["frames"]
        (['frames', 'policy_version', 'rollout'], 10)
        >>> collector.shutdown()
        """
        if self._rollouts:
            rollout = self._rollouts[0].state_dict()
            reason = (rollout["env_state"] or {}).get("uncapturable")
            if reason is not None:
                raise NotImplementedError(f"{type(self).__name__}: the state of its envs "
                                          f"cannot be captured: {reason}")
        elif self._loaded_rollout is not None:
            rollout = self._loaded_rollout
        else:
            rollout = {"frames": 0, "traj_ids": None, "env_state": None}
        return {"frames": self.frames, "policy_version": self.policy_version,
                "rollout": rollout}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into the next iteration: its envs continue the saved
        episodes (the seed given to :meth:`set_seed` is then not applied), trajectory ids
        and policy versions go on from the saved ones. ``total_frames`` still counts the
        frames of one pass. The keys are checked before anything changes; the envs' states
        are checked when the iteration opens them, before any step."""
        self.check_state_dict(state)
        if self._iterator is not None:
            raise RuntimeError("load_state_dict while iterating: load it before the loop "
                               "(it is applied when the next iteration starts)")
        self.frames = int(state["frames"])
        self.policy_version = int(state["policy_version"])
        self._loaded_rollout = state["rollout"]

    def check_state_dict(self, state: Any) -> None:
        """Raise ``ValueError`` unless ``state`` has the keys of :meth:`state_dict` (a
        :class:`streamrl.checkpoint.Checkpoint` calls it before loading anything)."""
        expected = {"frames", "policy_version", "rollout"}
        if not isinstance(state, dict) or set(state) != expected:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"SyncDataCollector.load_state_dict expected keys "
                             f"{sorted(expected)}, found {found}")
        rollout = state["rollout"]
        keys = set(Rollout.state_keys)
        if not isinstance(rollout, dict) or set(rollout) != keys:
            found = sorted(rollout) if isinstance(rollout, dict) else type(rollout).__name__
            raise ValueError(f"SyncDataCollector state['rollout']: expected keys "
                             f"{sorted(keys)}, found {found}")

    def set_seed(self, seed: int, static_seed: bool = False) -> int:
        """Seed the env (and torch, in this process) when the next pass starts; returns the
        next seed to give another env (``seed + num_envs``, as the env's ``set_seed``), or
        ``seed`` itself with ``static_seed``."""
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, found {type(seed).__name__}")
        self._seed = seed
        return seed if static_seed else seed + max(1, self.env.batch_size.numel())

    def reset(self) -> None:
        """Reset the env before the next batch: new episodes, with new trajectory ids (a pass
        not yet started resets the env anyway)."""
        for rollout in self._rollouts:
            rollout.request_reset()

    def update_policy_weights_(self, policy_or_weights: nn.Module | TensorDictBase | dict | None = None,
                               *, worker_ids: int | list[int] | None = None) -> None:
        """The rollout uses the policy object itself: ``policy_or_weights`` (a module, a
        TensorDict of parameters or a state dict), when given, is copied into it. Either way
        the policy version stamped on the next batches is bumped. ``worker_ids``: ``0`` or
        ``None`` (one worker)."""
        self._resolve_targets(worker_ids)
        if policy_or_weights is not None:
            if not isinstance(self.policy, nn.Module):
                raise TypeError(
                    "update_policy_weights_ got weights but the policy is not a torch module "
                    f"({type(self.policy).__name__})"
                )
            load_weights(self.policy, policy_or_weights)
        self.policy_version += 1
        for rollout in self._rollouts:
            rollout.version = self.policy_version

    def _close_envs(self) -> None:
        if not self.env.is_closed:
            self.env.close()
