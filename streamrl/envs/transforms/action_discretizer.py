"""ActionDiscretizer: drive an env with a bounded continuous action through discrete bins.

>>> import torch
>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import ActionDiscretizer, TransformedEnv
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), ActionDiscretizer(4, out_action_key="bin"))
>>> type(env.action_spec).__name__, env.action_spec.n  # four bins over [-2, 2]
('Categorical', 4)
>>> td = env.reset()
>>> td["bin"] = torch.tensor([3])
>>> env.step(td)["action"]  # the middle of the last bin, [1, 2]
tensor([1.5000])
>>> env.close()
"""

from __future__ import annotations

import enum
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.specs import Bounded, Categorical, MultiCategorical, MultiOneHot, OneHot
from streamrl.envs.transforms.transform import Transform, one_key

__all__ = ["ActionDiscretizer"]


class ActionDiscretizer(Transform):
    """Split each dim of a :class:`Bounded` continuous action into ``num_intervals`` equal
    bins, so that an algorithm for discrete actions (DQN) can drive the env.

    The action spec users see is discrete: a :class:`Categorical` (one index per action dim;
    a :class:`MultiCategorical` when the dims have different bin counts) or, with
    ``categorical=False``, a :class:`OneHot` (one action dim) or :class:`MultiOneHot`. The
    action path maps bin ``k`` of a dim with bounds ``[low, high]`` to
    ``low + (position_k) * (high - low)``, where ``position_k`` is
    :meth:`custom_arange`'s ``k / n`` shifted by the ``sampling`` strategy: the middle of the
    bin (``MEDIAN``, default), its low or high edge (``LOW``, ``HIGH``) or a uniform draw in
    it (``RANDOM``).

    With ``out_action_key`` different from ``action_key``, the discrete action is read from
    ``out_action_key``, the continuous action spec moves to the state spec, and each step
    also records the continuous action it sent at ``action_key`` in the step's input.

    Args:
        num_intervals: bins per action dim: an int for all dims, or a 1-d tensor (or list)
            with one count per dim (the action's last dim).
        action_key: the env's continuous action (default ``"action"``).
        out_action_key: where the discrete action is read from (default ``action_key``).
        sampling: a :class:`ActionDiscretizer.SamplingStrategy` (default ``MEDIAN``).
        categorical: index actions (default) or one-hot ones (``False``).
    """

    class SamplingStrategy(enum.IntEnum):
        """Where a bin's continuous value lies in the bin."""

        MEDIAN = 0
        LOW = 1
        HIGH = 2
        RANDOM = 3

    def __init__(
        self,
        num_intervals: int | torch.Tensor,
        action_key: NestedKey = "action",
        out_action_key: NestedKey = None,
        sampling: Any = None,
        categorical: bool = True,
    ) -> None:
        if isinstance(num_intervals, bool):
            raise TypeError("num_intervals must be an int or a tensor of ints, found a bool")
        counts = torch.as_tensor(num_intervals)
        if counts.is_floating_point() or counts.is_complex() or counts.ndim > 1:
            raise TypeError(
                f"num_intervals must be an int or a 1-d tensor of ints, found {num_intervals!r}"
            )
        if counts.numel() == 0 or bool((counts < 1).any()):
            raise ValueError(f"num_intervals must be positive, found {num_intervals!r}")
        action_key = one_key(action_key, "action_key")
        out_action_key = (
            action_key if out_action_key is None else one_key(out_action_key, "out_action_key")
        )
        sampling = self.SamplingStrategy.MEDIAN if sampling is None else sampling
        try:
            sampling = self.SamplingStrategy(sampling)
        except ValueError:
            raise ValueError(
                f"sampling must be an ActionDiscretizer.SamplingStrategy, found {sampling!r}"
            ) from None
        super().__init__(in_keys_inv=[action_key], out_keys_inv=[out_action_key])
        self.num_intervals = counts.to(torch.int64)
        self.action_key = action_key
        self.out_action_key = out_action_key
        self.sampling = sampling
        self.categorical = bool(categorical)
        # the env's bounds, learnt from its action spec (transform_input_spec)
        self._low: torch.Tensor | None = None
        self._high: torch.Tensor | None = None
        self._sent: torch.Tensor | None = None

    # ------------------------------------------------------------------ grid
    def custom_arange(self, nint: int, device: Any) -> torch.Tensor:
        """The normalized starts of ``nint`` bins in ``[0, 1)``: ``k / nint``. Override it
        for another grid (positions must stay in ``[0, 1)``)."""
        return torch.arange(nint, device=device, dtype=torch.float64) / nint

    def _counts(self, dims: int) -> torch.Tensor:
        counts = self.num_intervals
        if counts.ndim == 0:
            return counts.expand(dims)
        if counts.numel() != dims:
            raise ValueError(
                f"ActionDiscretizer: num_intervals has {counts.numel()} counts, the action "
                f"{self.action_key!r} has {dims} dims"
            )
        return counts

    def _values(self, idx: torch.Tensor) -> torch.Tensor:
        """Continuous values of the bin indices ``idx`` (``[..., dims]``)."""
        low, high = self._low.to(idx.device), self._high.to(idx.device)
        counts = self._counts(low.shape[-1]).to(idx.device)
        if bool(((idx < 0) | (idx >= counts)).any()):
            raise ValueError(
                f"ActionDiscretizer: bin index out of range: expected 0 <= index < "
                f"{counts.tolist()}, found {idx.tolist()}"
            )
        width = 1.0 / counts.to(torch.float64)
        starts = torch.stack(
            [self.custom_arange(int(n), idx.device).gather(0, idx[..., i].reshape(-1)).reshape(
                idx.shape[:-1]) for i, n in enumerate(counts.tolist())],
            -1,
        )
        if self.sampling == self.SamplingStrategy.MEDIAN:
            pos = starts + width / 2
        elif self.sampling == self.SamplingStrategy.LOW:
            pos = starts
        elif self.sampling == self.SamplingStrategy.HIGH:
            pos = starts + width
        else:
            pos = starts + torch.rand(idx.shape, dtype=torch.float64, device=idx.device) * width
        return (low.double() + pos * (high.double() - low.double())).to(low.dtype)

    # ------------------------------------------------------------------ action path
    def _indices(self, action: torch.Tensor) -> torch.Tensor:
        dims = self._low.shape[-1]
        if self.categorical:
            if action.shape[-1:] != (dims,):
                raise ValueError(
                    f"ActionDiscretizer: expected bin indices of last dim {dims} at "
                    f"{self.out_action_key!r}, found shape {tuple(action.shape)}"
                )
            return action.long()
        counts = self._counts(dims).tolist()
        if action.shape[-1:] != (sum(counts),):
            raise ValueError(
                f"ActionDiscretizer: expected one-hot actions of last dim {sum(counts)} at "
                f"{self.out_action_key!r}, found shape {tuple(action.shape)}"
            )
        if action.dtype == torch.bool:  # OneHot's default dtype has no argmax
            action = action.to(torch.uint8)
        return torch.stack([p.argmax(-1) for p in action.split(counts, -1)], -1)

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        if self._low is None:
            raise ValueError(
                "ActionDiscretizer learns the action bounds from its env's action spec: put it "
                "in a TransformedEnv (and read env.action_spec) before mapping actions"
            )
        value = self._values(self._indices(self._get(td, self.out_action_key)))
        td.set(self.action_key, value)
        if self.out_action_key != self.action_key:
            self._sent = value
        return td

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        # the continuous action is a state entry: record the one the env got
        if self.out_action_key != self.action_key and self._sent is not None:
            td.set(self.action_key, self._sent)
            self._sent = None
        return next_td

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td  # the observation path has no action to touch

    # ------------------------------------------------------------------ specs
    def transform_input_spec(self, input_spec: Any) -> Any:
        """Swap the continuous action spec for the discrete one (the continuous one moves to
        the state spec when the keys differ)."""
        actions = input_spec["full_action_spec"]
        if self.action_key not in actions.keys(True, True):
            raise KeyError(
                f"ActionDiscretizer: no action {self.action_key!r} in the env's action spec "
                f"{sorted(str(k) for k in actions.keys(True, True))}"
            )
        spec = actions[self.action_key]
        if not isinstance(spec, Bounded) or not spec.dtype.is_floating_point:
            raise TypeError(
                f"ActionDiscretizer needs a Bounded floating-point action spec at "
                f"{self.action_key!r}, found {type(spec).__name__} of {spec.dtype}"
            )
        if spec.ndim == 0 or not bool(torch.isfinite(spec.low).all() & torch.isfinite(spec.high).all()):
            raise ValueError("ActionDiscretizer needs finite bounds and an action dim")
        batch = spec.shape[:-1]
        dims = spec.shape[-1]
        # one bound per action dim (the bounds are the same for every sub-env of a batch)
        self._low = spec.low.reshape(-1, dims)[0].clone()
        self._high = spec.high.reshape(-1, dims)[0].clone()
        counts = self._counts(dims)
        uniform = bool((counts == counts[0]).all())
        if self.categorical:
            if uniform:
                new = Categorical(int(counts[0]), shape=spec.shape, device=spec.device)
            else:
                new = MultiCategorical(counts, shape=spec.shape, device=spec.device)
        elif dims == 1:
            n = int(counts[0])
            new = OneHot(n, shape=(*batch, n), device=spec.device)
        else:
            new = MultiOneHot(counts.tolist(), shape=(*batch, int(counts.sum())), device=spec.device)
        if self.out_action_key != self.action_key:
            del actions[self.action_key]
            input_spec["full_state_spec"][self.action_key] = spec
        actions[self.out_action_key] = new
        input_spec["full_action_spec"] = actions
        return input_spec

    def __repr__(self) -> str:
        n = self.num_intervals
        return (
            f"ActionDiscretizer(num_intervals={n.item() if n.ndim == 0 else n.tolist()}, "
            f"action_key={self.action_key!r}, out_action_key={self.out_action_key!r}, "
            f"sampling={self.sampling.name}, categorical={self.categorical})"
        )
