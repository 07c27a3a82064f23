"""Helpers of the env-state tests: run an env to some point, then on from a carried root."""

from __future__ import annotations

import torch


def advance(env, steps, seed):
    """Reset (torch seeded with ``seed``) and take ``steps`` random steps, done envs reset;
    the carried root."""
    torch.manual_seed(seed)
    td = env.reset()
    td = env.rollout(steps, auto_reset=False, tensordict=td, break_when_any_done=False)
    return env.maybe_reset(env.next_root(td[..., -1]))


def continue_from(env, td, steps=30):
    """``steps`` random steps from the root ``td`` (torch seeded the same way every time)."""
    torch.manual_seed(7)
    return env.rollout(steps, auto_reset=False, tensordict=td.clone(), break_when_any_done=False)
