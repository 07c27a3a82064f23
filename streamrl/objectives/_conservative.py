"""The conservative (CQL) penalty, shared by :class:`~streamrl.objectives.CQLLoss` and
:class:`~streamrl.objectives.DiscreteCQLLoss`: a soft maximum of the Q-values over many
actions minus the Q-value of the action in the data, so that minimising it pushes down the
values of actions the data does not support and up the value of the one it does."""

from __future__ import annotations

import torch
from torch import Tensor


def conservative_penalty(sampled_q: Tensor, data_q: Tensor, *, dim: int,
                         temperature: float = 1.0, weight: float = 1.0) -> Tensor:
    """``weight * (temperature * logsumexp(sampled_q / temperature, dim) - data_q)``.

    ``sampled_q`` holds the Q-values of the actions the soft maximum runs over along ``dim``
    (every action of a discrete space, or importance-corrected values of sampled actions);
    ``data_q`` the Q-value of the dataset's action, with ``sampled_q``'s shape less ``dim``.

    >>> conservative_penalty(torch.tensor([[0.0, 0.0]]), torch.tensor([0.0]), dim=-1)
    tensor([0.6931])
    """
    soft_max = temperature * torch.logsumexp(sampled_q / temperature, dim)
    if soft_max.shape != data_q.shape:
        raise ValueError(
            f"conservative_penalty: the data Q-values have shape {tuple(data_q.shape)}, expected "
            f"{tuple(soft_max.shape)} (the sampled Q-values' shape without dim {dim})"
        )
    return weight * (soft_max - data_q)
