"""Helpers shared by the losses: distances, reductions, loss sums, action layouts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor, nn
from torch.nn import functional as F

from streamrl.data.specs import Categorical, MultiOneHot, OneHot, TensorSpec

_DISTANCES = ("l1", "l2", "smooth_l1")


def distance_loss(v1: Tensor, v2: Tensor, loss_function: str = "l2",
                  strict_shape: bool = True) -> Tensor:
    """Element-wise distance between ``v1`` (prediction) and ``v2`` (target), no reduction.

    ``"l2"`` is the squared error, ``"l1"`` the absolute error, ``"smooth_l1"`` the Huber loss
    with ``beta=1``. With ``strict_shape=True`` (default) the shapes must be equal:
    broadcasting a ``[B]`` target against a ``[B, 1]`` prediction is a classic silent bug.
    With ``strict_shape=False`` tensors with as many elements are viewed as ``v2``'s shape.

    >>> distance_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]), "l2")
    tensor([1., 9.])
    >>> distance_loss(torch.ones(2, 1), torch.zeros(2), "l1", strict_shape=False)
    tensor([1., 1.])
    """
    if v1.shape != v2.shape:
        if strict_shape or v1.numel() != v2.numel():
            raise ValueError(
                f"distance_loss: prediction has shape {tuple(v1.shape)} but target has shape "
                f"{tuple(v2.shape)}"
                + ("" if strict_shape else " (strict_shape=False needs as many elements)")
            )
        v1 = v1.view_as(v2)
    if loss_function == "l2":
        return (v1 - v2).pow(2)
    if loss_function == "l1":
        return (v1 - v2).abs()
    if loss_function == "smooth_l1":
        return F.smooth_l1_loss(v1, v2, reduction="none")
    raise ValueError(f"loss_function must be one of {_DISTANCES}, found {loss_function!r}")


def check_loss_function(loss_function: str) -> str:
    """Validate a ``loss_function`` name at construction time (not on the first call)."""
    if loss_function not in _DISTANCES:
        raise ValueError(f"loss_function must be one of {_DISTANCES}, found {loss_function!r}")
    return loss_function


_REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction: str | None, owner: str) -> str:
    """A loss's ``reduction``: ``None`` is ``"mean"``; anything but mean/sum/none raises."""
    reduction = "mean" if reduction is None else reduction
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{owner}: reduction must be one of {_REDUCTIONS}, found {reduction!r}")
    return reduction


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """``loss`` reduced by ``"mean"``, ``"sum"`` or left as it is (``"none"``).

    >>> reduce_loss(torch.tensor([1.0, 3.0]), "mean"), reduce_loss(torch.tensor([1.0, 3.0]), "sum")
    (tensor(2.), tensor(4.))
    """
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def weighted_reduce(loss: Tensor, weight: Tensor | None, reduction: str) -> Tensor:
    """:func:`reduce_loss` with per-sample importance weights (prioritized replay): the mean
    becomes ``sum(w * loss) / sum(w)``, the sum ``sum(w * loss)``, ``"none"`` gives
    ``w * loss``; ``weight=None`` is :func:`reduce_loss`.

    >>> weighted_reduce(torch.tensor([1.0, 3.0]), torch.tensor([3.0, 1.0]), "mean")
    tensor(1.5000)
    """
    if weight is None:
        return reduce_loss(loss, reduction)
    if weight.shape != loss.shape:
        if weight.numel() != loss.numel():
            raise ValueError(
                f"priority weights of shape {tuple(weight.shape)} do not match the per-sample "
                f"loss of shape {tuple(loss.shape)}"
            )
        weight = weight.reshape(loss.shape)
    weight = weight.to(loss.dtype)
    if reduction == "mean":
        return (loss * weight).sum() / weight.sum()
    return reduce_loss(loss * weight, reduction)


def total_loss(loss_td: TensorDictBase) -> Tensor:
    """Sum of the ``loss`` and ``loss_*`` entries of a loss output (the value to backpropagate).

    >>> from tensordict import TensorDict
    >>> total_loss(TensorDict(loss_a=torch.tensor(1.0), loss_b=torch.tensor(2.0),
    ...                       entropy=torch.tensor(5.0)))
    tensor(3.)
    """
    losses = [v for k, v in loss_td.items()
              if isinstance(k, str) and (k == "loss" or k.startswith("loss_"))]
    if not losses:
        raise ValueError(f"no 'loss' or 'loss_*' entries in {list(loss_td.keys())}")
    return torch.stack([loss.sum() for loss in losses]).sum()


def sum_trailing(x: Tensor, batch_dims: int) -> Tensor:
    """Sum every dim after the first ``batch_dims`` (per-dimension log-probs to one value)."""
    if x.ndim < batch_dims:
        raise ValueError(f"expected at least {batch_dims} dims, found shape {tuple(x.shape)}")
    if x.ndim == batch_dims:
        return x
    return x.sum(dim=tuple(range(batch_dims, x.ndim)))


def sample_shape(td: TensorDictBase, key: Any) -> torch.Size:
    """The shape of per-sample loss terms for ``td``: its batch shape, followed by the agent
    dims of a multi-agent group when the entry ``key`` (a reward or an advantage) has them
    (``[*batch, n_agents, 1]``: one term per agent, as TorchRL's multi-agent losses give).
    An entry of shape ``[*batch]`` or ``[*batch, 1]``, or none, gives the batch shape."""
    batch = td.batch_size
    value = td.get(key, None)
    if value is None or value.shape[: td.batch_dims] != batch:
        return batch
    extra = value.shape[td.batch_dims:]
    if len(extra) < 2 or extra[-1] != 1:
        return batch
    return torch.Size((*batch, *extra[:-1]))


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


_ACTION_SPACES = {"one_hot": "one_hot", "one-hot": "one_hot", "categorical": "categorical"}
#: one one-hot per component (a QValueActor's factored actions): DQN losses read it
_MULT_SPACES = {"mult_one_hot": "mult_one_hot", "mult-one-hot": "mult_one_hot"}
#: names TorchRL accepts for layouts no streamrl loss reads
_UNSUPPORTED_SPACES = ("multi_one_hot", "binary")


def check_action_space(action_space: Any, owner: str = "the loss",
                       allow_mult: bool = False) -> str | None:
    """Normalise an ``action_space``: ``None``, a name or a ``OneHot``/``Categorical`` spec
    (and, with ``allow_mult``, ``"mult_one_hot"`` or a ``MultiOneHot`` spec).

    Returns ``"one_hot"``, ``"categorical"``, ``"mult_one_hot"`` or ``None`` (read the layout
    from each action).
    """
    if action_space is None:
        return None
    if isinstance(action_space, TensorSpec):
        if isinstance(action_space, OneHot):
            return "one_hot"
        if isinstance(action_space, Categorical):
            return "categorical"
        if isinstance(action_space, MultiOneHot) and allow_mult:
            return "mult_one_hot"
        raise ValueError(
            f"{owner}: action_space must be a OneHot or Categorical spec"
            f"{' (or MultiOneHot)' if allow_mult else ''}, found {type(action_space).__name__}"
        )
    if isinstance(action_space, str) and action_space in _ACTION_SPACES:
        return _ACTION_SPACES[action_space]
    if isinstance(action_space, str) and action_space in _MULT_SPACES and allow_mult:
        return "mult_one_hot"
    if action_space in _UNSUPPORTED_SPACES or action_space in _MULT_SPACES:
        raise ValueError(
            f"{owner}: action_space {action_space!r} is not supported; use 'one_hot' or "
            "'categorical' (one discrete action per step)"
        )
    raise ValueError(
        f"{owner}: action_space must be None, one of {sorted(_ACTION_SPACES)} or a "
        f"OneHot/Categorical spec, found {action_space!r}"
    )


def action_space_of(module: nn.Module) -> str | None:
    """The ``action_space`` a Q-value actor declares (``None`` for any other module)."""
    for sub in module.modules():
        space = getattr(sub, "action_space", None)
        if isinstance(space, str) and space in _ACTION_SPACES:
            return _ACTION_SPACES[space]
        if isinstance(space, str) and space in _MULT_SPACES:
            return "mult_one_hot"
    return None


def var_nums_of(module: nn.Module, action_space: Any = None) -> list[int] | None:
    """The component sizes of ``"mult_one_hot"`` actions: a ``MultiOneHot`` ``action_space``
    spec's ``nvec``, else the ``var_nums`` a Q-value module of ``module`` declares."""
    if isinstance(action_space, MultiOneHot):
        return list(action_space.nvec)
    for sub in module.modules():
        nums = getattr(sub, "var_nums", None)
        if nums is not None:
            return list(nums)
    return None


def chosen_values(values: Tensor, action: Tensor, batch: torch.Size, action_space: str | None,
                  var_nums: list[int] | None, owner: str) -> Tensor:
    """The value of the taken action, ``[*batch, 1]``, from per-action ``values``
    ``[*batch, n]``: one entry for one-hot / index actions, the sum of the components'
    entries for ``"mult_one_hot"`` actions (a factored Q-value)."""
    if action_space == "mult_one_hot":
        if action.shape != values.shape:
            raise ValueError(
                f"{owner}: mult_one_hot action must have shape {tuple(values.shape)} (one "
                f"one-hot per component of sizes {var_nums}), found {tuple(action.shape)}"
            )
        return (values * action.to(values.dtype)).sum(-1, keepdim=True)
    index = action_to_index(action, batch, values.shape[-1], action_space, owner)
    return values.gather(-1, index.unsqueeze(-1))


def greedy_values(values: Tensor, var_nums: list[int] | None,
                  selector: Tensor | None = None) -> Tensor:
    """``max_a values`` as ``[*batch, 1]``, the argmax taken on ``selector`` when given
    (double DQN); for ``var_nums`` the sum over components of each component's greedy value.

    >>> greedy_values(torch.tensor([[1.0, 4.0, 2.0]]), [2, 1])
    tensor([[6.]])
    """
    if var_nums is None:
        if selector is None:
            return values.amax(-1, keepdim=True)
        return values.gather(-1, selector.argmax(-1, keepdim=True))
    sizes = var_nums
    pick = values if selector is None else selector
    parts = [v.gather(-1, p.argmax(-1, keepdim=True))
             for v, p in zip(values.split(sizes, -1), pick.split(sizes, -1))]
    return torch.stack(parts, 0).sum(0)


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
        # bool one-hot vectors (OneHot's default dtype) have no argmax
        return (action.to(torch.uint8) if action.dtype == torch.bool else action).argmax(-1)
    return to_batch_shape(action, batch, "action", owner).long()


@contextlib.contextmanager
def hold_out_net(network: nn.Module) -> Iterator[None]:
    """Context manager: ``network`` gets no gradient inside the block.

    Its parameters that required gradients are switched off and switched back on exit (even
    on error); the network still runs and gradients still flow *through* it to its inputs.

    >>> net = torch.nn.Linear(2, 1)
    >>> with hold_out_net(net):
    ...     net.weight.requires_grad
    False
    >>> net.weight.requires_grad
    True
    """
    if not isinstance(network, nn.Module):
        raise TypeError(f"hold_out_net expects an nn.Module, found {type(network).__name__}")
    held = [p for p in network.parameters() if p.requires_grad]
    for p in held:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in held:
            p.requires_grad_(True)


@contextlib.contextmanager
def hold_out_params(params: TensorDictBase | Iterable[Tensor]) -> Iterator[Any]:
    """Context manager yielding detached views of ``params`` (no gradient reaches them).

    A TensorDict of parameters gives a detached TensorDict; an iterable of tensors, a tuple.

    >>> w = torch.ones(2, requires_grad=True)
    >>> with hold_out_params([w]) as (held,):
    ...     held.requires_grad
    False
    """
    if isinstance(params, TensorDictBase):
        yield params.detach()
        return
    if isinstance(params, Tensor):
        raise TypeError("hold_out_params expects a TensorDict or an iterable of tensors, found "
                        "a single Tensor (wrap it in a list)")
    yield tuple(p.detach() for p in params)


def _next(key: NestedKey) -> tuple:
    return ("next", *key) if isinstance(key, tuple) else ("next", key)


def next_state_value(
    tensordict: TensorDictBase,
    operator: Any = None,
    next_val_key: NestedKey = "state_action_value",
    gamma: float = 0.99,
    pred_next_val: Tensor | None = None,
    **kwargs: Any,
) -> Tensor:
    """The one-step target ``r + gamma ** n * (1 - terminated) * V(s')``, without gradient.

    ``V(s')`` is ``pred_next_val`` when given, else ``operator`` (called on a copy of
    ``tensordict["next"]``, with ``**kwargs``) writes it at ``next_val_key``. Rewards and
    flags are read under ``"next"`` (``terminated``, or ``done`` when there is no
    ``terminated``). ``n`` is ``steps_to_next_obs`` when the tensordict has it (n-step
    returns), else 1. The result has the tensordict's batch shape.

    >>> from tensordict import TensorDict
    >>> td = TensorDict({"next": {"reward": torch.ones(2, 1),
    ...                           "done": torch.tensor([[False], [True]])}}, [2])
    >>> next_state_value(td, gamma=0.5, pred_next_val=torch.full((2,), 4.0))
    tensor([3., 1.])
    """
    if pred_next_val is None and operator is None:
        raise ValueError("next_state_value needs operator or pred_next_val, found neither")
    batch = tensordict.batch_size
    reward = tensordict.get(("next", "reward"), None)
    done = tensordict.get(("next", "terminated"), None)
    if done is None:
        done = tensordict.get(("next", "done"), None)
    if reward is None or done is None:
        raise KeyError(
            "next_state_value needs ('next', 'reward') and ('next', 'done') or "
            f"('next', 'terminated'); found {sorted(map(str, tensordict.keys(True, True)))}"
        )
    with torch.no_grad():
        if pred_next_val is None:
            next_td = operator(tensordict.get("next").copy(), **kwargs)
            pred_next_val = next_td.get(next_val_key, None)
            if pred_next_val is None:
                raise KeyError(f"next_state_value: the operator did not write {next_val_key!r}")
        value = pred_next_val.detach().reshape(batch)
        steps = tensordict.get("steps_to_next_obs", None)
        discount = gamma if steps is None else gamma ** steps.reshape(batch).to(value.dtype)
        alive = (~done.reshape(batch).bool()).to(value.dtype)
        return reward.reshape(batch).to(value.dtype) + discount * alive * value
