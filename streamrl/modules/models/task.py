"""Task-conditioned layers: a learned embedding of the task id, one linear head per task
chosen row by row (multi-task policies), and a module run with other parameters per task
(meta-RL's adapted policies)."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

__all__ = ["MultiHead", "TaskEmbedding", "TaskwiseModule"]


def _positive(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an int >= 1, found {value!r}")
    return value


def _task_index(owner: str, task_id: torch.Tensor, num_tasks: int) -> torch.Tensor:
    """``task_id`` (int, trailing dim 1 as ``("task", "id")`` is stored, or none) as a flat
    long index, checked against ``num_tasks``."""
    if task_id.is_floating_point() or task_id.dtype == torch.bool:
        raise TypeError(f"{owner}: task ids must be integers, found {task_id.dtype}")
    if task_id.ndim and task_id.shape[-1] == 1:
        task_id = task_id.squeeze(-1)
    task_id = task_id.long()
    if task_id.numel() and (int(task_id.min()) < 0 or int(task_id.max()) >= num_tasks):
        raise IndexError(f"{owner}: task ids must be in [0, {num_tasks}), found "
                         f"{int(task_id.min())} .. {int(task_id.max())}")
    return task_id


class TaskEmbedding(nn.Module):
    """A learned ``embedding_dim`` vector per task: ``forward(task_id)`` maps ids of shape
    ``[*batch, 1]`` (as ``("task", "id")`` is stored) or ``[*batch]`` to ``[*batch,
    embedding_dim]``, to be concatenated with the observation (``MLP`` concatenates its
    inputs).

    >>> from tensordict.nn import TensorDictModule
    >>> embed = TensorDictModule(TaskEmbedding(4, 8), [("task", "id")], ["task_embedding"])
    >>> from tensordict import TensorDict
    >>> td = TensorDict({"task": {"id": torch.tensor([[0], [3]])}}, [2])
    >>> embed(td)["task_embedding"].shape
    torch.Size([2, 8])
    """

    def __init__(self, num_tasks: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_tasks = _positive("TaskEmbedding", "num_tasks", num_tasks)
        _positive("TaskEmbedding", "embedding_dim", embedding_dim)
        self.embedding = nn.Embedding(num_tasks, embedding_dim)

    def forward(self, task_id: torch.Tensor) -> torch.Tensor:
        return self.embedding(_task_index("TaskEmbedding", task_id, self.num_tasks))


class MultiHead(nn.Module):
    """``num_tasks`` linear layers ``in_features -> out_features`` (a shared trunk's heads);
    ``forward(x, task_id)`` applies to each row the head of its task: every head runs on
    every row in one matrix product and each row keeps its own (no loop over tasks or rows;
    ``num_tasks`` times one head's work, for the handful of tasks of a multi-task batch). ``x`` is ``[*batch,
    in_features]``, ``task_id`` ``[*batch, 1]`` or ``[*batch]``. Each head is initialised as
    ``nn.Linear`` is.

    >>> heads = MultiHead(3, 4, 2)
    >>> x, ids = torch.randn(5, 4), torch.tensor([0, 2, 2, 1, 0])
    >>> out = heads(x, ids)
    >>> torch.allclose(out[1], x[1] @ heads.weight[2].T + heads.bias[2])
    True
    """

    def __init__(self, num_tasks: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.num_tasks = _positive("MultiHead", "num_tasks", num_tasks)
        self.in_features = _positive("MultiHead", "in_features", in_features)
        self.out_features = _positive("MultiHead", "out_features", out_features)
        self.weight = nn.Parameter(torch.empty(num_tasks, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(num_tasks, out_features))
        bound = 1.0 / math.sqrt(in_features)
        for k in range(num_tasks):  # nn.Linear's initialisation, per head
            nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, task_id: torch.Tensor) -> torch.Tensor:
        index = _task_index("MultiHead", task_id, self.num_tasks)
        if x.shape[-1] != self.in_features or index.shape != x.shape[:-1]:
            raise ValueError(f"MultiHead: expected x [*batch, {self.in_features}] and task ids "
                             f"[*batch] or [*batch, 1], found x {list(x.shape)} and ids "
                             f"{list(task_id.shape)}")
        flat = x.reshape(-1, self.in_features)
        ids = index.reshape(-1)
        # every head on every row in one matmul ([n, tasks * out]), then each row's head:
        # tasks times the work of one head, but no per-row copy of the weights
        every = (flat @ self.weight.reshape(-1, self.in_features).T).view(
            -1, self.num_tasks, self.out_features)
        out = every[torch.arange(len(ids)), ids] + self.bias[ids]
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"num_tasks={self.num_tasks}, in_features={self.in_features}, "
                f"out_features={self.out_features}")


class TaskwiseModule(nn.Module):
    """``module`` run with parameters of its own for each task: MAML's adapted policies
    acting side by side in one batched env.

    With :attr:`task_params` ``None`` (the default) it is ``module``. Set to a TensorDict of
    ``module``'s parameters with a leading task dim ``[tasks, ...]`` (as
    :func:`~streamrl.objectives.maml_adapt_tasks` returns them), the rows of each input are
    split into ``tasks`` equal consecutive groups (rows ``k * n / tasks`` to ``(k + 1) * n /
    tasks - 1`` are task ``k``'s: a batched env of one task per block of rows) and each group
    runs through ``module`` with its task's parameters, all at once under
    ``torch.func.vmap``. Entries missing from :attr:`task_params` are ``module``'s own.
    ``module``'s parameters are untouched; :attr:`task_params` is not a parameter or a buffer
    (not trained, not in the state dict).

    >>> from tensordict import TensorDict
    >>> net = nn.Linear(2, 1)
    >>> taskwise = TaskwiseModule(net)
    >>> params = TensorDict.from_module(net).expand(2).clone()
    >>> params["bias"] = torch.tensor([[0.0], [100.0]])  # task 1's bias
    >>> taskwise.task_params = params
    >>> out = taskwise(torch.zeros(4, 2))  # rows 0-1: task 0, rows 2-3: task 1
    >>> out.flatten().tolist()
    [0.0, 0.0, 100.0, 100.0]
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"TaskwiseModule wraps an nn.Module, found {type(module).__name__}")
        self.module = module
        self._task_params: TensorDictBase | None = None

    @property
    def task_params(self) -> TensorDictBase | None:
        """The parameters of each task, ``[tasks, ...]``, or ``None`` (``module``'s own)."""
        return self._task_params

    @task_params.setter
    def task_params(self, params: TensorDictBase | None) -> None:
        if params is not None:
            if not isinstance(params, TensorDictBase) or params.batch_dims < 1:
                found = (f"batch size {list(params.batch_size)}"
                         if isinstance(params, TensorDictBase) else type(params).__name__)
                raise ValueError(f"TaskwiseModule.task_params must be a TensorDict with a "
                                 f"leading task dim or None, found {found}")
            own = dict(self.module.named_parameters())
            for key, value in params.items(True, True):
                name = ".".join(key) if isinstance(key, tuple) else key
                if name not in own:
                    raise KeyError(f"TaskwiseModule.task_params: {name!r} is not a parameter "
                                   f"of {type(self.module).__name__} ({sorted(own)})")
                if value.shape[1:] != own[name].shape:
                    raise ValueError(f"TaskwiseModule.task_params: {name!r} must be "
                                     f"[tasks, *{list(own[name].shape)}], found "
                                     f"{list(value.shape)}")
        self._task_params = params

    def forward(self, *inputs: torch.Tensor) -> Any:
        params = self._task_params
        if params is None:
            return self.module(*inputs)
        tasks = params.batch_size[0]
        rows = inputs[0].shape[0] if inputs and inputs[0].ndim else 0
        if rows == 0 or rows % tasks or any(x.shape[:1] != (rows,) for x in inputs):
            raise ValueError(f"TaskwiseModule: the inputs' rows must split into {tasks} equal "
                             f"task groups, found shapes {[list(x.shape) for x in inputs]}")
        flat = {".".join(k) if isinstance(k, tuple) else k: v
                for k, v in params.items(True, True)}

        def run(task_params: dict[str, torch.Tensor], *xs: torch.Tensor) -> Any:
            return torch.func.functional_call(self.module, task_params, xs, strict=False)

        grouped = [x.reshape(tasks, rows // tasks, *x.shape[1:]) for x in inputs]
        out = torch.func.vmap(run, randomness="different")(flat, *grouped)
        return torch.utils._pytree.tree_map(lambda y: y.reshape(rows, *y.shape[2:]), out)
