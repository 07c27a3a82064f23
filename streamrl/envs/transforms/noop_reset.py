"""NoopResetEnv: take a few random steps after each reset (Atari-style start diversity).

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import NoopResetEnv, TransformedEnv
>>> env = TransformedEnv(GymEnv("PongNoFrameskip-v4"), NoopResetEnv(30, noop_action=0))
>>> env.reset()["pixels"].shape  # after 1 to 30 frames of NOOP (ALE action 0)
torch.Size([210, 160, 3])
>>> env.close()
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms.fire_reset import RESET_RETRIES, act_after_reset, discrete_action
from streamrl.envs.transforms.frame_skip import cached_parent
from streamrl.envs.transforms.transform import Transform, reset_mask

__all__ = ["NoopResetEnv"]



class NoopResetEnv(Transform):
    """After a reset, step the env up to ``noops`` times with random actions (or with
    ``noop_action``).

    With ``random=True`` the number of steps is drawn uniformly from ``[1, noops]`` at each
    reset (``torch.randint``, so ``torch.manual_seed`` makes it repeatable; a ParallelEnv
    worker's torch RNG is seeded by ``set_seed``); otherwise it is always ``noops``. An
    episode that ends during the no-ops is reset and started over. The reset output is the
    observation after the last no-op.

    Args:
        noops: the (largest) number of steps (default 30).
        random: draw the number of steps at each reset (default True).
        noop_action: keyword-only; None (default, TorchRL's behaviour) steps with random
            actions; an int is the index of the action taken at every no-op in the env's
            discrete (OneHot or Categorical) action spec: ``noop_action=0`` is ALE's NOOP, as
            in the DQN paper and SB3's ``NoopResetEnv``.

    In a batched env the no-ops step every sub-env, so only full resets are supported: put
    the transform inside each sub-env (``ParallelEnv(n, lambda: TransformedEnv(env,
    NoopResetEnv()))``) when sub-envs reset one by one.
    """

    def __init__(self, noops: int = 30, random: bool = True, *, noop_action: int | None = None) -> None:
        if isinstance(noops, bool) or not isinstance(noops, int) or noops < 0:
            raise ValueError(f"noops must be a non-negative int, found {noops!r}")
        if noop_action is not None and (
            isinstance(noop_action, bool) or not isinstance(noop_action, int) or noop_action < 0
        ):
            raise ValueError(
                f"noop_action must be None or an action index (an int >= 0), found {noop_action!r}"
            )
        super().__init__()
        self.noops = noops
        self.random = random
        self.noop_action = noop_action

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # nothing to do on step outputs or on plain data

    def _count(self) -> int:
        if not self.random or self.noops == 0:
            return self.noops
        return int(torch.randint(1, self.noops + 1, ()).item())

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        parent = cached_parent(self)
        if parent is None or self.noops == 0:
            return td_reset
        if reset_mask(td, td_reset) is not None:
            raise ValueError(
                "NoopResetEnv cannot take no-ops in only some sub-envs of a batched env; "
                "put it inside each sub-env instead"
            )
        action = None if self.noop_action is None else discrete_action(parent, self.noop_action)
        return act_after_reset(
            parent,
            td_reset,
            lambda: [action] * self._count(),
            f"NoopResetEnv: the episode ended during the no-ops {RESET_RETRIES} times in a row; "
            f"lower noops (now {self.noops})",
        )

    def __repr__(self) -> str:
        extra = "" if self.noop_action is None else f", noop_action={self.noop_action}"
        return f"NoopResetEnv(noops={self.noops}, random={self.random}{extra})"
