"""FrameSkipTransform: repeat each action for several frames of the parent env.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import FrameSkipTransform, TransformedEnv
>>> env = TransformedEnv(GymEnv("CartPole-v1"), FrameSkipTransform(2))
>>> env.rollout(3)["next", "reward"].squeeze(-1)  # two frames of reward 1 per step
tensor([2., 2., 2.])
>>> env.close()
"""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase

from streamrl.envs.transforms.transform import Transform

__all__ = ["FrameSkipTransform"]


def cached_parent(transform: Transform) -> Any:
    """``transform.parent``, built once and reused while the env layout (base env and the
    transforms before ``transform``) stays the same: building it computes specs, too slow
    for every step. Shared by the transforms that step or reset their parent env."""
    from streamrl.envs.transforms.compose import Compose
    from streamrl.envs.transforms.transformed_env import TransformedEnv

    container = transform.container
    if isinstance(container, TransformedEnv):
        key: tuple = (id(container), id(container.base_env))
    elif isinstance(container, Compose):
        outer = container.parent_env_and_prefix()
        if outer is None:
            return None
        before = []
        for t in container.transforms:
            if t is transform:
                break
            before.append(id(t))
        key = (id(outer[0]), *map(id, outer[1]), *before)
    else:
        return None
    cache = transform.__dict__.get("_parent_cache")
    if cache is None or cache[0] != key:
        cache = (key, transform.parent)
        transform.__dict__["_parent_cache"] = cache
    return cache[1]


def parent_input(transform: Transform, td: TensorDictBase) -> TensorDictBase:
    """The step input ``td`` as ``transform``'s parent env reads it: the action path of the
    transforms after ``transform`` (in its Compose) applied. Shared by the transforms that
    step their parent env themselves (FrameSkipTransform, MultiAction)."""
    from streamrl.envs.transforms.compose import Compose

    container = transform.container
    if not isinstance(container, Compose):
        return td
    transforms = list(container.transforms)
    later = transforms[transforms.index(transform) + 1 :]
    if not any(t._has_inverse() for t in later):
        return td
    td = td.clone(False)
    for t in reversed(later):
        td = t._inv_call(td)
    return td


class FrameSkipTransform(Transform):
    """Apply each action ``frame_skip`` times in the parent env (the base env wrapped in the
    transforms before this one) and sum the rewards; the observations and done flags are the
    last frame's.

    Args:
        frame_skip: a positive int (default 1: every step is one frame).

    Each repeated frame starts from the previous frame's outputs (so a StepCounter before
    this transform counts frames). The repetition stops early at the first frame where any (sub-)env is done, so a batched
    env never steps a finished sub-env; the step then reports that frame. Transforms after
    this one see one step per ``frame_skip`` frames. On plain data (outside an env) it does
    nothing.
    """

    def __init__(self, frame_skip: int = 1) -> None:
        if isinstance(frame_skip, bool) or not isinstance(frame_skip, int) or frame_skip < 1:
            raise ValueError(f"frame_skip must be a positive int, found {frame_skip!r}")
        super().__init__()
        self.frame_skip = frame_skip

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        if self.frame_skip == 1:
            return next_td
        parent = cached_parent(self)
        if parent is None:
            raise ValueError("FrameSkipTransform steps its parent env: put it in a TransformedEnv")
        reward_keys = list(parent.full_reward_spec.keys(True, True))
        done_keys = list(parent.full_done_spec.keys(True, True))
        totals = {k: next_td.get(k) for k in reward_keys}
        td_in = parent_input(self, td)
        for _ in range(self.frame_skip - 1):
            flags = (next_td.get(k, None) for k in done_keys)
            if any(f is not None and bool(f.any()) for f in flags):
                break
            # the next frame starts where the last one ended (its observations and state),
            # as a step from it would; the action stays
            td_in = td_in.clone(False).update(next_td.exclude(*reward_keys, *done_keys))
            next_td = parent._step(td_in)
            for k in reward_keys:
                totals[k] = totals[k] + next_td.get(k)
        for k, v in totals.items():
            next_td.set(k, v)
        return next_td

    def __repr__(self) -> str:
        return f"FrameSkipTransform(frame_skip={self.frame_skip})"
