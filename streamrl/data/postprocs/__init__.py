"""Post-processing of collector batches: n-step returns (TorchRL's ``MultiStep``) and dense
rewards-to-go (``DensifyReward``)."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import nn

__all__ = ["DensifyReward", "MultiStep"]


class MultiStep(nn.Module):
    """Turn each transition of a collector batch into an n-step transition.

    For step ``t`` of a ``[..., time]`` batch, let ``k`` be ``n_steps``, or fewer when the
    trajectory ends (``("next", "done")``) or the batch ends first. Then:

    - ``("next", "reward")`` becomes ``sum_{j < k} gamma**j * r[t + j]``; the one-step reward
      is kept as ``("next", "original_reward")``;
    - every other ``"next"`` entry (observation, done, terminated, truncated, ...) is taken
      from step ``t + k - 1``, so ``("next", "observation")`` is ``s[t + k]``;
    - ``"steps_to_next_obs"`` (int64) holds ``k``, ``"gamma"`` (float32) ``gamma**k`` (the
      discount of the bootstrap value), ``"nonterminal"`` whether the n-step transition did not
      end in a terminal state (``("next", "terminated")``, else ``("next", "done")``, of step
      ``t + k - 1``).

    Root entries are unchanged. ``n_steps=0`` returns the batch unchanged. Like TorchRL's, it
    only sees one batch: the last steps of a batch get fewer than ``n_steps`` rewards. Unlike
    TorchRL 0.14.1 (which keeps step ``t``'s done flags and marks the batch's last step as
    terminal), the done flags move with the observation and only termination is terminal.

    Usable as a collector ``postproc``; it returns a new TensorDict (the input is not modified).
    An ``nn.Module`` (as TorchRL's): ``.to(device)`` and friends work; it holds no tensors.

    Args:
        gamma: discount factor in ``[0, 1]``.
        n_steps: number of rewards summed (look-ahead), ``>= 0``.

    >>> from tensordict import TensorDict
    >>> batch = TensorDict({"observation": torch.arange(4.)[:, None], "next": {
    ...     "observation": torch.arange(1., 5.)[:, None], "reward": torch.ones(4, 1),
    ...     "done": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
    >>> out = MultiStep(gamma=0.5, n_steps=2)(batch)
    >>> out["next", "reward"].reshape(-1).tolist()
    [1.5, 1.5, 1.5, 1.0]
    >>> out["next", "observation"].reshape(-1).tolist()
    [2.0, 3.0, 4.0, 4.0]
    >>> out["steps_to_next_obs"].tolist()
    [2, 2, 2, 1]
    """

    def __init__(self, gamma: float, n_steps: int) -> None:
        super().__init__()
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 <= gamma <= 1:
            raise ValueError(f"gamma must be a number in [0, 1], found {gamma!r}")
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise ValueError(f"n_steps must be an int >= 0, found {n_steps!r}")
        self.gamma = float(gamma)
        self.n_steps = n_steps

    def __repr__(self) -> str:
        return f"MultiStep(gamma={self.gamma}, n_steps={self.n_steps})"

    @staticmethod
    def _flag(td: TensorDictBase, key, shape) -> torch.Tensor | None:
        value = td.get(key, None)
        if value is None:
            return None
        if value.shape != shape and value.shape != (*shape, 1):
            raise ValueError(
                f"MultiStep: {key!r} must have shape {list(shape)} or {[*shape, 1]}, found "
                f"{list(value.shape)}"
            )
        return value.reshape(shape).bool()

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Return the n-step version of ``tensordict`` (batch dims ``[..., time]``)."""
        if not isinstance(tensordict, TensorDictBase):
            raise TypeError(f"MultiStep expects a TensorDict, found {type(tensordict).__name__}")
        if tensordict.batch_dims == 0:
            raise ValueError("MultiStep expects a batch with a time dim, found batch_size=[]")
        shape = tensordict.batch_size
        reward = tensordict.get(("next", "reward"), None)
        if reward is None:
            raise KeyError("MultiStep: the batch has no ('next', 'reward') entry")
        if self.n_steps == 0:
            return tensordict
        done = self._flag(tensordict, ("next", "done"), shape)
        if done is None:
            raise KeyError("MultiStep: the batch has no ('next', 'done') entry")
        terminated = self._flag(tensordict, ("next", "terminated"), shape)
        T = shape[-1]
        lead = shape[:-1].numel()
        done2 = done.reshape(lead, T)
        steps = torch.arange(T)
        # first step >= t that ends the trajectory (T: none in this batch)
        end = torch.where(done2, steps, torch.full_like(steps, T))
        end = end.flip(-1).cummin(-1).values.flip(-1)
        k = torch.minimum(end - steps + 1, T - steps).clamp_max(self.n_steps)  # [lead, T]

        r = reward.reshape(lead, T, -1)
        acc = torch.zeros_like(r)
        for j in range(min(self.n_steps, T)):
            shifted = torch.cat([r[:, j:], torch.zeros_like(r[:, :j])], dim=1)
            acc = acc + (self.gamma**j) * shifted * (k > j).unsqueeze(-1).to(r.dtype)

        last = steps + k - 1  # step whose "next" entries the n-step transition ends in
        rows = torch.arange(lead)[:, None].expand(lead, T)
        out = tensordict.clone(False)
        nxt = tensordict.get("next").reshape(lead, T)[rows, last].reshape(shape)
        nxt.set("original_reward", reward)
        nxt.set("reward", acc.reshape(reward.shape))
        out.set("next", nxt)
        term = terminated if terminated is not None else done
        out.set("steps_to_next_obs", k.reshape(shape))
        out.set("gamma", torch.pow(self.gamma, k.to(torch.float32)).reshape(shape))
        out.set("nonterminal", ~term.reshape(lead, T)[rows, last].reshape(shape))
        return out


class DensifyReward:
    """Give every step the (discounted) sum of the rewards left in its trajectory.

    For sparse rewards (non-zero only when a trajectory ends): along the last batch dim (time),
    step ``t`` gets ``sum_j discount**j * r[t + j]`` over the steps up to the end of its
    trajectory, which ends at a ``("next", done_key)`` flag or at the end of the batch. The
    result is written, in place, to ``("next", reward_key_out)`` and the batch is returned.

    Args:
        reward_key: reward entry under ``"next"``.
        done_key: done entry under ``"next"``.
        reward_key_out: where the result goes under ``"next"`` (default: ``reward_key``).
        discount: discount factor in ``[0, 1]``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"next": {"reward": torch.zeros(10, 1),
    ...                           "done": torch.zeros(10, 1, dtype=torch.bool)}}, [10])
    >>> td["next", "done"][[3, 7]] = True
    >>> td["next", "reward"][3] = 3
    >>> td["next", "reward"][7] = 7
    >>> DensifyReward()(td)["next", "reward"].reshape(-1).tolist()
    [3.0, 3.0, 3.0, 3.0, 7.0, 7.0, 7.0, 7.0, 0.0, 0.0]
    """

    def __init__(
        self,
        *,
        reward_key="reward",
        done_key="done",
        reward_key_out=None,
        discount: float = 1.0,
    ) -> None:
        if (
            isinstance(discount, bool)
            or not isinstance(discount, (int, float))
            or not 0 <= discount <= 1
        ):
            raise ValueError(f"discount must be a number in [0, 1], found {discount!r}")
        self.reward_key = reward_key
        self.done_key = done_key
        self.reward_key_out = reward_key if reward_key_out is None else reward_key_out
        self.discount = float(discount)

    def __repr__(self) -> str:
        return (
            f"DensifyReward(reward_key={self.reward_key!r}, done_key={self.done_key!r}, "
            f"reward_key_out={self.reward_key_out!r}, discount={self.discount})"
        )

    @staticmethod
    def _next(key) -> tuple:
        return ("next", *(key if isinstance(key, tuple) else (key,)))

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Write the rewards-to-go into ``tensordict`` and return it."""
        if not isinstance(tensordict, TensorDictBase):
            raise TypeError(
                f"DensifyReward expects a TensorDict, found {type(tensordict).__name__}"
            )
        if tensordict.batch_dims == 0:
            raise ValueError("DensifyReward expects a batch with a time dim, found batch_size=[]")
        shape = tensordict.batch_size
        reward = tensordict.get(self._next(self.reward_key), None)
        done = tensordict.get(self._next(self.done_key), None)
        for key, value in ((self.reward_key, reward), (self.done_key, done)):
            if value is None:
                raise KeyError(f"DensifyReward: the batch has no {self._next(key)!r} entry")
        lead, steps = shape[:-1].numel(), shape[-1]
        r = reward.reshape(lead, steps, -1)
        ends = done.reshape(lead, steps, -1).bool().any(-1, keepdim=True)
        ends[:, -1] = True
        out = torch.empty_like(r)
        later = torch.zeros_like(r[:, 0])
        for t in range(steps - 1, -1, -1):
            later = r[:, t] + self.discount * later * (~ends[:, t]).to(r.dtype)
            out[:, t] = later
        tensordict.set(self._next(self.reward_key_out), out.reshape(reward.shape))
        return tensordict

    forward = __call__
