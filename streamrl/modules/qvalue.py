"""Greedy action selection from action values (DQN-style policies)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.utils import unravel_key
from torch import nn

from streamrl._utils.one_hot import one_hot
from streamrl.data.specs import Categorical as CategoricalSpec
from streamrl.data.specs import Composite, MultiOneHot, TensorSpec
from streamrl.data.specs import OneHot as OneHotSpec

__all__ = [
    "DistributionalDQNnet",
    "DistributionalQValueActor",
    "DistributionalQValueModule",
    "QValueActor",
    "QValueModule",
]

_SPACES = ("one_hot", "categorical", "mult_one_hot")
_SPELLINGS = {"one-hot": "one_hot", "mult-one-hot": "mult_one_hot"}  # TorchRL takes both


def _resolve_space(action_space: str | None, spec: Any, action_key,
                   var_nums: Any = None) -> tuple[str, Any, list[int] | None]:
    """``(action_space, spec, var_nums)``: the space named or read from the spec, and for
    ``"mult_one_hot"`` the size of each one-hot component (``var_nums`` or the spec's
    ``nvec``)."""
    if isinstance(spec, Composite):
        spec = spec[action_key]
    if spec is not None and not isinstance(spec, TensorSpec):
        raise TypeError(f"spec must be a TensorSpec or Composite, got {type(spec).__name__}")
    inferred = None
    if isinstance(spec, OneHotSpec):
        inferred = "one_hot"
    elif isinstance(spec, CategoricalSpec):
        inferred = "categorical"
    elif isinstance(spec, MultiOneHot):
        inferred = "mult_one_hot"
    elif spec is not None:
        raise ValueError(
            f"Q-value actions need a OneHot, Categorical or MultiOneHot spec, got "
            f"{type(spec).__name__}"
        )
    if action_space is None:
        action_space = inferred or "one_hot"
    action_space = _SPELLINGS.get(action_space, action_space)
    if action_space not in _SPACES:
        raise ValueError(f"action_space must be one of {_SPACES}, got {action_space!r}")
    if inferred is not None and inferred != action_space:
        raise ValueError(
            f"action_space={action_space!r} does not match the {type(spec).__name__} spec"
        )
    if action_space != "mult_one_hot":
        if var_nums is not None:
            raise ValueError(f"var_nums={var_nums!r} is only for action_space='mult_one_hot', "
                             f"found action_space={action_space!r}")
        return action_space, spec, None
    if var_nums is None and isinstance(spec, MultiOneHot):
        var_nums = spec.nvec
    if var_nums is None:
        raise ValueError("action_space='mult_one_hot' needs var_nums (the size of each one-hot "
                         "component) or a MultiOneHot spec")
    nums = [int(n) for n in (var_nums.tolist() if isinstance(var_nums, torch.Tensor)
                             else var_nums)]
    if not nums or min(nums) < 1:
        raise ValueError(f"var_nums must be positive component sizes, found {var_nums!r}")
    if isinstance(spec, MultiOneHot) and list(spec.nvec) != nums:
        raise ValueError(f"var_nums={nums} does not match the spec's nvec={list(spec.nvec)}")
    return action_space, spec, nums


def _check_safe(safe: Any, owner: str) -> None:
    """TorchRL's ``safe``: a greedy action is in the spec by construction (nothing to
    project), so only its type is checked."""
    if not isinstance(safe, bool):
        raise TypeError(f"{owner}: safe must be a bool, found {type(safe).__name__}")


def _greedy(module: Any, tensordict: TensorDictBase,
            values: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """:func:`_greedy_of` with the action mask read from ``tensordict`` (a ``KeyError`` when
    it is missing)."""
    mask = None
    if module.action_mask_key is not None:
        mask = tensordict.get(module.action_mask_key, None)
        if mask is None:
            raise KeyError(f"{type(module).__name__} needs the action mask at "
                           f"{module.action_mask_key!r}")
    return _greedy_of(module, values, mask, tensordict.batch_size)


def _greedy_of(module: Any, values: torch.Tensor, mask: torch.Tensor | None,
               batch: torch.Size) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The greedy action of ``values`` ``[*B, n]`` for a Q-value module (its action space
    and spec), masked actions (``mask`` False) never chosen: ``(index, action)``, the action
    one-hot, an index or (for ``"mult_one_hot"``, where ``index`` is ``None``) one one-hot
    per component, in the spec's dtype; ``batch`` is the batch size of the TensorDict the
    values belong to (an index action keeps the spec's unit dim after it). Shared by
    :class:`QValueModule` (and its tensor-plan step) and :class:`DistributionalQValueModule`."""
    name = type(module).__name__
    scores = values
    if mask is not None:
        if mask.shape != values.shape:
            raise ValueError(
                f"action mask {module.action_mask_key!r} has shape {tuple(mask.shape)}, "
                f"action values have shape {tuple(values.shape)}"
            )
        scores = values.masked_fill(~mask.bool(), float("-inf"))
    spec = module.action_spec
    dtype = spec.dtype if spec is not None else torch.long
    if module.action_space == "mult_one_hot":
        if values.shape[-1] != sum(module.var_nums):
            raise ValueError(
                f"{name}: action values have {values.shape[-1]} entries on their last dim but "
                f"var_nums={module.var_nums} sums to {sum(module.var_nums)}"
            )
        # one greedy choice per component: a multi-hot ``[*B, sum(var_nums)]`` mask
        parts = [one_hot(part.argmax(-1), n, dtype)
                 for part, n in zip(scores.split(module.var_nums, -1), module.var_nums)]
        return None, torch.cat(parts, -1)
    index = scores.argmax(-1)
    if module.action_space == "one_hot":
        return index, one_hot(index, values.shape[-1], dtype)
    action = index.to(dtype)
    if spec is not None:
        # a batched env's spec includes the batch dims: only what follows them is the
        # action's own shape (Categorical(n, shape=(1,)) keeps its unit dim)
        own = spec.shape[len(batch):] if spec.shape[: len(batch)] == batch else spec.shape
        if tuple(own) == (1,):
            action = action.unsqueeze(-1)
    return index, action


class QValueModule(TensorDictModuleBase):
    """Pick the greedy action from ``action_value`` (shape ``[*B, n]``).

    Writes ``action`` (one-hot ``[*B, n]`` or index ``[*B]``), keeps ``action_value`` and
    writes ``chosen_action_value`` (``[*B, 1]``). With ``action_mask_key``, actions whose mask
    is False are never chosen. With ``action_space="mult_one_hot"`` the ``n`` values are
    ``len(var_nums)`` components of sizes ``var_nums``: the action is one greedy one-hot per
    component (concatenated) and ``chosen_action_value`` the sum of the chosen values.

    Args:
        action_space: ``"one_hot"`` (or ``"one-hot"``), ``"categorical"`` or
            ``"mult_one_hot"`` (or ``"mult-one-hot"``); inferred from ``spec`` if given
            (default ``"one_hot"``).
        spec: the action spec (``OneHot`` / ``Categorical`` / ``MultiOneHot``); the action
            takes its dtype.
        var_nums: the component sizes of ``"mult_one_hot"`` actions (default: the
            ``MultiOneHot`` spec's ``nvec``); only for that space.
        safe: accepted for TorchRL compatibility; a greedy action is always in the spec.
        action_value_key, action_mask_key, out_keys: key names (``action_value_key=None``
            means the default ``"action_value"``).

    >>> from tensordict import TensorDict
    >>> td = TensorDict({"action_value": torch.tensor([[1.0, 3.0, 2.0]])}, [1])
    >>> QValueModule(action_space="categorical")(td)["action"]
    tensor([1])
    >>> td = QValueModule("mult_one_hot", var_nums=[2, 1])(td)
    >>> td["action"], td["chosen_action_value"]
    (tensor([[0, 1, 1]]), tensor([[5.]]))
    """

    def __init__(
        self,
        action_space: str | None = None,
        *,
        spec: Any = None,
        action_value_key: Any = None,
        action_mask_key: Any = None,
        out_keys: list | None = None,
        var_nums: int | None = None,
        safe: bool = False,
    ) -> None:
        super().__init__()
        _check_safe(safe, "QValueModule")
        if action_value_key is None:
            action_value_key = "action_value"
        out_keys = ["action", action_value_key, "chosen_action_value"] if out_keys is None else out_keys
        if len(out_keys) != 3:
            raise ValueError(
                f"out_keys must be [action, action_value, chosen_action_value], got {out_keys}"
            )
        self.out_keys = [unravel_key(k) for k in out_keys]
        self.action_space, self.action_spec, self.var_nums = _resolve_space(
            action_space, spec, self.out_keys[0], var_nums)
        self.action_value_key = unravel_key(action_value_key)
        self.action_mask_key = None if action_mask_key is None else unravel_key(action_mask_key)
        in_keys = [self.action_value_key]
        if self.action_mask_key is not None:
            in_keys.append(self.action_mask_key)
        self.in_keys = in_keys

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        values = tensordict.get(self.action_value_key, None)
        if values is None:
            raise KeyError(
                f"QValueModule needs {self.action_value_key!r}; the TensorDict has "
                f"{sorted(map(str, tensordict.keys(True, True)))}"
            )
        index, action = _greedy(self, tensordict, values)
        if index is None:  # mult_one_hot: the components' chosen values add up
            chosen = (values * action.to(values.dtype)).sum(-1, keepdim=True)
        else:
            chosen = values.gather(-1, index.unsqueeze(-1))
        action_key, value_key, chosen_key = self.out_keys
        tensordict.set(action_key, action)
        if value_key != self.action_value_key:
            tensordict.set(value_key, values)
        tensordict.set(chosen_key, chosen)
        return tensordict

    def _plan_step(self, key_ok: Any) -> tuple | None:
        """This module as a step of a tensor plan (``streamrl._utils.tensor_plan``):
        ``(fn, in_keys, out_keys)`` computing what :meth:`forward` writes, or ``None`` when
        a key is not one ``key_ok`` accepts or the action's shape would depend on the
        TensorDict's batch size (an index action with a spec)."""
        if self.action_space == "categorical" and self.action_spec is not None:
            return None
        if not all(key_ok(k) for k in (*self.in_keys, *self.out_keys)):
            return None
        action_key, value_key, chosen_key = self.out_keys
        copy_values = value_key != self.action_value_key

        def step(values: torch.Tensor, mask: torch.Tensor | None = None) -> tuple:
            index, action = _greedy_of(self, values, mask, values.shape[:-1])
            if index is None:
                chosen = (values * action.to(values.dtype)).sum(-1, keepdim=True)
            else:
                chosen = values.gather(-1, index.unsqueeze(-1))
            return (action, values, chosen) if copy_values else (action, chosen)

        outs = (action_key, value_key, chosen_key) if copy_values else (action_key, chosen_key)
        return step, tuple(self.in_keys), outs


class QValueActor(TensorDictSequential):
    """A network writing ``action_value`` followed by a :class:`QValueModule`.

    Args:
        module: network mapping ``in_keys`` to action values ``[*B, n]`` (or a TensorDict
            module writing ``action_value`` itself).
        in_keys: network inputs (default ``["observation"]``).
        spec, action_space, action_value_key, action_mask_key, safe: see
            :class:`QValueModule` (a ``MultiOneHot`` spec gives ``"mult_one_hot"``).

    >>> from tensordict import TensorDict
    >>> actor = QValueActor(torch.nn.Linear(4, 2), action_space="one_hot")
    >>> td = actor(TensorDict({"observation": torch.randn(3, 4)}, [3]))
    >>> td["action"].shape, td["chosen_action_value"].shape
    (torch.Size([3, 2]), torch.Size([3, 1]))
    """

    def __init__(
        self,
        module: Any,
        in_keys: Any = None,
        *,
        spec: Any = None,
        safe: bool = False,
        action_space: str | None = None,
        action_value_key: Any = None,
        action_mask_key: Any = None,
    ) -> None:
        _check_safe(safe, "QValueActor")
        if action_value_key is None:
            action_value_key = "action_value"
        if not isinstance(module, TensorDictModuleBase):
            module = TensorDictModule(
                module,
                in_keys=["observation"] if in_keys is None else in_keys,
                out_keys=[action_value_key],
            )
        elif in_keys is not None:
            raise ValueError("in_keys is only for a plain nn.Module; a TensorDict module has its own")
        qvalue = QValueModule(
            action_space,
            spec=spec,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
        )
        super().__init__(module, qvalue)
        self.action_space = qvalue.action_space
        self.var_nums = qvalue.var_nums


def _check_support(support: Any, owner: str) -> torch.Tensor:
    if not isinstance(support, torch.Tensor):
        raise TypeError(f"{owner}: support must be a 1-D tensor, found {type(support).__name__}")
    if support.ndim != 1 or support.numel() < 2:
        raise ValueError(
            f"{owner}: support must be a 1-D tensor of at least 2 atoms, found shape "
            f"{tuple(support.shape)}"
        )
    support = support.to(torch.get_default_dtype()) if not support.is_floating_point() else support
    if not bool((support[1:] > support[:-1]).all()):
        raise ValueError(f"{owner}: support must be strictly increasing, found {support.tolist()}")
    return support


class DistributionalQValueModule(TensorDictModuleBase):
    """Greedy action from a distribution of returns per action (C51, Bellemare et al. 2017).

    Reads ``action_value``, log-probabilities of shape ``[*B, n_atoms, n_actions]`` (atoms on
    dim ``-2``), takes each action's expected return ``sum_i exp(logp_i) * support_i`` and
    writes the greedy ``action`` (one-hot ``[*B, n]`` or index ``[*B]``). ``action_value`` is
    left as it is.

    Args:
        action_space: ``"one_hot"`` (or ``"one-hot"``), ``"categorical"`` or
            ``"mult_one_hot"`` (one greedy one-hot per component of sizes ``var_nums``);
            inferred from ``spec`` if given (default ``"one_hot"``).
        support: the return of each atom, 1-D, increasing (kept as buffer ``support``).
        action_value_key: the log-probabilities (``None``: ``"action_value"``).
        action_mask_key: boolean ``[*B, n_actions]``; masked actions are never chosen.
        out_keys: ``[action, action_value]`` (default ``["action", action_value_key]``).
        var_nums: the component sizes of ``"mult_one_hot"`` actions (default: the
            ``MultiOneHot`` spec's ``nvec``).
        spec: the action spec (``OneHot`` / ``Categorical`` / ``MultiOneHot``).
        safe: accepted for TorchRL compatibility; a greedy action is always in the spec.

    >>> from tensordict import TensorDict
    >>> logits = torch.full((3, 4), -100.0)
    >>> logits[0, 0] = logits[1, 1] = logits[2, 2] = 0.0  # action 2 sits on the top atom
    >>> module = DistributionalQValueModule("categorical", support=torch.tensor([-1.0, 0.0, 1.0]))
    >>> module(TensorDict({"action_value": logits}, []))["action"]
    tensor(2)
    """

    def __init__(
        self,
        action_space: str | None,
        support: torch.Tensor,
        action_value_key: Any = None,
        action_mask_key: Any = None,
        out_keys: list | None = None,
        var_nums: int | None = None,
        spec: Any = None,
        safe: bool = False,
    ) -> None:
        super().__init__()
        _check_safe(safe, "DistributionalQValueModule")
        support = _check_support(support, "DistributionalQValueModule")
        if action_value_key is None:
            action_value_key = "action_value"
        out_keys = ["action", action_value_key] if out_keys is None else out_keys
        if len(out_keys) != 2:
            raise ValueError(f"out_keys must be [action, action_value], got {out_keys}")
        self.out_keys = [unravel_key(k) for k in out_keys]
        self.action_space, self.action_spec, self.var_nums = _resolve_space(
            action_space, spec, self.out_keys[0], var_nums)
        self.action_value_key = unravel_key(action_value_key)
        self.action_mask_key = None if action_mask_key is None else unravel_key(action_mask_key)
        self.in_keys = [self.action_value_key] + (
            [self.action_mask_key] if self.action_mask_key is not None else []
        )
        self.register_buffer("support", support)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        logp = tensordict.get(self.action_value_key, None)
        if logp is None:
            raise KeyError(
                f"DistributionalQValueModule needs {self.action_value_key!r}; the TensorDict has "
                f"{sorted(map(str, tensordict.keys(True, True)))}"
            )
        n_atoms = self.support.numel()
        if logp.ndim < 2 or logp.shape[-2] != n_atoms:
            raise ValueError(
                f"DistributionalQValueModule: {self.action_value_key!r} must have shape "
                f"[*B, {n_atoms} atoms, n_actions], found {tuple(logp.shape)}"
            )
        support = self.support.to(logp.device, torch.promote_types(logp.dtype, torch.float32))
        values = (logp.exp() * support.unsqueeze(-1)).sum(-2)
        _, action = _greedy(self, tensordict, values)
        action_key, value_key = self.out_keys
        tensordict.set(action_key, action)
        if value_key != self.action_value_key:
            tensordict.set(value_key, logp)
        return tensordict


class _LogSoftmaxAtoms(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2:
            raise ValueError(
                f"distributional action values must have shape [*B, n_atoms, n_actions], "
                f"found {tuple(x.shape)}"
            )
        return x.log_softmax(-2)


class DistributionalDQNnet(TensorDictModuleBase):
    """The log-softmax over atoms between a network's atom logits and a
    :class:`DistributionalQValueModule`: each ``in_keys`` entry ``[*B, n_atoms, n_actions]``
    is normalised over dim ``-2`` and written at the matching ``out_keys`` entry.

    Args:
        in_keys: the logits (default ``["action_value"]``).
        out_keys: where the log-probabilities go (default: ``in_keys``); same length.

    >>> from tensordict import TensorDict
    >>> td = DistributionalDQNnet()(TensorDict({"action_value": torch.randn(10, 5, 3)}, [10]))
    >>> torch.allclose(td["action_value"].exp().sum(-2), torch.ones(10, 3))
    True
    """

    def __init__(self, *, in_keys: list | None = None, out_keys: list | None = None) -> None:
        super().__init__()
        in_keys = ["action_value"] if in_keys is None else list(in_keys)
        out_keys = list(in_keys) if out_keys is None else list(out_keys)
        if not in_keys or len(in_keys) != len(out_keys):
            raise ValueError(
                "DistributionalDQNnet needs as many out_keys as in_keys (at least one), found "
                f"in_keys={in_keys}, out_keys={out_keys}"
            )
        self.in_keys = [unravel_key(k) for k in in_keys]
        self.out_keys = [unravel_key(k) for k in out_keys]
        self._log_softmax = _LogSoftmaxAtoms()

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            logits = tensordict.get(in_key, None)
            if logits is None:
                raise KeyError(
                    f"DistributionalDQNnet needs {in_key!r}; the TensorDict has "
                    f"{sorted(map(str, tensordict.keys(True, True)))}"
                )
            tensordict.set(out_key, self._log_softmax(logits))
        return tensordict


class DistributionalQValueActor(TensorDictSequential):
    """A network writing atom logits ``[*B, n_atoms, n_actions]`` followed by a
    :class:`DistributionalQValueModule`.

    Args:
        module: network mapping ``in_keys`` to ``action_value`` (or a TensorDict module
            writing it).
        support: the return of each atom (``actor.support``, read by
            :class:`~streamrl.objectives.DistributionalDQNLoss`).
        in_keys: network inputs (default ``["observation"]``; plain modules only).
        spec, action_space, var_nums, action_value_key, action_mask_key, safe: see
            :class:`DistributionalQValueModule`.
        make_log_softmax: apply ``log_softmax`` over the atoms (dim ``-2``) to the
            network's output (default ``True``); turn it off when the network already
            outputs log-probabilities.

    >>> from tensordict import TensorDict
    >>> actor = DistributionalQValueActor(torch.nn.Sequential(torch.nn.Linear(4, 6),
    ...     torch.nn.Unflatten(-1, (3, 2))), support=torch.arange(3.0), action_space="one_hot")
    >>> td = actor(TensorDict({"observation": torch.randn(5, 4)}, [5]))
    >>> td["action"].shape, td["action_value"].shape
    (torch.Size([5, 2]), torch.Size([5, 3, 2]))
    >>> bool(torch.allclose(td["action_value"].exp().sum(-2), torch.ones(5, 2)))
    True
    """

    def __init__(
        self,
        module: Any,
        support: torch.Tensor,
        in_keys: Any = None,
        spec: Any = None,
        safe: bool = False,
        var_nums: int | None = None,
        action_space: str | None = None,
        action_value_key: Any = None,
        action_mask_key: Any = None,
        make_log_softmax: bool = True,
    ) -> None:
        _check_safe(safe, "DistributionalQValueActor")
        if action_value_key is None:
            action_value_key = "action_value"
        if not isinstance(module, TensorDictModuleBase):
            module = TensorDictModule(
                module,
                in_keys=["observation"] if in_keys is None else in_keys,
                out_keys=[action_value_key],
            )
        elif in_keys is not None:
            raise ValueError("in_keys is only for a plain nn.Module; a TensorDict module has its own")
        value_key = unravel_key(action_value_key)
        if value_key not in [unravel_key(k) for k in module.out_keys]:
            raise ValueError(
                f"DistributionalQValueActor: the module writes {module.out_keys}, which does not "
                f"include action_value_key={action_value_key!r}"
            )
        qvalue = DistributionalQValueModule(
            action_space,
            support=support,
            action_value_key=action_value_key,
            action_mask_key=action_mask_key,
            spec=spec,
            var_nums=var_nums,
        )
        parts = [module]
        if make_log_softmax:
            parts.append(TensorDictModule(_LogSoftmaxAtoms(), [value_key], [value_key]))
        super().__init__(*parts, qvalue)
        self.action_space = qvalue.action_space
        self.var_nums = qvalue.var_nums
        self.make_log_softmax = bool(make_log_softmax)

    @property
    def support(self) -> torch.Tensor:
        """The return of each atom."""
        return self[-1].support
