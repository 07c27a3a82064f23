"""Exploration type: which value a stochastic policy emits (sample, mode, mean, deterministic).

streamrl uses tensordict's interaction type directly, so ``set_exploration_type`` also steers
tensordict's own ``ProbabilisticTensorDictModule`` (as the seed tutorial relies on). Both
``streamrl.envs.utils`` and ``streamrl.modules`` re-export these names.

>>> from streamrl._exploration import ExplorationType, exploration_type, set_exploration_type
>>> with set_exploration_type(ExplorationType.MODE):
...     exploration_type() is ExplorationType.MODE
True
"""

from __future__ import annotations

from tensordict.nn import InteractionType as ExplorationType
from tensordict.nn import interaction_type as _interaction_type
from tensordict.nn import set_interaction_type as set_exploration_type

__all__ = ["ExplorationType", "exploration_type", "set_exploration_type"]


def exploration_type() -> ExplorationType | None:
    """Return the exploration type currently set, or ``None`` when none is set (modules then
    use their own default, RANDOM for probabilistic actors)."""
    return _interaction_type()
