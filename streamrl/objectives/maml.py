"""The inner loop of MAML (Finn et al. 2017) on functional parameters: a module's parameters
as a TensorDict, adapted by a few gradient steps on a task's data, differentiable (to second
order) so that an outer loss after adaptation trains the initial parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

__all__ = ["maml_adapt", "maml_adapt_tasks", "maml_task_losses"]

#: ``loss_fn(module, data) -> scalar``: the module runs with the parameters being adapted
LossFn = Callable[[nn.Module, Any], torch.Tensor]


def _check(params: Any, steps: Any, lr: Any) -> None:
    if not isinstance(params, TensorDictBase):
        raise TypeError(f"params must be a TensorDict (TensorDict.from_module(module)), found "
                        f"{type(params).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, found {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, found {lr!r}")


class _LossCall(nn.Module):
    """``loss_fn(module, data)`` as a module, so that ``torch.func.functional_call`` runs
    it with other parameters in ``module`` (under ``vmap`` and ``grad`` too)."""

    def __init__(self, module: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.module, self.loss_fn = module, loss_fn

    def forward(self, data: Any) -> torch.Tensor:
        loss = self.loss_fn(self.module, data)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            found = list(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn must return a scalar tensor, found {found}")
        return loss.reshape(())

    def with_params(self, flat: dict[str, torch.Tensor], data: Any) -> torch.Tensor:
        """The loss with the parameters ``flat`` (:func:`_flat`'s names) in the module: a
        function of ``flat`` that ``torch.func.grad`` and ``vmap`` transform."""
        return torch.func.functional_call(self, flat, (data,), strict=False)


def _flat(params: TensorDictBase) -> dict[str, torch.Tensor]:
    """``params`` as ``functional_call``'s dict: ``"module.<dotted name>": tensor``."""
    return {"module." + (".".join(k) if isinstance(k, tuple) else k): v
            for k, v in params.items(True, True)}


def _nested(flat: dict[str, torch.Tensor], batch_size: Any = ()) -> TensorDictBase:
    out = TensorDict({}, batch_size)
    for name, value in flat.items():
        out.set(tuple(name.split(".")[1:]), value)
    return out


def _loss(module: nn.Module, params: TensorDictBase, loss_fn: LossFn, data: Any) -> torch.Tensor:
    """``loss_fn(module, data)`` with ``params`` in ``module``."""
    return _LossCall(module, loss_fn).with_params(_flat(params), data)


def maml_adapt(module: nn.Module, params: TensorDictBase, loss_fn: LossFn, data: Any, *,
               steps: int = 1, lr: float = 0.1, first_order: bool = False) -> TensorDictBase:
    """``params`` after ``steps`` gradient steps ``p <- p - lr * grad loss_fn(p, data)``.

    ``params`` is ``TensorDict.from_module(module)`` (or a copy of it, e.g. the meta
    parameters of an outer optimizer); ``loss_fn(module, data)`` is evaluated with the
    parameters being adapted in ``module`` (``torch.func.functional_call``), so any module
    and loss work unchanged (a policy-gradient loss on the task's pre-adaptation rollouts,
    in MAML). The returned parameters are a function of ``params``: an outer loss computed
    with them back-propagates through the inner steps (second order), or, with
    ``first_order=True``, as though the inner gradients were constants (first-order MAML).
    Entries that do not require grad are carried unchanged; ``module``'s own parameters are
    left as they were.

    >>> net = nn.Linear(2, 1)
    >>> params = TensorDict.from_module(net)
    >>> x, y = torch.randn(8, 2), torch.randn(8, 1)
    >>> mse = lambda m, d: ((m(d[0]) - d[1]) ** 2).mean()
    >>> adapted = maml_adapt(net, params, mse, (x, y), steps=2, lr=0.1)
    >>> bool(_loss(net, adapted, mse, (x, y)) < _loss(net, params, mse, (x, y)))
    True
    """
    _check(params, steps, lr)
    current = params
    for _ in range(steps):
        trainable = [k for k, v in current.items(True, True) if v.requires_grad]
        if not trainable:
            raise ValueError("maml_adapt: no entry of params requires grad")
        loss = _loss(module, current, loss_fn, data)
        grads = torch.autograd.grad(loss, [current.get(k) for k in trainable],
                                    create_graph=not first_order, allow_unused=True)
        new = current.clone(False)
        for k, g in zip(trainable, grads):
            if g is not None:
                new.set(k, current.get(k) - lr * (g.detach() if first_order else g))
        current = new
    return current


def maml_adapt_tasks(module: nn.Module, params: TensorDictBase, loss_fn: LossFn,
                     tasks_data: Any, *, steps: int = 1, lr: float = 0.1,
                     first_order: bool = False) -> TensorDictBase:
    """:func:`maml_adapt` for a batch of tasks at once: ``tasks_data`` has a leading task dim
    (a tensor, a tuple of tensors or a TensorDict), and so do the returned parameters
    (``[tasks, *shape]``, batch size ``[tasks]``). ``params`` is shared by the tasks (batch
    size ``[]``, e.g. ``TensorDict.from_module(module)``) or already one set per task (batch
    size ``[tasks]``, e.g. the result of an earlier call: adaptation in several calls, each
    on fresh data, is a chain of these). The tasks run under ``torch.func.vmap``: one call
    evaluates the loss and its gradient for every task (``loss_fn`` sees one task's data,
    without the task dim, and must be vmap-able: no data-dependent Python control flow, no
    in-place updates of captured tensors). Equal to looping :func:`maml_adapt` over the
    tasks.

    >>> net = nn.Linear(2, 1)
    >>> params = TensorDict.from_module(net)
    >>> x, y = torch.randn(3, 8, 2), torch.randn(3, 8, 1)  # 3 tasks
    >>> mse = lambda m, d: ((m(d[0]) - d[1]) ** 2).mean()
    >>> maml_adapt_tasks(net, params, mse, (x, y))["weight"].shape
    torch.Size([3, 1, 2])
    """
    _check(params, steps, lr)
    grad_fn = torch.func.grad(_LossCall(module, loss_fn).with_params)
    flat = _flat(params)
    trainable = {n for n, v in flat.items() if v.requires_grad}
    if steps and not trainable:
        raise ValueError("maml_adapt_tasks: no entry of params requires grad")
    count = _task_count(tasks_data)
    per_task = params.batch_dims > 0  # whether flat has the task dim yet
    if per_task and params.batch_size[:1] != (count,):
        raise ValueError(f"maml_adapt_tasks: params must be shared (batch size []) or one set "
                         f"per task ([{count}]), found batch size {list(params.batch_size)}")
    for _ in range(steps):
        grads = torch.func.vmap(grad_fn, in_dims=(0 if per_task else None, 0))(flat, tasks_data)
        flat = {n: (v - lr * (grads[n].detach() if first_order else grads[n])
                    if n in trainable else (v if per_task else v.expand(count, *v.shape)))
                for n, v in flat.items()}
        per_task = True
    if not per_task:  # no step: the initial parameters for every task
        flat = {n: v.expand(count, *v.shape) for n, v in flat.items()}
    return _nested(flat, [count])


def maml_task_losses(module: nn.Module, tasks_params: TensorDictBase, loss_fn: LossFn,
                     tasks_data: Any) -> torch.Tensor:
    """``loss_fn(module, data_k)`` with task ``k``'s parameters, for every task at once
    (``torch.func.vmap``): ``[tasks]``. ``tasks_data`` has the leading task dim, and so do
    ``tasks_params`` (as :func:`maml_adapt_tasks` returns them) unless they are shared (batch
    size ``[]``, e.g. ``TensorDict.from_module(module)``: the plain multi-task loss). MAML's
    outer loss is the mean of these on each task's post-adaptation data: it back-propagates
    through the adapted parameters into the initial ones.

    >>> net = nn.Linear(2, 1)
    >>> mse = lambda m, d: ((m(d[0]) - d[1]) ** 2).mean()
    >>> x, y = torch.randn(3, 8, 2), torch.randn(3, 8, 1)  # 3 tasks
    >>> adapted = maml_adapt_tasks(net, TensorDict.from_module(net), mse, (x, y))
    >>> maml_task_losses(net, adapted, mse, (x, y)).shape
    torch.Size([3])
    """
    if not isinstance(tasks_params, TensorDictBase):
        raise TypeError(f"tasks_params must be a TensorDict, found {type(tasks_params).__name__}")
    shared = tasks_params.batch_dims == 0
    if not shared and tasks_params.batch_size[:1] != (_task_count(tasks_data),):
        raise ValueError(f"tasks_data must have one entry per task: {tasks_params.batch_size[0]}"
                         f" tasks of parameters, found {_task_count(tasks_data)} of data")
    task_loss = _LossCall(module, loss_fn).with_params
    return torch.func.vmap(task_loss, in_dims=(None if shared else 0, 0))(
        _flat(tasks_params), tasks_data)


def _task_count(data: Any) -> int:
    if isinstance(data, (tuple, list)):
        return _task_count(data[0])
    if isinstance(data, TensorDictBase):
        return int(data.batch_size[0])
    return int(data.shape[0])
