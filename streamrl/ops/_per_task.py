"""The mean return per task of a batch of episodes (the metrics of multi-task runs)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def per_task_means(prefix: str, returns: torch.Tensor | Sequence[float],
                   tasks: torch.Tensor | Sequence[int]) -> dict[str, float]:
    """``{"<prefix>/task_<k>": mean return}`` for each task id ``k`` among ``tasks`` (one
    per episode, beside ``returns``), in increasing ``k``.

    >>> per_task_means("eval_return", [1.0, 3.0, 5.0], [2, 0, 2])
    {'eval_return/task_0': 3.0, 'eval_return/task_2': 3.0}
    """
    returns = torch.as_tensor(returns, dtype=torch.float64)
    tasks = torch.as_tensor(tasks)
    return {f"{prefix}/task_{int(k)}": float(returns[tasks == k].mean())
            for k in torch.unique(tasks)}
