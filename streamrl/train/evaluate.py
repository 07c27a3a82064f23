"""Evaluation: one episode in each sub-env of a batched env, returns averaged by the caller."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase

from streamrl.envs.common import EnvBase
from streamrl.envs.utils import ExplorationType, set_exploration_type

__all__ = ["evaluate_episodes"]


def evaluate_episodes(
    env: EnvBase,
    policy: Callable[[TensorDictBase], TensorDictBase],
    *,
    exploration_type: ExplorationType = ExplorationType.DETERMINISTIC,
    seed: int | None = None,
    max_steps: int = 100_000,
) -> torch.Tensor:
    """Run one episode in every sub-env of ``env`` and return their returns (shape ``[N]``).

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
    if not isinstance(env, EnvBase):
        raise TypeError(f"env must be an EnvBase, found {type(env).__name__}")
    if not callable(policy):
        raise TypeError(f"policy must be callable, found {type(policy).__name__}")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be a positive int, found {max_steps!r}")
    if seed is not None:
        env.set_seed(seed)
    n = max(1, env.batch_size.numel())
    returns = torch.zeros(n, dtype=torch.float64)
    finished = torch.zeros(n, dtype=torch.bool)
    td = env.reset()
    # thread-local: evaluation often runs beside collection, in another thread of the process
    with torch.no_grad(), set_exploration_type(exploration_type, thread_local=True):
        for _ in range(max_steps):
            stepped, td = env.step_and_maybe_reset(policy(td))
            reward = stepped.get(("next", "reward")).reshape(n, -1).sum(-1)
            returns += torch.where(finished, 0.0, reward.to(torch.float64))
            finished |= stepped.get(("next", "done")).reshape(n)
            if bool(finished.all()):
                return returns
    raise RuntimeError(
        f"evaluate_episodes: {int((~finished).sum())} of {n} episodes did not end within "
        f"max_steps={max_steps}"
    )
