"""FireResetEnv: press FIRE after each reset, for the Atari games that wait for it.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import FireResetEnv, TransformedEnv
>>> env = TransformedEnv(GymEnv("BreakoutNoFrameskip-v4"), FireResetEnv())
>>> env.reset()["pixels"].shape  # the ball is in play: FIRE then action 2 were taken
torch.Size([210, 160, 3])
>>> env.close()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Categorical, OneHot
from streamrl.envs.transforms.frame_skip import cached_parent
from streamrl.envs.transforms.transform import Transform, reset_mask

__all__ = ["FireResetEnv"]

RESET_RETRIES = 10


def discrete_action(env: Any, index: int) -> torch.Tensor:
    """Action ``index`` of ``env``'s discrete action spec, in every sub-env: a one-hot vector
    for a OneHot spec, the index for a Categorical one. Shared by FireResetEnv and
    NoopResetEnv (``noop_action``)."""
    spec = env.full_action_spec[env.action_key]
    if isinstance(spec, OneHot):
        n = spec.shape[-1]
        if not 0 <= index < n:
            raise ValueError(f"action index {index} is out of range for {n} actions")
        out = torch.zeros(spec.shape, dtype=spec.dtype, device=spec.device)
        out[..., index] = 1
        return out
    if isinstance(spec, Categorical):
        n = int(spec.space.n)
        if not 0 <= index < n:
            raise ValueError(f"action index {index} is out of range for {n} actions")
        return torch.full(spec.shape, index, dtype=spec.dtype, device=spec.device)
    raise TypeError(
        f"an action index needs a discrete action spec (OneHot or Categorical); "
        f"{env.action_key!r} is {type(spec).__name__}"
    )


def act_after_reset(
    env: Any, td_reset: TensorDictBase, plan: Callable[[], list], failure: str
) -> TensorDictBase:
    """Step ``env`` from its reset output ``td_reset`` with each action of ``plan()`` (None:
    a random action) and return the last step's observations as a reset output. An episode
    that ends on the way is reset and the plan drawn again, up to ``RESET_RETRIES`` times;
    then ``RuntimeError(failure)``. Shared by FireResetEnv and NoopResetEnv."""
    keys = list(td_reset.keys(True, True))
    current = td_reset
    for _ in range(RESET_RETRIES):
        for action in plan():
            td = current.clone(False)
            if action is None:
                stepped = env.rand_step(td)
            else:
                stepped = env.step(td.set(env.action_key, action))
            nxt = stepped.get("next")
            if bool(nxt.get("done").any()):
                break
            current = current.clone(False).update(nxt.select(*keys, strict=False))
        else:
            return current
        current = env.reset()
    raise RuntimeError(failure)


class FireResetEnv(Transform):
    """After each reset, step the env with each of ``actions`` in turn (rewards dropped).

    Many Atari games (Breakout, Pong, SpaceInvaders...) stand still until FIRE (ALE action
    1) is pressed. The default ``actions=(1, 2)`` is the sequence of OpenAI Baselines' and
    SB3's ``FireResetEnv``: FIRE, then action 2. The steps go through the transforms
    before this one (put it after ``FrameSkipTransform`` for frame-skipped steps, as SB3
    does). If the episode ends during them, the env is reset and the sequence starts over.
    The reset output is the observation after the last action.

    Args:
        actions: action indices of the env's discrete (OneHot or Categorical) action spec.

    As with :class:`NoopResetEnv`, a batched env must reset all its sub-envs at once: put
    the transform inside each sub-env to reset them one by one. On plain data (outside an
    env) it does nothing. TorchRL has no such transform.
    """

    def __init__(self, actions: tuple[int, ...] | list[int] = (1, 2)) -> None:
        actions = tuple(actions) if isinstance(actions, (tuple, list)) else actions
        if not isinstance(actions, tuple) or not actions or not all(
            isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in actions
        ):
            raise ValueError(
                f"actions must be a non-empty sequence of action indices (ints >= 0), "
                f"found {actions!r}"
            )
        super().__init__()
        self.actions = actions

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # nothing to do on step outputs or on plain data

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        parent = cached_parent(self)
        if parent is None:
            return td_reset
        if reset_mask(td, td_reset) is not None:
            raise ValueError(
                "FireResetEnv cannot act in only some sub-envs of a batched env; put it "
                "inside each sub-env instead"
            )
        moves = [discrete_action(parent, a) for a in self.actions]
        return act_after_reset(
            parent,
            td_reset,
            lambda: moves,
            f"FireResetEnv: the episode ended during the actions {self.actions} after "
            f"{RESET_RETRIES} resets in a row",
        )

    def __repr__(self) -> str:
        return f"FireResetEnv(actions={self.actions})"
