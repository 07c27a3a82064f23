"""Per-episode bookkeeping: StepCounter (steps since reset, optional time limit) and
InitTracker (which data come straight from a reset).

Both live inside an env: they read the previous step's entry from the step's input, so the
count follows the data (a batched env's sub-envs count independently).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase

from streamrl.data.specs import Bounded
from streamrl.envs.transforms._spec_utils import flag_spec
from streamrl.envs.transforms.transform import Transform, as_keys, expand_mask, reset_mask

__all__ = ["InitTracker", "StepCounter"]


class StepCounter(Transform):
    """Count steps since the last reset in ``step_count`` (int64, trailing dim 1).

    With ``max_steps``, a step that brings the count to ``max_steps`` sets ``truncated`` (and
    ``done`` when ``update_done``), so the episode ends there as a time limit.

    Args:
        max_steps: the time limit, or None for none.
        truncated_key: where the time limit is written.
        step_count_key: where the count is written.
        update_done: also set ``done`` on truncation.
    """

    def __init__(
        self,
        max_steps: int | None = None,
        truncated_key: Any = "truncated",
        step_count_key: Any = "step_count",
        update_done: bool = True,
    ) -> None:
        if max_steps is not None and (
            isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1
        ):
            raise ValueError(f"max_steps must be a positive int or None, found {max_steps!r}")
        super().__init__()
        self.out_keys = as_keys(step_count_key, "step_count_key")[:1]
        self.max_steps = max_steps
        self.step_count_key = self.out_keys[0]
        self.truncated_key = as_keys(truncated_key, "truncated_key")[0]
        self.update_done = update_done
        prefix = self.truncated_key[:-1] if isinstance(self.truncated_key, tuple) else ()
        self.done_key = (*prefix, "done") if prefix else "done"

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError("StepCounter counts env steps: use it inside a TransformedEnv")

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(td, td_reset)
        count = torch.zeros((*td_reset.batch_size, 1), dtype=torch.int64, device=td_reset.device)
        prev = None if mask is None or td is None else td.get(self.step_count_key, None)
        if prev is not None:
            count = torch.where(expand_mask(mask, prev), count, prev)
        td_reset.set(self.step_count_key, count)
        if self.max_steps is not None:
            # A sub-env kept across a partial reset keeps its flags; a fresh one starts clear.
            trunc = td_reset.get(self.truncated_key, None)
            if trunc is None:
                td_reset.set(self.truncated_key, count >= self.max_steps)
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        prev = td.get(self.step_count_key, None)
        if prev is None:
            prev = torch.zeros((*next_td.batch_size, 1), dtype=torch.int64, device=next_td.device)
        count = prev + 1
        next_td.set(self.step_count_key, count)
        if self.max_steps is not None:
            hit = count >= self.max_steps
            trunc = next_td.get(self.truncated_key, None)
            next_td.set(
                self.truncated_key, hit if trunc is None else trunc | hit.reshape(trunc.shape)
            )
            if self.update_done:
                done = next_td.get(self.done_key, None)
                next_td.set(self.done_key, hit if done is None else done | hit.reshape(done.shape))
        return next_td

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add ``step_count`` to the observations and ``truncated`` to the done flags."""
        obs = output_spec["full_observation_spec"]
        high = self.max_steps if self.max_steps is not None else torch.iinfo(torch.int64).max
        obs[self.step_count_key] = Bounded(
            0, high, shape=(*obs.shape, 1), device=getattr(obs, "device", None), dtype=torch.int64
        )
        output_spec["full_observation_spec"] = obs
        if self.max_steps is not None:
            done = output_spec["full_done_spec"]
            for key in (
                (self.truncated_key, self.done_key) if self.update_done else (self.truncated_key,)
            ):
                if key not in done:
                    done[key] = flag_spec(done.shape, getattr(done, "device", None))
            output_spec["full_done_spec"] = done
        return output_spec

    def __repr__(self) -> str:
        return (
            f"StepCounter(max_steps={self.max_steps}, step_count_key={self.step_count_key!r}, "
            f"truncated_key={self.truncated_key!r})"
        )


class InitTracker(Transform):
    """Write ``is_init``: True in data straight from a reset, False after a step.

    In a partial reset of a batched env only the sub-envs being reset are marked. Recurrent
    policies read it to reset their hidden state.
    """

    def __init__(self, init_key: Any = "is_init") -> None:
        super().__init__()
        self.out_keys = as_keys(init_key, "init_key")[:1]
        self.init_key = self.out_keys[0]

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        raise NotImplementedError("InitTracker marks env resets: use it inside a TransformedEnv")

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        mask = reset_mask(td, td_reset)
        shape = (*td_reset.batch_size, 1)
        if mask is None:
            flag = torch.ones(shape, dtype=torch.bool, device=td_reset.device)
        else:
            flag = mask.reshape(shape).clone()
        td_reset.set(self.init_key, flag)
        return td_reset

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        shape = (*next_td.batch_size, 1)
        next_td.set(self.init_key, torch.zeros(shape, dtype=torch.bool, device=next_td.device))
        return next_td

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Add the boolean ``is_init`` flag to the observations."""
        obs = output_spec["full_observation_spec"]
        obs[self.init_key] = flag_spec(obs.shape, getattr(obs, "device", None))
        output_spec["full_observation_spec"] = obs
        return output_spec

    def __repr__(self) -> str:
        return f"InitTracker(init_key={self.init_key!r})"
