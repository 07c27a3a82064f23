"""Small helpers shared by the losses: distances, reductions, loss sums."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torch import Tensor
from torch.nn import functional as F

__all__ = ["distance_loss", "total_loss"]

_DISTANCES = ("l1", "l2", "smooth_l1")


def distance_loss(pred: Tensor, target: Tensor, loss_function: str = "l2") -> Tensor:
    """Element-wise distance between ``pred`` and ``target`` (no reduction).

    ``"l2"`` is the squared error, ``"l1"`` the absolute error, ``"smooth_l1"`` the Huber loss
    with ``beta=1``. The shapes must be equal: broadcasting a ``[B]`` target against a
    ``[B, 1]`` prediction is a classic silent bug, so it is an error here.

    >>> distance_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]), "l2")
    tensor([1., 9.])
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"distance_loss: prediction has shape {tuple(pred.shape)} but target has shape "
            f"{tuple(target.shape)}"
        )
    if loss_function == "l2":
        return (pred - target).pow(2)
    if loss_function == "l1":
        return (pred - target).abs()
    if loss_function == "smooth_l1":
        return F.smooth_l1_loss(pred, target, reduction="none")
    raise ValueError(f"loss_function must be one of {_DISTANCES}, found {loss_function!r}")


def check_loss_function(loss_function: str) -> str:
    """Validate a ``loss_function`` name at construction time (not on the first call)."""
    if loss_function not in _DISTANCES:
        raise ValueError(f"loss_function must be one of {_DISTANCES}, found {loss_function!r}")
    return loss_function


def total_loss(loss_td: TensorDictBase) -> Tensor:
    """Sum of the ``loss_*`` entries of a loss output (the value to backpropagate).

    >>> from tensordict import TensorDict
    >>> total_loss(TensorDict(loss_a=torch.tensor(1.0), loss_b=torch.tensor(2.0),
    ...                       entropy=torch.tensor(5.0)))
    tensor(3.)
    """
    losses = [v for k, v in loss_td.items() if isinstance(k, str) and k.startswith("loss_")]
    if not losses:
        raise ValueError(f"no 'loss_*' entries in {list(loss_td.keys())}")
    return torch.stack([loss.sum() for loss in losses]).sum()


def sum_trailing(x: Tensor, batch_dims: int) -> Tensor:
    """Sum every dim after the first ``batch_dims`` (per-dimension log-probs to one value)."""
    if x.ndim < batch_dims:
        raise ValueError(f"expected at least {batch_dims} dims, found shape {tuple(x.shape)}")
    if x.ndim == batch_dims:
        return x
    return x.sum(dim=tuple(range(batch_dims, x.ndim)))


def to_batch_shape(x: Tensor, batch_shape: torch.Size, name: str, owner: str) -> Tensor:
    """Return ``x`` with the batch shape: accepts ``batch_shape`` or ``batch_shape + (1,)``."""
    if x.shape == batch_shape:
        return x
    if x.shape == (*batch_shape, 1):
        return x.squeeze(-1)
    raise ValueError(
        f"{owner}: {name!r} must have shape {tuple(batch_shape)} or {(*batch_shape, 1)}, "
        f"found {tuple(x.shape)}"
    )


_ACTION_SPACES = (None, "one_hot", "categorical")


def check_action_space(action_space: str | None) -> str | None:
    """Validate an ``action_space`` argument (``None``, ``"one_hot"`` or ``"categorical"``)."""
    if action_space not in _ACTION_SPACES:
        raise ValueError(f"action_space must be one of {_ACTION_SPACES}, found {action_space!r}")
    return action_space


def action_to_index(action: Tensor, batch: torch.Size, n_actions: int,
                    action_space: str | None, owner: str) -> Tensor:
    """Discrete actions as indices ``[*batch]`` from one-hot or index layouts.

    One-hot: shape ``batch + (n_actions,)``; indices: ``batch`` or ``batch + (1,)`` with an
    integer dtype. ``action_space`` forces one reading when the shape is ambiguous.
    """
    space = action_space
    if space is None:
        if action.shape == (*batch, n_actions) and n_actions > 1:
            space = "one_hot"
        elif action.shape in (batch, (*batch, 1)) and not action.is_floating_point():
            space = "categorical"
        else:
            raise ValueError(
                f"{owner}: cannot read action of shape {tuple(action.shape)} and dtype "
                f"{action.dtype} with {n_actions} actions; expected one-hot "
                f"{(*batch, n_actions)} or integer indices {tuple(batch)}"
            )
    if space == "one_hot":
        if action.shape != (*batch, n_actions):
            raise ValueError(
                f"{owner}: one-hot action must have shape {(*batch, n_actions)}, "
                f"found {tuple(action.shape)}"
            )
        return action.argmax(-1)
    return to_batch_shape(action, batch, "action", owner).long()
