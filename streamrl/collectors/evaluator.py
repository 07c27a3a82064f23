"""Evaluator: evaluation episodes on demand or in the background, with TorchRL's interface.

:class:`Evaluator` plays ``num_trajectories`` episodes with an evaluation copy of the
policy, either blocking (:meth:`Evaluator.evaluate`) or in a background thread
(:meth:`Evaluator.trigger_eval`, then :meth:`Evaluator.poll` / :meth:`Evaluator.wait`), and
reports ``{prefix}/reward`` (mean return), ``reward_std``, ``num_episodes``,
``episode_length``, ``fps`` and ``step``, to a callback and/or a logger.
The episodes are played by :func:`streamrl.ops.play_episodes`, the one evaluation loop of
the library (the pipelines' and the graph :class:`~streamrl.ops.Evaluator` operator's too).
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from streamrl.envs.common import EnvBase
from streamrl.envs.utils import ExplorationType
from streamrl.ops.evaluator import play_episodes
from streamrl.ops.rollout import make_env

__all__ = ["Evaluator"]

_BUSY = ("skip", "error", "queue")


class Evaluator:
    """Evaluate a policy on complete episodes, blocking or in the background.

    Args:
        env: the evaluation env, or a zero-argument callable that builds it (built on first
            use, in the thread that evaluates). A batched env plays several episodes side by
            side.
        policy: the policy to evaluate. The evaluator plays a private copy (so a background
            evaluation never sees the weights half-way through an optimizer step); the copy
            takes the weights given to :meth:`evaluate` / :meth:`trigger_eval`, or, when none
            are given, the current weights of ``policy`` at the time of the call.

    Keyword Args:
        policy_factory: ``(env) -> policy``, instead of ``policy`` (built with the env).
        num_trajectories: episodes per evaluation (default 10).
        max_steps: episodes still running after this many steps end there (truncated);
            ``None``: no limit.
        log_prefix: prefix of the metric names (default ``"eval"``).
        reward_keys, done_keys: where the reward and the done flag are
            (``("next", "reward")``, ``("next", "done")``).
        device: move the evaluation policy there (default: where it is).
        exploration_type: DETERMINISTIC by default.
        dump_video: after each evaluation, call ``dump(step=...)`` on the env's transforms,
            which writes the frames of a :class:`~streamrl.record.VideoRecorder` (default True).
        on_result: ``(TensorDict) -> None`` called with the metrics after each evaluation.
        busy_policy: what :meth:`trigger_eval` does while an evaluation runs: ``"skip"``
            (return False), ``"error"`` (raise) or ``"queue"`` (run it next).
        backend: ``"thread"`` (the only one here: evaluation is torch and env work, which
            releases the GIL in kernels; put the env in a :class:`~streamrl.envs.ParallelEnv`
            to move env stepping into processes).
        logger: a :class:`~streamrl.record.Logger`; each metric is logged with
            ``log_scalar`` at the evaluation's step (streamrl addition).
        seed: re-seed the env before every evaluation, so that all evaluations start from the
            same states (streamrl addition; default: no re-seeding).

    >>> from streamrl.envs.libs.gym import GymEnv
    >>> from streamrl.envs.utils import RandomPolicy
    >>> env = GymEnv("CartPole-v1")
    >>> evaluator = Evaluator(env, RandomPolicy(env.action_spec), num_trajectories=2, seed=0)
    >>> result = evaluator.evaluate(step=100)
    >>> sorted(result)
    ['eval/episode_length', 'eval/fps', 'eval/num_episodes', 'eval/reward', 'eval/reward_std', 'eval/step']
    >>> result["eval/num_episodes"], result["eval/step"]
    (2, 100)
    >>> evaluator.shutdown()
    """

    def __init__(
        self,
        env: EnvBase | Callable[[], EnvBase],
        policy: Callable[[TensorDictBase], TensorDictBase] | None = None,
        *,
        policy_factory: Callable[[EnvBase], Callable] | None = None,
        num_trajectories: int = 10,
        max_steps: int | None = None,
        log_prefix: str = "eval",
        reward_keys: Any = ("next", "reward"),
        done_keys: Any = ("next", "done"),
        device: Any = None,
        exploration_type: ExplorationType = ExplorationType.DETERMINISTIC,
        dump_video: bool = True,
        on_result: Callable[[TensorDictBase], None] | None = None,
        busy_policy: str = "skip",
        backend: str = "thread",
        logger: Any = None,
        seed: int | None = None,
    ) -> None:
        if (policy is None) == (policy_factory is None):
            raise ValueError("Evaluator needs exactly one of policy and policy_factory, found "
                             f"{'both' if policy is not None else 'neither'}")
        if policy is not None and not callable(policy):
            raise TypeError(f"policy must be callable, found {type(policy).__name__}")
        if policy_factory is not None and not callable(policy_factory):
            raise TypeError(f"policy_factory must be callable, found {type(policy_factory).__name__}")
        if not isinstance(env, EnvBase) and not callable(env):
            raise TypeError(f"env must be an EnvBase or a callable, found {type(env).__name__}")
        if not isinstance(num_trajectories, int) or isinstance(num_trajectories, bool) \
                or num_trajectories < 1:
            raise ValueError(f"num_trajectories must be a positive int, found {num_trajectories!r}")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be a positive int or None, found {max_steps!r}")
        if busy_policy not in _BUSY:
            raise ValueError(f"busy_policy must be one of {_BUSY}, found {busy_policy!r}")
        if backend != "thread":
            raise ValueError(f"backend must be 'thread' (the only evaluator backend in streamrl), "
                             f"found {backend!r}")
        if on_result is not None and not callable(on_result):
            raise TypeError(f"on_result must be callable, found {type(on_result).__name__}")
        if logger is not None and not callable(getattr(logger, "log_scalar", None)):
            raise TypeError(f"logger must have a log_scalar method, found {type(logger).__name__}")
        self._env_arg = env
        self._source = policy  # the caller's policy: weights are read from it when none given
        self._factory = policy_factory
        self.num_trajectories = num_trajectories
        self.max_steps = max_steps
        self.log_prefix = log_prefix
        self.reward_key = _key(reward_keys)
        self.done_key = _key(done_keys)
        self.device = None if device is None else torch.device(device)
        self.exploration_type = exploration_type
        self.dump_video = dump_video
        self.on_result = on_result
        self.busy_policy = busy_policy
        self.logger = logger
        self.seed = seed
        self.env: EnvBase | None = None
        self.policy: Any = None
        self.evaluations = 0
        self._step = 0
        self._lock = threading.Lock()  # one evaluation at a time (blocking or background)
        self._requests: queue.Queue[Any] = queue.Queue()
        self._results: queue.Queue[Any] = queue.Queue()
        self._pending = 0
        self._count_lock = threading.Lock()  # guards _pending (the caller and the worker)
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ public
    @property
    def pending(self) -> bool:
        """Whether a background evaluation is scheduled or running."""
        return self._pending > 0

    def evaluate(self, weights: TensorDictBase | nn.Module | Mapping | None = None,
                 step: int | None = None) -> dict[str, Any]:
        """Play the episodes now and return the metrics (blocking)."""
        self._check_open()
        return self._run(self._snapshot(weights), self._next_step(step))

    def trigger_eval(self, weights: TensorDictBase | nn.Module | Mapping | None = None,
                     step: int | None = None) -> bool:
        """Start an evaluation in the background; ``False`` when skipped (busy, ``"skip"``).

        The weights are copied now, so training may go on at once."""
        self._check_open()
        if self._pending:
            if self.busy_policy == "skip":
                return False
            if self.busy_policy == "error":
                raise RuntimeError("an evaluation is still running (busy_policy='error')")
        request = (self._snapshot(weights), self._next_step(step))
        with self._count_lock:
            self._pending += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="streamrl-evaluator",
                                            daemon=True)
            self._thread.start()
        self._requests.put(request)
        return True

    def poll(self, timeout: float = 0) -> dict[str, Any] | None:
        """The result of the oldest finished background evaluation, or ``None`` (waits up to
        ``timeout`` seconds). An evaluation that failed re-raises its error here."""
        try:
            item = self._results.get(timeout=timeout) if timeout else self._results.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise RuntimeError("the background evaluation failed") from item
        return item

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until the next background result is ready (``None`` after ``timeout`` s or
        when nothing is pending)."""
        if not self._pending and self._results.empty():
            return None
        try:
            item = self._results.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise RuntimeError("the background evaluation failed") from item
        return item

    def state_dict(self) -> dict[str, Any]:
        """The evaluation count and step counter (nothing may be pending)."""
        if self.pending:
            raise RuntimeError("state_dict() while an evaluation is pending: wait() first")
        return {"evaluations": self.evaluations, "step": self._step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if set(state) != {"evaluations", "step"}:
            raise KeyError(f"Evaluator state must have keys ['evaluations', 'step'], found "
                           f"{sorted(state)}")
        if self.pending:
            raise RuntimeError("load_state_dict() while an evaluation is pending")
        self.evaluations, self._step = int(state["evaluations"]), int(state["step"])

    @staticmethod
    def extract_weights(policy: nn.Module) -> TensorDictBase:
        """Detached CPU copies of ``policy``'s parameters and buffers (safe across threads)."""
        return TensorDict.from_module(policy).data.detach().to("cpu").clone()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the background thread (after the evaluation it is running) and close the env
        if the evaluator built it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._requests.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self.env is not None and self.env is not self._env_arg:
            self.env.close()
        self.env = None

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (f"Evaluator(num_trajectories={self.num_trajectories}, "
                f"log_prefix={self.log_prefix!r}, evaluations={self.evaluations})")

    # ------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the Evaluator is shut down")

    def _next_step(self, step: int | None) -> int:
        self._step = self._step + 1 if step is None else int(step)
        return self._step

    def _snapshot(self, weights: Any) -> TensorDictBase | None:
        """The weights to play, copied now (``None``: the evaluation copy keeps its own)."""
        if weights is None:
            weights = self._source if isinstance(self._source, nn.Module) else None
        if weights is None:
            return None
        if isinstance(weights, nn.Module):
            return self.extract_weights(weights)
        if isinstance(weights, TensorDictBase):
            return weights.detach().clone()
        if isinstance(weights, Mapping):
            return TensorDict(dict(weights), []).unflatten_keys(".").detach().clone()
        raise TypeError("weights must be an nn.Module, a TensorDict of parameters or a state "
                        f"dict, found {type(weights).__name__}")

    def _setup(self) -> None:
        if self.env is None:
            self.env = make_env(self._env_arg)
        if self.policy is None:
            if self._factory is not None:
                self.policy = self._factory(self.env)
            elif isinstance(self._source, nn.Module):
                self.policy = copy.deepcopy(self._source)
            else:
                self.policy = self._source
            if self.device is not None and isinstance(self.policy, nn.Module):
                self.policy = self.policy.to(self.device)

    def _run(self, weights: TensorDictBase | None, step: int) -> dict[str, Any]:
        with self._lock:
            self._setup()
            if weights is not None:
                if not isinstance(self.policy, nn.Module):
                    raise TypeError("weights were given but the evaluation policy is not an "
                                    f"nn.Module ({type(self.policy).__name__})")
                weights.to_module(self.policy)
            t0 = time.perf_counter()
            stats = play_episodes(
                self.env, self.policy, num_episodes=self.num_trajectories,
                exploration_type=self.exploration_type, seed=self.seed,
                max_steps=self.max_steps or 100_000_000, truncate=self.max_steps is not None,
                reward_key=self.reward_key, done_key=self.done_key,
            )
            elapsed = time.perf_counter() - t0
            self.evaluations += 1
            if self.dump_video:
                transform = getattr(self.env, "transform", None)
                if transform is not None:
                    transform.dump(step=step)
        p = self.log_prefix
        n = int(stats.returns.numel())
        result = {
            f"{p}/reward": float(stats.returns.mean()),
            f"{p}/reward_std": float(stats.returns.std()) if n > 1 else 0.0,
            f"{p}/num_episodes": n,
            f"{p}/episode_length": float(stats.lengths.double().mean()),
            f"{p}/fps": float(stats.lengths.sum()) / max(elapsed, 1e-9),
            f"{p}/step": step,
        }
        if self.logger is not None:
            for name, value in result.items():
                if name != f"{p}/step":
                    self.logger.log_scalar(name, value, step=step)
        if self.on_result is not None:
            self.on_result(TensorDict({k: torch.as_tensor(v) for k, v in result.items()}, []))
        return result

    def _worker(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            try:
                self._results.put(self._run(*request))
            except BaseException as err:  # handed to the caller by poll()/wait()
                self._results.put(err)
            finally:
                with self._count_lock:
                    self._pending -= 1


def _key(key: Any) -> Any:
    if isinstance(key, list):
        if len(key) != 1:
            raise ValueError(f"expected one reward/done key, found {key!r}")
        key = key[0]
    return key
