"""Rollout: a source operator that steps an env with a policy and emits [envs x time] batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.envs import EnvBase, run_steps
from streamrl.envs.rollout_options import make_compatible_policy
from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.graph import Operator
from streamrl.ops._trajectories import TrajectoryIds, set_collector_entries
from streamrl.ops.policy_weights import PolicyWeights

__all__ = ["Rollout", "make_env"]


def make_env(create_env: EnvBase | Callable[[], EnvBase]) -> EnvBase:
    """``create_env`` itself if it is an env, else ``create_env()`` (checked to be an env)."""
    env = create_env if isinstance(create_env, EnvBase) else create_env()
    if not isinstance(env, EnvBase):
        raise TypeError(
            f"create_env must be an EnvBase or return one, found {type(env).__name__}"
        )
    return env


class Rollout(Operator):
    """Source: runs ``policy`` in an env and emits one ``[*env_batch, T]`` batch per step.

    The whole inner loop (policy, env step, reset of done sub-envs) runs inside this one
    operator, so a batch costs one message, whatever its length. Steps are written into
    preallocated ``[envs, T]`` buffers through the env's stepping protocol
    (:func:`streamrl.envs.run_steps`: the same data as the per-step TensorDict loop). Each
    batch carries
    ``("collector", "traj_ids")`` and ``("collector", "policy_version")``.

    Args:
        create_env: an env, or a zero-argument callable that builds one (built in :meth:`open`,
            so a process-placed rollout builds its env in its worker).
        policy: a callable ``td -> td`` writing the action; ``None`` takes random actions.
            A :class:`PolicyWeights` may be given instead: its shared copy is used and its
            version stamped on each batch.
            Actions are projected into the env's action spec before each step (clamped into
            bounds, like SB3's collection; envs reject out-of-bounds actions), so the stored
            action is the one the env executed. ``project_actions=False`` turns this off.
        frames_per_batch: frames per emitted batch; ``T = frames_per_batch // num_envs``.
        total_frames: stop after this many frames (``None`` or ``-1``: never stop).
        max_frames_per_traj: truncate episodes longer than this (``None`` or ``-1``: no limit).
        exploration_type: the exploration type the policy runs under (set for this thread
            only, so an evaluator in another thread is not affected).
        seed: seeds the env (and torch, in the rollout's process) when set.
        gated: wait for a token on a ``trigger`` input port before each batch (lockstep
            collection, paced by a :class:`~streamrl.ops.Trigger`).
        worker_index, num_workers: trajectory ids are ``local_id * num_workers + worker_index``,
            so ids stay unique across the rollouts of one collector.
        init_random_frames: the first batches, while fewer than this many frames were
            collected, take random actions from the env's action spec instead of the policy.
        reset_at_each_iter: reset the env before every batch but the first (each reset starts
            new trajectory ids). :meth:`request_reset` asks for one reset, from any process.
        env_device, policy_device: where the env's data and the policy live; when they differ
            the policy's input is cast to ``policy_device`` and its output back. The env is
            not moved: an env on another device than ``env_device`` is an error.
        policy_wrapper: applied to the policy when the operator opens, in the process that
            runs it (e.g. the collectors' ``compile_policy``); the weights stay the policy's.
        trust_policy: call the policy on the TensorDict as it is; by default a callable whose
            arguments are observation keys is wrapped into a TensorDict module first
            (:func:`~streamrl.envs.rollout_options.make_compatible_policy`).
        weights_port: take weights as messages ``(version, params)`` (``params`` a
            :class:`~tensordict.TensorDict` of the policy's parameters and buffers, as
            :class:`WeightsSource` emits, or None for "unchanged"): new weights are loaded
            into the rollout's own ``policy`` (a module) before the next batch, which is
            stamped with their version. Free-running, they come on a latest-value input port
            ``weights`` that does not trigger batches; ``gated``, on the trigger port itself
            (each token is such a message), so a batch is always collected with the weights
            sent with its token. For rollouts that share no memory with the learner (a Ray
            actor on another node).

    An env given as an object is not closed with the operator (its owner closes it); one
    built from a callable is.
    """

    inputs = ()
    outputs = ("out",)
    # frames collected, the trajectory-id counter (a restored rollout never repeats an id),
    # and, once open, the env mid-episode: its state, the carried observation TensorDict and
    # the episode lengths (None before the first open: a loaded one is applied at open)
    state_keys = ("frames", "traj_ids", "env_state")
    # False forces the plain per-step TensorDict loop (run_steps(buffered=False))
    use_fast_path = True

    def __init__(
        self,
        create_env: EnvBase | Callable[[], EnvBase],
        policy: Callable[[TensorDictBase], TensorDictBase] | PolicyWeights | None = None,
        *,
        frames_per_batch: int,
        total_frames: int | None = None,
        max_frames_per_traj: int | None = None,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
        seed: int | None = None,
        gated: bool = False,
        worker_index: int = 0,
        num_workers: int = 1,
        project_actions: bool = True,
        init_random_frames: int = 0,
        reset_at_each_iter: bool = False,
        env_device: Any = None,
        policy_device: Any = None,
        policy_wrapper: Callable[[Callable], Callable] | None = None,
        trust_policy: bool = False,
        weights_port: bool = False,
    ):
        if not isinstance(frames_per_batch, int) or frames_per_batch < 1:
            raise ValueError(f"frames_per_batch must be a positive int, got {frames_per_batch!r}")
        if total_frames is not None and total_frames != -1 and total_frames < 1:
            raise ValueError(f"total_frames must be positive or -1, got {total_frames!r}")
        if max_frames_per_traj is not None and max_frames_per_traj != -1 and max_frames_per_traj < 1:
            raise ValueError(
                f"max_frames_per_traj must be positive or -1, got {max_frames_per_traj!r}"
            )
        if policy is not None and not callable(policy) and not isinstance(policy, PolicyWeights):
            raise TypeError(f"policy must be callable, found {type(policy).__name__}")
        self.create_env = create_env
        self.weights = policy if isinstance(policy, PolicyWeights) else None
        self.policy = self.weights.policy if self.weights is not None else policy
        if policy_wrapper is not None and not callable(policy_wrapper):
            raise TypeError(f"policy_wrapper must be callable, found {policy_wrapper!r}")
        self.policy_wrapper = policy_wrapper
        self.trust_policy = bool(trust_policy)
        self.frames_per_batch = frames_per_batch
        self.total_frames = None if total_frames in (None, -1) else total_frames
        self.max_frames_per_traj = None if max_frames_per_traj in (None, -1) else max_frames_per_traj
        self.exploration_type = exploration_type
        self.seed = seed
        if not 0 <= worker_index < num_workers:
            raise ValueError(
                f"worker_index must be in [0, num_workers={num_workers}), got {worker_index!r}"
            )
        self.worker_index, self.num_workers = worker_index, num_workers
        self.project_actions = project_actions
        if not isinstance(init_random_frames, int) or init_random_frames < 0:
            raise ValueError(f"init_random_frames must be an int >= 0, got {init_random_frames!r}")
        self.init_random_frames = init_random_frames
        self.reset_at_each_iter = bool(reset_at_each_iter)
        self.env_device = None if env_device is None else torch.device(env_device)
        self.policy_device = None if policy_device is None else torch.device(policy_device)
        # bumped by request_reset (shared memory: works across the worker process boundary)
        self._reset_requests = torch.zeros((), dtype=torch.int64).share_memory_()
        self._resets_done = 0
        self._batches = 0
        if gated:
            self.inputs = ("trigger",)
        if weights_port:
            if not isinstance(self.policy, torch.nn.Module) or self.weights is not None:
                raise TypeError("weights_port needs the policy as a torch module (its weights "
                                f"are loaded into it), found {type(policy).__name__}")
            if not gated:  # free-running: a latest-value port (gated: on the trigger port)
                self.inputs = (*self.inputs, "weights")
                self.latest_triggers = False  # batches come as collected, not per version
        self.weights_port = bool(weights_port)
        self.frames = 0
        self.traj_ids: dict | None = None
        self.env_state: dict | None = None
        self._finished = self._mid_batch = False
        self._traj: TrajectoryIds | None = None
        self.env: EnvBase | None = None
        self.version = 0

    # ------------------------------------------------------------------ hooks
    def open(self) -> None:
        # a restored env state supersedes the seed: the env continues where it was saved, and
        # torch's generator is the run's to restore (re-seeding it here would replay it)
        restored, self.env_state = self.env_state, None
        if self.seed is not None and restored is None:
            torch.manual_seed(self.seed)
        self.env = make_env(self.create_env)
        env_device = self.env.device or torch.device("cpu")
        if self.env_device is not None and self.env_device != env_device:
            raise ValueError(
                f"env_device is {self.env_device} but the env was built on {env_device}: build "
                "the env on env_device (envs are not moved)"
            )
        # a callable reading observation keys by name is wrapped into a TensorDict module
        self._acting = make_compatible_policy(self.policy, self.env, self.trust_policy)
        if self.policy is not None and self.policy_wrapper is not None:
            # wrapped here, in the process that runs the rollout (compiled code stays here)
            self._acting = self.policy_wrapper(self._acting)
        self._outputs: TensorDictBase | None = None
        moved = self.policy_device is not None and self.policy_device != env_device
        if moved and self.policy is not None:
            if isinstance(self.policy, torch.nn.Module) and self.weights is None:
                self.policy.to(self.policy_device)
            self._acting = _OnDevice(self._acting, self.policy_device, env_device)
        if self.seed is not None and restored is None:
            self.env.set_seed(self.seed)
        self.num_envs = max(1, self.env.batch_size.numel())
        self.steps_per_batch = max(1, self.frames_per_batch // self.num_envs)
        if restored is not None:
            self._open_restored(restored)
            return
        self._td = self.env.reset()
        # the env starts new episodes: after a restore their ids follow the saved run's
        first = 0 if self.traj_ids is None else int(self.traj_ids["next_id"])
        self._traj = TrajectoryIds(self.num_envs, first_id=first)
        self._traj_len = torch.zeros(self.num_envs, dtype=torch.int64)

    def _open_restored(self, state: dict[str, Any]) -> None:
        """Continue the saved episodes: env state, carried TensorDict, ids and lengths."""
        if isinstance(state, dict) and "uncapturable" in state:
            raise NotImplementedError(
                f"the saved rollout cannot be resumed exactly: its env state could not be "
                f"captured ({state['uncapturable']})"
            )
        expected = {"env", "td", "traj_len"}
        # (nested batch sizes: saved since agent groups' envs can be captured)
        if not isinstance(state, dict) or not expected <= set(state) <= {
                *expected, "td_batch_sizes"} or self.traj_ids is None:
            raise ValueError(f"Rollout env_state: expected keys {sorted(expected)} (and "
                             f"'td_batch_sizes') and saved traj_ids, found {state!r:.200}")
        traj_len = torch.as_tensor(state["traj_len"])
        if traj_len.shape != (self.num_envs,):
            raise ValueError(f"the saved rollout ran {traj_len.numel()} envs, this one runs "
                             f"{self.num_envs}")
        self._traj = TrajectoryIds(self.num_envs)
        self._traj.load_state_dict(self.traj_ids)
        td = TensorDict(state["td"], batch_size=self.env.batch_size, device=self.env.device)
        sizes = state.get("td_batch_sizes", [])
        for path, size in sorted(sizes, key=lambda entry: len(entry[0])):
            sub = td.get(tuple(path), None)
            if not isinstance(sub, TensorDictBase):
                raise ValueError(f"Rollout env_state: td_batch_sizes names {path}, which is "
                                 f"not a nested TensorDict of the saved carried TensorDict")
            sub.batch_size = torch.Size(size)  # the agent dim of a group, say
        self.env.restore_state(state["env"])
        self._td = td.clone()
        self._traj_len = traj_len.clone()

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self.total_frames is not None and self.frames >= self.total_frames:
            self._finished = True  # nothing left to continue: no env state to save
            raise StopIteration
        env = self.env
        if env is None:
            raise RuntimeError("Rollout.step() called before open()")
        if self.weights_port:
            message = inputs.get("weights", inputs.get("trigger"))
            if message is not None:
                self._load_weights(message)
        version = self.weights.version if self.weights is not None else self.version
        requests = int(self._reset_requests)
        if requests != self._resets_done or (self.reset_at_each_iter and self._batches):
            self._restart(env)
            self._resets_done = requests
        self._batches += 1
        T = self.steps_per_batch
        truncate = self._truncate_long if self.max_frames_per_traj is not None else None
        self._mid_batch = True  # until the batch is done: an error leaves no state to save
        random = self.frames < self.init_random_frames
        policy = None if random else self._acting
        with torch.no_grad(), set_exploration_type(self.exploration_type, thread_local=True):
            template = self._policy_outputs() if random and self._acting is not None else None
            batch, self._td = run_steps(
                env,
                self._td,
                T,
                policy,
                project_actions=self.project_actions,
                callback=truncate,
                buffered=self.use_fast_path,
            )
        if template is not None:
            # random batches carry the policy's other outputs too (zeros, as in TorchRL), so
            # that every batch has the same keys (a replay buffer's storage needs them)
            nb = len(env.batch_size)
            for key, value in template.items(True, True):
                batch.set(key, torch.zeros((*batch.batch_size, *value.shape[nb:]),
                                           dtype=value.dtype, device=value.device))
        # trajectory ids of the whole batch at once, [T, envs] for TrajectoryIds
        done = batch.get(("next", "done")).reshape(self.num_envs, T).transpose(0, 1)
        ids = self._traj.step_many(done).transpose(0, 1).reshape(batch.batch_size)
        set_collector_entries(batch, traj_ids=ids * self.num_workers + self.worker_index)
        batch.set(
            ("collector", "policy_version"),
            torch.full(batch.batch_size, version, dtype=torch.int64),
        )
        self.frames += batch.numel()
        self._mid_batch = False
        return {"out": batch}

    def _load_weights(self, message: Any) -> None:
        """Load a ``(version, params)`` message of the ``weights`` port into the policy."""
        if not (isinstance(message, tuple) and len(message) == 2 and isinstance(message[0], int)
                and (message[1] is None or isinstance(message[1], TensorDictBase))):
            raise TypeError(f"weights come as (version, TensorDict of parameters or None), "
                            f"found {message!r:.100}")
        version, params = message
        if version > self.version and params is not None:
            with torch.no_grad():
                TensorDict.from_module(self.policy).update_(params)
            self.version = version

    def _policy_outputs(self) -> TensorDictBase:
        """What the policy writes besides the action (learnt once, on a copy of the current
        root TensorDict): the entries random batches fill with zeros."""
        if self._outputs is None:
            probe = self._td.clone()
            given = set(probe.keys(True, True))
            out = self._acting(probe)
            # the env's action keys (one per agent group) are drawn at random, not zeroed
            actions = {"action", *self.env.action_keys}
            keys = [k for k in out.keys(True, True)
                    if k not in given and k not in actions and (k if isinstance(k, str)
                                                                 else k[0])
                    not in ("next", "collector")]
            self._outputs = out.select(*keys)
        return self._outputs

    def state_dict(self) -> dict[str, Any]:
        """``frames``, ``traj_ids`` and, while open (between batches), ``env_state``: the
        env's :meth:`~streamrl.envs.EnvBase.capture_state`, the carried observation
        TensorDict (as a dict of tensors) and the episode lengths; also after ``close``
        (captured then, so the state after a run is the same in every placement), and
        ``None`` once the frame budget is spent. Loaded into a rollout before it opens (or
        kept by one that is opened again), the rollout continues those episodes instead of
        resetting (its ``seed`` is then not applied). An env whose state cannot be captured
        is recorded with the reason (``{"uncapturable": ...}``): restoring it raises
        ``NotImplementedError``."""
        if self._traj is not None:
            self.traj_ids = self._traj.state_dict()
        if self.env is not None:
            self.env_state = self._capture_env(NotImplementedError)
        if self._finished:
            self.env_state = None
        return super().state_dict()

    def restart_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` for a rollout taking over from one whose process died: its episodes
        continue when the env state was captured, else new ones start (ids and the frame
        count continue either way)."""
        env_state = state.get("env_state")
        if isinstance(env_state, dict) and "uncapturable" in env_state:
            return {**state, "env_state": None}
        return state

    def _capture_env(self, errors: type[BaseException] | tuple) -> dict[str, Any]:
        # an env whose state cannot be captured is recorded as such: the collector's
        # state_dict and a restoring open() raise with the reason (never a partial resume)
        try:
            env = self.env.capture_state()
        except errors as exc:
            return {"uncapturable": f"{type(exc).__name__}: {exc}"}
        return {"env": env, "td": self._td.clone().to_dict(),
                "td_batch_sizes": _nested_batch_sizes(self._td),
                "traj_len": self._traj_len.clone()}

    def close(self) -> None:
        if self.env is not None:
            if self._mid_batch:  # failed inside a batch: the env's state is not a boundary
                self.env_state = {"uncapturable": "the rollout stopped inside a batch"}
            elif not self._finished and self._traj is not None:
                # the state after the run is the same wherever the rollout ran (a process
                # placement copies it back before closing) and a later open continues it
                self.traj_ids = self._traj.state_dict()
                self.env_state = self._capture_env(Exception)
            if self.env is not self.create_env:  # built here: closed here
                self.env.close()
            self.env = None

    def request_reset(self) -> None:
        """Reset the env before the next batch (thread- and process-safe); the reset starts
        new trajectories with new ids."""
        self._reset_requests += 1

    # ------------------------------------------------------------------ helpers
    def _restart(self, env: EnvBase) -> None:
        self._td = env.reset()
        self._traj.step(torch.ones(self.num_envs, dtype=torch.bool))  # every env: a new id
        self._traj_len.zero_()

    def _truncate_long(self, env: EnvBase, stepped: TensorDictBase) -> None:
        """Mark episodes that reach ``max_frames_per_traj`` truncated (and done), before the
        step's reset."""
        done = stepped.get(("next", "done"))
        self._traj_len += 1
        over = (self._traj_len >= self.max_frames_per_traj).reshape(done.shape)
        if bool(over.any()):
            done = done | over
            stepped.set(("next", "done"), done)
            truncated = stepped.get(("next", "truncated"), None)
            if truncated is not None:
                stepped.set(("next", "truncated"), truncated | over)
        self._traj_len[done.reshape(-1)] = 0

    def __repr__(self) -> str:
        random = (f", init_random_frames={self.init_random_frames}"
                  if self.init_random_frames else "")
        return (
            f"Rollout(frames_per_batch={self.frames_per_batch}, total_frames={self.total_frames}"
            f"{random})"
        )


class _OnDevice:
    """Runs ``policy`` on ``device``: the input is cast there, the output back to ``home``."""

    def __init__(self, policy: Callable[[TensorDictBase], TensorDictBase],
                 device: torch.device, home: torch.device):
        self.policy, self.device, self.home = policy, device, home

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        out = self.policy(td.to(self.device))
        return td.update(out.to(self.home))


def _nested_batch_sizes(td: TensorDictBase) -> list[list[list]]:
    """``[[path, batch size], ...]`` of the nested TensorDicts of ``td`` whose batch size is
    longer than their parent's (an agent group's ``[*batch, n_agents]``), as plain lists:
    ``to_dict`` drops them."""
    out: list[list[list]] = []
    for key in td.keys(True, False):
        value = td.get(key)
        if isinstance(value, TensorDictBase):
            path = [key] if isinstance(key, str) else list(key)
            parent = td if len(path) == 1 else td.get(tuple(path[:-1]))
            if value.batch_size != parent.batch_size:
                out.append([path, list(value.batch_size)])
    return out
