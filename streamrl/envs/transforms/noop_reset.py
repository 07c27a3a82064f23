"""NoopResetEnv: take a few random steps after each reset (Atari-style start diversity)."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from streamrl.envs.transforms.transform import Transform, reset_mask

__all__ = ["NoopResetEnv"]

_MAX_RETRIES = 10


class NoopResetEnv(Transform):
    """After a reset, step the env up to ``noops`` times with random actions.

    With ``random=True`` the number of steps is drawn uniformly from ``[1, noops]`` at each
    reset (``torch.randint``, so ``torch.manual_seed`` makes it repeatable); otherwise it is
    always ``noops``. An episode that ends during the no-ops is reset and started over. The
    reset output is the observation after the last no-op.

    In a batched env the no-ops step every sub-env, so only full resets are supported: put
    the transform inside each sub-env (``ParallelEnv(n, lambda: TransformedEnv(env,
    NoopResetEnv()))``) when sub-envs reset one by one.
    """

    def __init__(self, noops: int = 30, random: bool = True) -> None:
        if isinstance(noops, bool) or not isinstance(noops, int) or noops < 0:
            raise ValueError(f"noops must be a non-negative int, found {noops!r}")
        super().__init__()
        self.noops = noops
        self.random = random
        self._parent_cache: tuple | None = None

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # nothing to do on step outputs or on plain data

    def _count(self) -> int:
        if not self.random or self.noops == 0:
            return self.noops
        return int(torch.randint(1, self.noops + 1, ()).item())

    def _parent(self):
        # Building the parent view computes specs: reuse it while the env layout is the same.
        container = self.container
        key = (id(container), tuple(id(t) for t in getattr(container, "transforms", ())))
        if self._parent_cache is None or self._parent_cache[0] != key:
            self._parent_cache = (key, self.parent)
        return self._parent_cache[1]

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        parent = self._parent()
        if parent is None or self.noops == 0:
            return td_reset
        if reset_mask(td, td_reset) is not None:
            raise ValueError(
                "NoopResetEnv cannot take no-ops in only some sub-envs of a batched env; "
                "put it inside each sub-env instead"
            )
        keys = list(td_reset.keys(True, True))
        current = td_reset
        for _ in range(_MAX_RETRIES):
            n = self._count()
            for _ in range(n):
                stepped = parent.rand_step(current.clone(False))
                nxt = stepped.get("next")
                if bool(nxt.get("done").any()):
                    break
                current = current.clone(False).update(nxt.select(*keys, strict=False))
            else:
                return current
            current = parent.reset()
        raise RuntimeError(
            f"NoopResetEnv: the episode ended during the no-ops {_MAX_RETRIES} times in a row; "
            f"lower noops (now {self.noops})"
        )

    def __repr__(self) -> str:
        return f"NoopResetEnv(noops={self.noops}, random={self.random})"
