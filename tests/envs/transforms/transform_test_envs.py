"""A small deterministic env for the transform tests (no rendering, no gymnasium).

``CountingEnv``: each sub-env holds a counter ``c`` (0 after reset, +1 per step).
Observations: ``observation`` = ``[c, c, c]`` float32 and, with ``pixels=True``, a uint8
``[H, W, 3]`` image whose every pixel is ``(c, 2c, 3c) % 256``. The reward is ``c`` after
the step (so an episode of k steps returns ``k (k + 1) / 2``). A sub-env terminates when
``c`` reaches ``max_count``. The action is a Bounded float in [-1, 1] of shape ``(*batch, 1)``
(float64 with ``double=True``); it is recorded in ``last_action``. Batched envs honour the
``"_reset"`` mask and return every row.

``StatelessEnv``: not batch-locked (takes inputs of any batch size); observation = the
action, reward 1; it records the batch size of the last step input in ``seen``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from streamrl.data.specs import Bounded, Composite, Unbounded
from streamrl.envs.common import EnvBase


class CountingEnv(EnvBase):
    """See the module docstring."""

    def __init__(
        self,
        batch_size=(),
        max_count: int = 5,
        pixels: bool = False,
        hw: tuple[int, int] = (8, 6),
        double: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size)
        b = self.batch_size
        self.max_count = max_count
        self.pixels = pixels
        self.hw = hw
        self.count = torch.zeros((*b, 1), dtype=torch.int64)
        self.last_action = None
        self.seed = None
        self.reset_calls = 0
        obs = {"observation": Unbounded((*b, 3))}
        if pixels:
            obs["pixels"] = Bounded(0, 255, shape=(*b, *hw, 3), dtype=torch.uint8)
        self.full_observation_spec = Composite(obs, shape=b)
        dtype = torch.float64 if double else torch.float32
        self.action_spec = Bounded(-1.0, 1.0, shape=(*b, 1), dtype=dtype)

    def _obs(self) -> TensorDict:
        c = self.count.float()
        out = {"observation": c.expand(*self.batch_size, 3).clone()}
        if self.pixels:
            rgb = torch.cat([self.count, 2 * self.count, 3 * self.count], -1) % 256
            img = rgb.to(torch.uint8).reshape(*self.batch_size, 1, 1, 3)
            out["pixels"] = img.expand(*self.batch_size, *self.hw, 3).clone()
        return TensorDict(out, batch_size=self.batch_size)

    def _reset(self, tensordict=None, **kwargs):
        self.reset_calls += 1
        mask = None if tensordict is None else tensordict.get("_reset", None)
        if mask is None:
            self.count.zero_()
        else:
            self.count[mask.reshape(self.count.shape)] = 0
        return self._obs()

    def _step(self, tensordict):
        self.last_action = tensordict.get("action").clone()
        self.count += 1
        out = self._obs()
        done = self.count >= self.max_count
        out.set("reward", self.count.float())
        out.set("done", done.clone())
        out.set("terminated", done.clone())
        out.set("truncated", torch.zeros_like(done))
        return out

    def _set_seed(self, seed):
        self.seed = seed

    def __repr__(self) -> str:
        return f"CountingEnv(batch_size={self.batch_size})"


class StatelessEnv(EnvBase):
    """See the module docstring."""

    batch_locked = False

    def __init__(self) -> None:
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded(1))
        self.action_spec = Unbounded(1)
        self.reward_spec = Unbounded(1)
        self.seen = None

    def _reset(self, tensordict=None, **kwargs):
        batch = tensordict.batch_size if tensordict is not None else torch.Size([])
        out = self.observation_spec.zero(batch)
        out.update(self.full_done_spec.zero(batch))
        return out

    def _step(self, tensordict):
        batch = tensordict.batch_size
        self.seen = batch
        out = TensorDict({"observation": tensordict["action"].clone()}, batch)
        out.update(self.full_done_spec.zero(batch))
        out.set("reward", torch.ones(*batch, 1))
        return out

    def _set_seed(self, seed):
        pass
