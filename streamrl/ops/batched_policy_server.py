"""BatchedPolicyServer: one policy call for the observations of whichever envs are ready."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase, lazy_stack

from streamrl.envs.utils import ExplorationType
from streamrl.graph import Operator
from streamrl.ops._trajectories import set_collector_entries
from streamrl.ops.policy_stage import apply_policy
from streamrl.ops.policy_weights import PolicyWeights

__all__ = ["BatchedPolicyServer"]


class BatchedPolicyServer(Operator):
    """Serves ``num_envs`` env sources that step independently: input port ``obs_i`` and
    output port ``action_i`` per env (``input_mode = "any"``).

    Each step receives the observations of the envs that are ready (the runtime delivers
    whichever ports hold an item), stacks up to ``max_batch_size`` of them, runs the policy
    once (no gradients, under ``exploration_type``), splits the result and emits each env's
    action on its own port, stamped with the policy version (``("collector",
    "policy_version")`` and ``policy_version_key``). Envs keep their own pace: there is no
    barrier, the batch is whatever has accumulated while the previous call ran.

    ``min_batch_size`` holds observations back until that many are pending. The operator
    only runs when an observation arrives, so the hold ends at the first arrival that
    finds ``min_batch_size`` pending, the oldest pending one older than ``server_timeout``
    seconds, or every env waiting (an env that is waiting sends nothing more, so waiting
    longer could only deadlock). Without ``server_timeout`` only the first and the last
    condition end it.

    ``total_frames`` (optional) ends the stream once actions for that many frames were
    served: the env sources' action inputs end, so the whole cycle winds down.

    Args:
        policy: ``td -> td`` writing the action, or a :class:`PolicyWeights` (its shared copy
            is used and its version stamped).
        num_envs: the env sources served (ports ``obs_0..`` and ``action_0..``).
        max_batch_size: at most this many envs per policy call (``None``: all that are
            ready).
        min_batch_size: hold back until this many envs are ready (see above).
        server_timeout: seconds after which a held observation is served anyway.
        device: run the policy on this device (outputs move back to the inputs' device).
        exploration_type: the exploration type of the policy (for this thread only).
        policy_version: added to the version stamped (the initial behaviour-policy version).
        policy_version_key: also stamp the version under this key (``None``: only
            ``("collector", "policy_version")``).
        total_frames: stop after serving actions for this many frames (``None``: never).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> def echo(td):
    ...     return td.set("action", td["observation"] * 2)
    >>> server = BatchedPolicyServer(echo, num_envs=3)
    >>> obs = {f"obs_{i}": TensorDict({"observation": torch.tensor([float(i)])}) for i in (0, 2)}
    >>> out = server.step(obs)
    >>> sorted(out), out["action_2"]["action"].tolist(), server.calls
    (['action_0', 'action_2'], [4.0], 1)
    """

    input_mode = "any"
    state_keys = ("calls", "served")

    def __init__(
        self,
        policy: Callable[[TensorDictBase], TensorDictBase] | PolicyWeights,
        num_envs: int,
        *,
        max_batch_size: int | None = None,
        min_batch_size: int = 1,
        server_timeout: float | None = None,
        device: torch.device | str | None = None,
        exploration_type: ExplorationType = ExplorationType.RANDOM,
        policy_version: int = 0,
        policy_version_key: Any = "policy_version",
        total_frames: int | None = None,
    ):
        self.weights = policy if isinstance(policy, PolicyWeights) else None
        self.policy = self.weights.policy if self.weights is not None else policy
        if not callable(self.policy):
            raise TypeError(f"policy must be callable, found {type(policy).__name__}")
        _check_int("num_envs", num_envs, 1)
        if max_batch_size is not None:
            _check_int("max_batch_size", max_batch_size, 1)
        _check_int("min_batch_size", min_batch_size, 1)
        if max_batch_size is not None and min_batch_size > max_batch_size:
            raise ValueError(
                f"min_batch_size ({min_batch_size}) must not exceed max_batch_size "
                f"({max_batch_size})"
            )
        if server_timeout is not None and (
            isinstance(server_timeout, bool) or not isinstance(server_timeout, (int, float))
            or server_timeout < 0
        ):
            raise ValueError(f"server_timeout must be a number >= 0 or None, found {server_timeout!r}")
        if total_frames is not None:
            _check_int("total_frames", total_frames, 1)
        _check_int("policy_version", policy_version, 0)
        if not isinstance(exploration_type, ExplorationType):
            raise TypeError(f"exploration_type must be an ExplorationType, found {exploration_type!r}")
        self.num_envs = num_envs
        self.inputs = tuple(f"obs_{i}" for i in range(num_envs))
        self.outputs = tuple(f"action_{i}" for i in range(num_envs))
        self._index = {port: i for i, port in enumerate(self.inputs)}
        self.max_batch_size = max_batch_size or num_envs
        self.min_batch_size = min(min_batch_size, num_envs)
        self.server_timeout = server_timeout
        self.device = None if device is None else torch.device(device)
        self.exploration_type = exploration_type
        self.policy_version = policy_version
        self.policy_version_key = policy_version_key
        self.total_frames = total_frames
        self.calls = 0  # policy calls
        self.served = 0  # frames (env rows) served
        # env index -> (observation, arrival time), oldest first
        self._pending: dict[int, tuple[TensorDictBase, float]] = {}

    # ------------------------------------------------------------------ the hook
    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        if self.total_frames is not None and self.served >= self.total_frames:
            raise StopIteration
        now = time.monotonic()
        for port, td in inputs.items():
            if not isinstance(td, TensorDictBase):
                raise TypeError(
                    f"BatchedPolicyServer expects TensorDict observations on {port!r}, found "
                    f"{type(td).__name__}"
                )
            self._pending[self._index[port]] = (td, now)
        if not self._ready(now):
            return None
        envs = list(self._pending)[: self.max_batch_size]
        envs = self._within_budget(envs)
        obs = [self._pending.pop(i)[0] for i in envs]
        actions = self._run(obs)
        return {f"action_{i}": a for i, a in zip(envs, actions, strict=True)}

    def _ready(self, now: float) -> bool:
        n = len(self._pending)
        if n >= self.min_batch_size or n >= self.num_envs:
            return True
        oldest = next(iter(self._pending.values()))[1]
        return self.server_timeout is not None and now - oldest >= self.server_timeout

    def _within_budget(self, envs: list[int]) -> list[int]:
        """The leading envs whose frames fit in what is left of ``total_frames`` (at least
        one: a batched env may overshoot by less than one of its steps)."""
        if self.total_frames is None:
            return envs
        left, kept = self.total_frames - self.served, []
        for i in envs:
            rows = max(1, self._pending[i][0].batch_size.numel())
            if kept and rows > left:
                break
            kept.append(i)
            left -= rows
            if left <= 0:
                break
        return kept

    def _run(self, obs: list[TensorDictBase]) -> list[TensorDictBase]:
        shapes = [td.batch_size for td in obs]
        flat = all(len(s) == 0 for s in shapes)
        if flat:
            try:
                batch = torch.stack(obs)
            except (KeyError, RuntimeError, ValueError):  # entries differ between envs
                batch = lazy_stack(obs)
        else:
            batch = torch.cat([td.reshape(-1) for td in obs])
        out = apply_policy(self.policy, batch, self.device, self.exploration_type)
        version = self.policy_version + (self.weights.version if self.weights is not None else 0)
        stamp = torch.full(out.batch_size, version, dtype=torch.int64)
        set_collector_entries(out, policy_version=stamp)
        if self.policy_version_key is not None:
            out.set(self.policy_version_key, stamp)
        self.calls += 1
        rows = out.batch_size[0]
        self.served += int(rows)
        if flat:
            return list(out.unbind(0))
        sizes = [max(1, s.numel()) for s in shapes]
        return [part.reshape(s) for part, s in zip(out.split(sizes, 0), shapes, strict=True)]

    def __repr__(self) -> str:
        return (
            f"BatchedPolicyServer(num_envs={self.num_envs}, max_batch_size="
            f"{self.max_batch_size}, min_batch_size={self.min_batch_size}, device={self.device})"
        )


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, found {value!r}")
