"""Evaluator: deterministic evaluation episodes every N learner updates."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.envs.common import EnvBase
from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.graph import Operator
from streamrl.ops._per_task import per_task_means
from streamrl.ops.policy_weights import PolicyWeights
from streamrl.ops.rollout import make_env

__all__ = ["EpisodeStats", "Evaluator", "evaluate_episodes", "play_episodes"]


_TASK_KEY = ("task", "id")


class EpisodeStats(NamedTuple):
    """What :func:`play_episodes` returns: one entry per episode, in sub-env order."""

    returns: torch.Tensor  # float64 [n]
    lengths: torch.Tensor  # int64 [n]
    #: each episode's ("task", "id") when the env writes one (SampleTask), else None
    tasks: torch.Tensor | None = None


def play_episodes(
    env: EnvBase,
    policy: Callable[[TensorDictBase], TensorDictBase],
    *,
    num_episodes: int | None = None,
    exploration_type: ExplorationType = ExplorationType.DETERMINISTIC,
    seed: int | None = None,
    max_steps: int = 100_000,
    truncate: bool = False,
    reward_key: Any = ("next", "reward"),
    done_key: Any = ("next", "done"),
) -> EpisodeStats:
    """Play ``num_episodes`` episodes (default: one per sub-env) and return their returns and
    lengths.

    Episodes run side by side, one per sub-env, in rounds: a round costs as many policy calls
    as its longest episode, and every sub-env's first episode of a round counts, whatever its
    length (no bias toward short episodes, which "first N to finish" would have). More
    episodes than sub-envs take several rounds; the result keeps the first ``num_episodes``.
    ``seed`` re-seeds the env once, before the first round (sub-env ``i`` gets ``seed + i``).
    An episode still running after ``max_steps`` steps raises ``RuntimeError``, or with
    ``truncate=True`` ends there (its return and length so far count).

    >>> from streamrl.envs import GymEnv, SerialEnv
    >>> env = SerialEnv(2, lambda: GymEnv("CartPole-v1"))
    >>> stats = play_episodes(env, lambda td: env.rand_action(td), num_episodes=3, seed=0)
    >>> stats.returns.shape, bool((stats.returns == stats.lengths).all())
    (torch.Size([3]), True)
    >>> env.close()
    """
    if not isinstance(env, EnvBase):
        raise TypeError(f"env must be an EnvBase, found {type(env).__name__}")
    if not callable(policy):
        raise TypeError(f"policy must be callable, found {type(policy).__name__}")
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, found {max_steps!r}")
    n = max(1, env.batch_size.numel())
    wanted = n if num_episodes is None else num_episodes
    if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
        raise ValueError(f"num_episodes must be a positive int or None, found {num_episodes!r}")
    if seed is not None:
        env.set_seed(seed)
    all_returns: list[torch.Tensor] = []
    all_lengths: list[torch.Tensor] = []
    all_tasks: list[torch.Tensor] = []
    td = env.reset()
    # thread-local: evaluation often runs beside collection, in another thread of the process
    with torch.no_grad(), set_exploration_type(exploration_type, thread_local=True):
        while sum(r.numel() for r in all_returns) < wanted:
            returns = torch.zeros(n, dtype=torch.float64)
            lengths = torch.zeros(n, dtype=torch.int64)
            finished = torch.zeros(n, dtype=torch.bool)
            task = td.get(_TASK_KEY, None)  # the round's episodes play these tasks
            if task is not None:
                all_tasks.append(task.reshape(n, -1)[:, 0].clone())
            for _ in range(max_steps):
                stepped, td = env.step_and_maybe_reset(policy(td))
                reward = stepped.get(reward_key).reshape(n, -1).sum(-1)
                returns += torch.where(finished, 0.0, reward.to(torch.float64))
                lengths += (~finished).long()
                finished |= stepped.get(done_key).reshape(n)
                if bool(finished.all()):
                    break
            else:
                if not truncate:
                    raise RuntimeError(
                        f"play_episodes: {int((~finished).sum())} of {n} episodes did not end "
                        f"within max_steps={max_steps}"
                    )
                td = env.reset()  # the truncated episodes end here: start the next round fresh
            all_returns.append(returns)
            all_lengths.append(lengths)
    tasks = torch.cat(all_tasks)[:wanted] if len(all_tasks) == len(all_returns) else None
    return EpisodeStats(torch.cat(all_returns)[:wanted], torch.cat(all_lengths)[:wanted],
                        tasks)


def evaluate_episodes(
    env: EnvBase,
    policy: Callable[[TensorDictBase], TensorDictBase],
    *,
    exploration_type: ExplorationType = ExplorationType.DETERMINISTIC,
    seed: int | None = None,
    max_steps: int = 100_000,
) -> torch.Tensor:
    """Run one episode in every sub-env of ``env`` and return their returns (shape ``[N]``):
    :func:`play_episodes`' returns.

    All episodes run side by side, so ``N`` episodes cost as many policy calls as the
    longest one, not their sum. ``seed`` re-seeds the env first (sub-env ``i`` gets
    ``seed + i``), so that successive evaluations start from the same states. Sub-envs that
    finish early are reset and keep stepping (their steps are not counted) until the last one
    is done, or ``max_steps`` is reached (``RuntimeError``: an episode that never ends).

    >>> from streamrl.envs import GymEnv, SerialEnv
    >>> env = SerialEnv(3, lambda: GymEnv("CartPole-v1"))
    >>> evaluate_episodes(env, lambda td: env.rand_action(td), seed=0).shape
    torch.Size([3])
    >>> env.close()
    """
    return play_episodes(env, policy, exploration_type=exploration_type, seed=seed,
                         max_steps=max_steps).returns


class Evaluator(Operator):
    """Plays one episode in every sub-env of an evaluation env each time the count ``key`` of
    the incoming messages (default: the learner's ``updates``) crosses a multiple of
    ``interval``, and emits ``{"eval_return": mean, "eval_return_std", "eval_episodes",
    key: count, "policy_version", "eval_s"}``. When the stream ends the final weights are
    evaluated too (unless that count was just evaluated), so a run always ends with a score.

    Connect it with a latest-value edge (``kind="latest"``): it only needs the newest count,
    and evaluating then never holds the learner back. Place it on a thread. The weights
    played are then the shared ones *during* the evaluation: a learner that publishes
    meanwhile changes them mid-episode.

    **Snapshots.** A message carrying ``weights`` (a :class:`WeightSync`'s ``snapshot`` port,
    on a FIFO edge) is always evaluated, with exactly those weights loaded into a private
    copy of the policy, so that later publications do not change them; its
    ``policy_version`` is reported. With ``interval=None`` only such messages (and the final
    count) are evaluated.

    Args:
        create_env: the evaluation env (a batched env plays several episodes side by side),
            or a callable that builds it in :meth:`open`.
        policy: a ``td -> td`` callable, or a :class:`PolicyWeights` (its published copy is
            played and its version reported).
        interval: evaluate every ``interval`` counts (``None``: only snapshots).
        seed: re-seeds the env before each evaluation, so every evaluation starts from the
            same states.
        exploration_type: DETERMINISTIC by default (greedy / mean actions).
        frames: a function of the count giving the frames collected for those weights; when
            given, each result also holds ``eval_frames`` (a :class:`MetricsSink` then lists
            the evaluation at those frames instead of at the frames counted when it arrives).
    """

    outputs = ("out",)
    state_keys = ("evaluations", "next_at")

    def __init__(
        self,
        create_env: EnvBase | Callable[[], EnvBase],
        policy: Callable[[TensorDictBase], TensorDictBase] | PolicyWeights,
        *,
        interval: int | None,
        seed: int | None = None,
        key: str = "updates",
        exploration_type: ExplorationType = ExplorationType.DETERMINISTIC,
        max_steps: int = 100_000,
        frames: Callable[[int], int] | None = None,
    ):
        if not isinstance(policy, PolicyWeights) and not callable(policy):
            raise TypeError(f"policy must be callable or a PolicyWeights, found {type(policy).__name__}")
        if interval is not None and (
            not isinstance(interval, int) or isinstance(interval, bool) or interval < 1
        ):
            raise ValueError(f"interval must be a positive int or None, got {interval!r}")
        if frames is not None and not callable(frames):
            raise TypeError(f"frames must be callable or None, found {type(frames).__name__}")
        self.frames = frames
        self._frozen: Any = None
        self.create_env = create_env
        self.weights = policy if isinstance(policy, PolicyWeights) else None
        self.policy = policy.policy if isinstance(policy, PolicyWeights) else policy
        self.interval = interval
        self.seed = seed
        self.key = key
        self.exploration_type = exploration_type
        self.max_steps = max_steps
        self.next_at = interval  # None: snapshots only
        self.evaluations = 0
        self.env: EnvBase | None = None
        self._count: int | None = None
        self._evaluated_at: int | None = None

    def open(self) -> None:
        self.env = make_env(self.create_env)
        return None

    def evaluate(self, count: int | None = None, weights: TensorDictBase | None = None,
                 version: int | None = None) -> dict[str, Any]:
        """Run the episodes now, with ``weights`` (parameters and buffers of the policy, as
        :meth:`PolicyWeights.snapshot` gives them, reported as ``version``) when given, else
        with the policy as it is; returns the result dict."""
        if self.env is None:
            raise RuntimeError("Evaluator.evaluate() called before open()")
        t0 = time.perf_counter()
        policy = self.policy if weights is None else self._load(weights)
        stats = play_episodes(self.env, policy, exploration_type=self.exploration_type,
                              seed=self.seed, max_steps=self.max_steps)
        returns = stats.returns
        self.evaluations += 1
        self._evaluated_at = count
        result: dict[str, Any] = {
            "eval_return": float(returns.mean()),
            "eval_return_std": float(returns.std()) if returns.numel() > 1 else 0.0,
            "eval_episodes": int(returns.numel()),
            "eval_s": time.perf_counter() - t0,
        }
        if stats.tasks is not None:  # a multi-task env: the mean return per task too
            result.update(per_task_means("eval_return", returns, stats.tasks))
        if count is not None:
            result[self.key] = count
            if self.frames is not None:
                result["eval_frames"] = int(self.frames(count))
        if version is not None:
            result["policy_version"] = version
        elif self.weights is not None:
            result["policy_version"] = self.weights.version
        return result

    def _load(self, weights: TensorDictBase) -> Any:
        """The private copy of the policy (made once) holding ``weights``."""
        if not isinstance(self.policy, torch.nn.Module):
            raise TypeError(f"evaluating snapshot weights needs an nn.Module policy, found "
                            f"{type(self.policy).__name__}")
        if self._frozen is None:
            self._frozen = copy.deepcopy(self.policy)  # plain memory, not the shared copy
        params = TensorDict.from_module(self._frozen)
        with torch.no_grad():
            params.update_(weights)
        return self._frozen

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        msg = inputs["in"]
        if not isinstance(msg, dict) or self.key not in msg:
            found = sorted(msg) if isinstance(msg, dict) else type(msg).__name__
            raise TypeError(f"Evaluator expects dicts with {self.key!r}, found {found}")
        self._count = int(msg[self.key])
        weights = msg.get("weights")
        if weights is not None:
            return {"out": self.evaluate(self._count, weights, msg.get("policy_version"))}
        if self.interval is None or self._count < self.next_at:
            return None
        self.next_at = (self._count // self.interval + 1) * self.interval
        return {"out": self.evaluate(self._count)}

    def finish(self) -> dict[str, Any] | None:
        if self.env is None or (self._evaluated_at is not None
                                and self._evaluated_at == self._count):
            return None
        return {"out": self.evaluate(self._count)}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def __repr__(self) -> str:
        return f"Evaluator(interval={self.interval}, key={self.key!r})"


