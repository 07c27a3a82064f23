"""HIRO's off-policy correction (Nachum et al. 2018): relabel a stored high-level goal with the
one that makes the stored low-level actions most likely under the current low-level policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase

__all__ = ["hiro_relabel"]

#: ``low_actor(observation [..., obs], goal [..., goal]) -> action [..., act]``: the current
#: low-level policy's deterministic action
LowActor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def hiro_relabel(batch: TensorDictBase, low_actor: LowActor, *, goal_low: Any, goal_high: Any,
                 num_candidates: int = 8, sigma: Any = None, goal_key: Any = "observation",
                 action_key: Any = "action", steps_key: Any = ("hrl", "steps"),
                 generator: torch.Generator | None = None) -> TensorDictBase:
    """Replace each high-level transition's goal (``action_key``, a relative goal) by the
    candidate that best explains the low level's actions along the segment, in place, and
    return ``batch``.

    ``batch`` holds high-level transitions as :class:`~streamrl.ops.SegmentBatcher` makes
    them with ``keep_steps=("observation", goal_key, "action")``: the segment's low-level
    steps under ``steps_key`` (``[k, ...]`` each, ``mask`` marking the valid ones), the goal
    entry at the segment's start (``goal_key``) and at its end (``("next", goal_key)``).
    Candidates (HIRO, section 3.3): the stored goal, ``s_end - s_start``, and
    ``num_candidates`` draws from a Gaussian around ``s_end - s_start`` (standard deviation
    ``sigma``, default half the goal range), all clipped to ``[goal_low, goal_high]``. A
    candidate ``g`` gives the low level the goals ``g_i = s_start + g - s_i`` along the
    segment (the goal transition), and scores ``-1/2 sum_i ||a_i - mu(o_i, g_i)||^2`` over
    the valid steps (a Gaussian log-likelihood of the stored actions ``a_i`` around the
    current low policy's action ``mu``, up to constants); the best-scoring candidate is
    written. ``low_actor`` runs once on every step of every candidate of the batch (one
    call, ``[batch, candidates, k]`` rows); it should not need gradients (call under
    ``torch.no_grad``). Returns the batch with ``("hrl", "relabel_index")`` (int64 ``[1]``:
    0 kept, 1 ``s_end - s_start``, 2.. a draw).
    """
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 0:
        raise ValueError(f"hiro_relabel: num_candidates must be an int >= 0, found "
                         f"{num_candidates!r}")
    steps = batch.get(steps_key, None)
    if steps is None:
        raise KeyError(f"hiro_relabel needs the segments' steps under {steps_key!r} "
                       f"(SegmentBatcher(keep_steps=('observation', {goal_key!r}, "
                       f"'action'), max_length=k))")
    goal = batch.get(action_key)
    start, end = batch.get(goal_key), batch.get(("next", goal_key) if isinstance(goal_key, str)
                                                else ("next", *goal_key))
    if not (goal.shape == start.shape == end.shape):
        raise ValueError(f"hiro_relabel: the goal {action_key!r} {list(goal.shape)} must have "
                         f"the shape of the goal entry {goal_key!r} {list(start.shape)}")
    low = torch.as_tensor(goal_low, dtype=goal.dtype).expand(goal.shape[-1:])
    high = torch.as_tensor(goal_high, dtype=goal.dtype).expand(goal.shape[-1:])
    spread = (high - low) / 2 if sigma is None else torch.as_tensor(sigma, dtype=goal.dtype)
    travelled = end - start
    noise = torch.randn((*goal.shape[:-1], num_candidates, goal.shape[-1]), dtype=goal.dtype,
                        generator=generator)
    candidates = torch.cat([goal.unsqueeze(-2), travelled.unsqueeze(-2),
                            travelled.unsqueeze(-2) + noise * spread], dim=-2)
    candidates = torch.minimum(torch.maximum(candidates, low), high)  # [B, C, g]

    observation = steps.get("observation")  # [B, k, obs]
    states = steps.get(goal_key)  # [B, k, g]
    actions = steps.get(action_key)  # [B, k, a]
    mask = steps.get("mask")  # [B, k]
    count = candidates.shape[-2]
    # the goal each candidate gives at each step: s_start + g - s_i, [B, C, k, g]
    goals = start[..., None, None, :] + candidates.unsqueeze(-2) - states.unsqueeze(-3)
    obs = observation.unsqueeze(-3).expand(*observation.shape[:-2], count,
                                           *observation.shape[-2:])
    mean = low_actor(obs, goals)
    error = ((mean - actions.unsqueeze(-3)) ** 2).sum(-1)  # [B, C, k]
    score = -0.5 * (error * mask.unsqueeze(-2).to(error.dtype)).sum(-1)  # [B, C]
    best = score.argmax(-1)  # ties: the first, the stored goal
    chosen = candidates.gather(-2, best[..., None, None].expand(*best.shape, 1,
                                                                 goal.shape[-1])).squeeze(-2)
    batch.set(action_key, chosen)
    batch.set(("hrl", "relabel_index"), best.unsqueeze(-1))
    return batch
