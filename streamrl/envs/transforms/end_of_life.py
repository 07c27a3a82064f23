"""EndOfLifeTransform: flag the steps where an Atari game loses a life.

>>> import torch
>>> from streamrl.envs.transforms import EndOfLifeTransform, TransformedEnv
>>> from streamrl.envs.custom import PendulumEnv
>>> class TwoLives(PendulumEnv):  # an env with ``lives()``, as ALE games have
...     def lives(self):
...         return 2 if self._n < 2 else 1
...     def _reset(self, td=None, **kw):
...         self._n = 0
...         return super()._reset(td, **kw)
...     def _step(self, td):
...         self._n += 1
...         return super()._step(td)
>>> env = TransformedEnv(TwoLives(), EndOfLifeTransform(eol_attribute="lives"))
>>> r = env.rollout(3)
>>> r["next", "end-of-life"].squeeze(-1).tolist(), r["next", "lives"].tolist()
([False, True, False], [2, 1, 1])
>>> env.close()
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.frame_skip import cached_parent
from streamrl.envs.transforms.transform import Transform, one_key

__all__ = ["EndOfLifeTransform"]


class EndOfLifeTransform(Transform):
    """Write ``eol_key``: True on the steps where the game lost a life or the episode ended.

    Atari games give several lives per episode; DQN-style agents learn faster when a lost
    life counts as the end of a trajectory for value estimation while the env keeps
    playing. The flag is an observation, not a done flag: it never resets the env. Use it
    in the loss instead of ``done``/``terminated`` (:meth:`register_keys`).

    The number of lives is read from the innermost base env at ``eol_attribute`` (a dotted
    path: a gymnasium ALE env has it at ``unwrapped.ale.lives``, which a ``GymEnv`` forwards
    to the gymnasium env); the value may be an int, an array or a callable returning one.
    ``lives_key`` (int64, shaped like the batch) holds the count after reset and after each
    step. Inside a ``SerialEnv`` it reads each sub-env; with a ``ParallelEnv`` base (whose
    envs live in other processes), put the transform in each sub-env instead.

    Args:
        eol_key: the flag written under ``"next"`` (default ``"end-of-life"``), shaped like
            ``done_key``.
        lives_key: the lives count entry (default ``"lives"``).
        done_key: the env's done entry (default ``"done"``); a done step is also an end of
            life.
        eol_attribute: where the lives count is (default ``"unwrapped.ale.lives"``).
    """

    def __init__(
        self,
        eol_key: NestedKey = "end-of-life",
        lives_key: NestedKey = "lives",
        done_key: NestedKey = "done",
        eol_attribute: str = "unwrapped.ale.lives",
    ) -> None:
        self.eol_key = one_key(eol_key, "eol_key")
        self.lives_key = one_key(lives_key, "lives_key")
        self.done_key = one_key(done_key, "done_key")
        if not isinstance(eol_attribute, str) or not eol_attribute:
            raise TypeError(f"eol_attribute must be a dotted attribute path, found {eol_attribute!r}")
        super().__init__()
        self.out_keys = [self.eol_key, self.lives_key]
        self.eol_attribute = eol_attribute

    # ------------------------------------------------------------------ lives
    def _base_env(self) -> Any:
        from streamrl.envs.transforms.transformed_env import TransformedEnv

        env = cached_parent(self)
        if env is None:
            raise ValueError(
                "EndOfLifeTransform reads the lives count from its env: put it in a TransformedEnv"
            )
        while isinstance(env, TransformedEnv):
            env = env.base_env
        return env

    def _lives_of(self, env: Any) -> torch.Tensor:
        obj = env
        for name in self.eol_attribute.split("."):
            try:
                obj = getattr(obj, name)
            except AttributeError:
                raise AttributeError(
                    f"EndOfLifeTransform: {type(env).__name__} has no attribute path "
                    f"{self.eol_attribute!r} (missing {name!r}); pass eol_attribute="
                ) from None
        if callable(obj):
            obj = obj()
        return torch.as_tensor(obj, dtype=torch.int64)

    def _lives(self, batch_size: torch.Size) -> torch.Tensor:
        from streamrl.envs.batched import SerialEnv
        from streamrl.envs.parallel import ParallelEnv

        env = self._base_env()
        if isinstance(env, ParallelEnv):
            raise TypeError(
                "EndOfLifeTransform cannot read the lives of ParallelEnv's sub-envs from this "
                "process: put the transform inside each sub-env"
            )
        if isinstance(env, SerialEnv):
            lives = torch.stack([self._lives_of(e).reshape(e.batch_size) for e in env._envs])
        else:
            lives = self._lives_of(env)
        if lives.numel() != batch_size.numel():
            raise ValueError(
                f"EndOfLifeTransform: expected {batch_size.numel()} lives counts (batch "
                f"{list(batch_size)}), found {lives.numel()}"
            )
        return lives.reshape(batch_size)

    # ------------------------------------------------------------------ data
    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise ValueError("EndOfLifeTransform reads lives from its env: put it in a TransformedEnv")

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        td_reset.set(self.lives_key, self._lives(td_reset.batch_size))
        # an observation like any other: a reset (a new life) is no end of life
        done = td_reset.get(self.done_key, None)
        shape = (*td_reset.batch_size, 1) if done is None else done.shape
        td_reset.set(self.eol_key, torch.zeros(shape, dtype=torch.bool, device=td_reset.device))
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        before = td.get(self.lives_key, None)
        if before is None:
            raise KeyError(
                f"EndOfLifeTransform: the step input has no {self.lives_key!r}; step from the "
                "output of reset() (or of a previous step)"
            )
        done = next_td.get(self.done_key, None)
        if done is None:
            found = sorted(str(k) for k in next_td.keys(True, True))
            raise KeyError(f"EndOfLifeTransform: no done entry {self.done_key!r} in {found}")
        after = self._lives(next_td.batch_size)
        lost = (after < before.to(after.device)).reshape(*after.shape, *([1] * (done.ndim - after.ndim)))
        next_td.set(self.lives_key, after)
        next_td.set(self.eol_key, lost.expand_as(done) | done.bool())
        return next_td

    # ------------------------------------------------------------------ specs
    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add the int64 lives count and the end-of-life flag to the observations."""
        obs = output_spec["full_observation_spec"]
        done_spec = output_spec["full_done_spec"]
        if self.done_key not in done_spec.keys(True, True):
            raise KeyError(
                f"EndOfLifeTransform: done_key {self.done_key!r} is not in the env's done spec "
                f"{sorted(str(k) for k in done_spec.keys(True, True))}"
            )
        obs[self.eol_key] = done_spec[self.done_key].clone()
        obs[self.lives_key] = Unbounded(shape=obs.shape, device=obs.device, dtype=torch.int64)
        output_spec["full_observation_spec"] = obs
        return output_spec

    def register_keys(self, loss_or_advantage: Any) -> Any:
        """Make a loss (or value estimator) read ``eol_key`` as its done and terminated
        flags: ``loss.set_keys(done=eol_key, terminated=eol_key)``."""
        set_keys = getattr(loss_or_advantage, "set_keys", None)
        if set_keys is None:
            raise TypeError(
                f"register_keys expects a loss or value estimator with set_keys, found "
                f"{type(loss_or_advantage).__name__}"
            )
        return set_keys(done=self.eol_key, terminated=self.eol_key)

    def __repr__(self) -> str:
        return (
            f"EndOfLifeTransform(eol_key={self.eol_key!r}, lives_key={self.lives_key!r}, "
            f"done_key={self.done_key!r}, eol_attribute={self.eol_attribute!r})"
        )
