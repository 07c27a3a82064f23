"""MultiStepTransform: n-step transitions for a replay buffer, across the batches it is fed.

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import MultiStepTransform
>>> def batch(start):  # 4 steps of one trajectory, reward = step number
...     r = torch.arange(start, start + 4.0)[:, None]
...     return TensorDict({"observation": r, "next": {"observation": r + 1, "reward": r,
...                        "done": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
>>> t = MultiStepTransform(n_steps=2, gamma=0.5)
>>> t.inv(batch(0))["next", "reward"].flatten().tolist()  # 0 + .5*1, 1 + .5*2
[0.5, 2.0]
>>> out = t.inv(batch(4))  # the 2 held-back steps come first
>>> out["next", "reward"].flatten().tolist(), out["next", "observation"].flatten().tolist()
([3.5, 5.0, 6.5, 8.0], [4.0, 5.0, 6.0, 7.0])
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.postprocs import MultiStep
from streamrl.envs.transforms.transform import Transform, _check_td, as_keys, one_key

__all__ = ["MultiStepTransform"]

_DEFAULT_DONE_KEYS = ("done", "truncated", "terminated")


def _orig_key(key: NestedKey) -> NestedKey:
    if isinstance(key, str):
        return f"{key}_orig"
    return (*key[:-1], f"{key[-1]}_orig")


def _nested(key: NestedKey) -> tuple:
    return ("next", key) if isinstance(key, str) else ("next", *key)


class MultiStepTransform(Transform):
    """Turn the transitions written to a replay buffer into n-step transitions, with a
    memory of the last ``n_steps`` steps so that the result does not depend on how the
    data was split into batches (:class:`~streamrl.data.postprocs.MultiStep`, the
    collector post-processing it runs, only sees one batch).

    :meth:`inv` (the write path) takes ``[..., time]`` batches of consecutive steps, puts
    the ``n_steps`` steps held back from the previous call in front, computes the n-step
    transitions with :class:`~streamrl.data.postprocs.MultiStep`, and returns all but the
    last ``n_steps`` steps (kept for the next call, whose rewards they need): after the
    first call, as many steps as it was given. For each step ``t``: each reward of
    ``reward_keys`` becomes the discounted sum of the next ``k <= n_steps`` rewards (until
    the trajectory ends, ``("next", done_key)``), the one-step reward is kept under
    ``("next", "<reward_key>_orig")``; the other ``"next"`` entries are those of step
    ``t + k - 1`` except ``done_keys``, which stay those of step ``t``; ``"steps_to_next_obs"``,
    ``"gamma"`` (``gamma ** k``) and ``"nonterminal"`` are added. With a ``mask_key`` entry,
    only the steps it marks are returned (flattened). The sample path (``forward``) and an
    env's data are left as they are.

    Args:
        n_steps: look-ahead (>= 1); the attribute may be changed between calls.
        gamma: discount factor in ``[0, 1]``.

    Keyword Args:
        reward_keys: rewards to accumulate (default ``["reward"]``).
        done_key: the end-of-trajectory flag (default ``"done"``).
        done_keys: flags left as they are (default ``["done", "truncated", "terminated"]``).
        mask_key: valid-step mask (default ``"mask"``; used when present).
    """

    def __init__(
        self,
        n_steps: int,
        gamma: float,
        *,
        reward_keys: list[NestedKey] | None = None,
        done_key: NestedKey | None = None,
        done_keys: list[NestedKey] | None = None,
        mask_key: NestedKey | None = None,
    ) -> None:
        super().__init__()
        self.n_steps = n_steps
        MultiStep(gamma, 1)  # the postproc's own check of gamma
        self.gamma = float(gamma)
        self.reward_keys = as_keys(["reward"] if reward_keys is None else reward_keys,
                                   "reward_keys")
        if not self.reward_keys:
            raise ValueError("reward_keys must name at least one reward")
        self.done_key = one_key("done" if done_key is None else done_key, "done_key")
        self.done_keys = as_keys(list(_DEFAULT_DONE_KEYS) if done_keys is None else done_keys,
                                 "done_keys")
        self.mask_key = one_key("mask" if mask_key is None else mask_key, "mask_key")
        self._held: TensorDictBase | None = None

    @property
    def n_steps(self) -> int:
        """The look-ahead (may be changed between calls)."""
        return self._n_steps

    @n_steps.setter
    def n_steps(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"n_steps must be an int >= 1, found {value!r}")
        self._n_steps = value

    def reset_state(self) -> None:
        """Forget the steps held back."""
        self._held = None

    def _n_step(self, data: TensorDictBase) -> TensorDictBase:
        nxt = data.get("next")
        missing = [k for k in (self.done_key, *self.reward_keys) if k not in nxt.keys(True, True)]
        if missing:
            raise KeyError(f"MultiStepTransform: no {missing} under 'next'; found "
                           f"{sorted(str(k) for k in nxt.keys(True, True))}")
        step = MultiStep(self.gamma, self.n_steps)
        out = None
        # the postproc reads ("next", "reward") and ("next", "done"): show it each reward
        for key in self.reward_keys:
            view_next = nxt.clone(False)
            view_next.set("done", nxt.get(self.done_key))
            view_next.set("reward", nxt.get(key))
            res = step(data.clone(False).set("next", view_next))
            if out is None:
                out = res
                out_next = out.get("next")
            out_next.set(key, res.get(("next", "reward")))
            out_next.set(_orig_key(key), nxt.get(key))
        for extra in ("reward", "original_reward", "done"):
            if extra not in nxt.keys() and extra in out_next.keys():
                out_next.del_(extra)
        if "original_reward" in out_next.keys():
            out_next.del_("original_reward")
        for key in self.done_keys:  # left as they were at step t
            value = nxt.get(key, None)
            if value is not None:
                out_next.set(key, value)
        return out

    def inv(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The n-step transitions of the steps held back and of ``tensordict`` (batch dims
        ``[..., time]``), but its last ``n_steps`` steps (held back for the next call)."""
        _check_td(tensordict, self)
        if tensordict.batch_dims == 0:
            raise ValueError("MultiStepTransform expects a batch with a time dim, found []")
        held = self._held
        if held is not None and held.batch_size[:-1] != tensordict.batch_size[:-1]:
            raise ValueError(
                f"MultiStepTransform: batch {list(tensordict.batch_size)} does not continue "
                f"the held-back steps of batch {list(held.batch_size)}"
            )
        data = tensordict if held is None else torch.cat([held, tensordict], -1)
        n = self.n_steps
        T = data.batch_size[-1]
        if T <= n:
            self._held = data.clone()
            return data[..., :0]
        out = self._n_step(data)[..., : T - n]
        self._held = data[..., T - n :].clone()  # once the batch went through
        mask = out.get(self.mask_key, None)
        if mask is not None:
            out = out[mask.reshape(out.batch_size).bool()]
        return out

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # samples (and an env's data) are left as they are

    def __repr__(self) -> str:
        return (
            f"MultiStepTransform(n_steps={self.n_steps}, gamma={self.gamma}, "
            f"reward_keys={self.reward_keys}, done_key={self.done_key!r})"
        )
