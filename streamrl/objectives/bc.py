"""Behaviour cloning: fit a policy to the actions of demonstrations."""

from __future__ import annotations

from collections.abc import Callable

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import Tensor

from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.objectives._utils import check_reduction, distance_loss, reduce_loss
from streamrl.objectives.common import LossModule, _output

__all__ = ["BCLoss"]

_LOSS_FUNCTIONS = {"l1": "l1", "l2": "l2", "mse": "l2", "smooth_l1": "smooth_l1"}


class BCLoss(LossModule):
    """Behaviour cloning: make ``actor_network`` reproduce the demonstrated actions.

    Without ``loss_function``, a probabilistic actor (one with ``get_dist``, e.g. a
    :class:`~streamrl.modules.ProbabilisticActor`) is trained by maximum likelihood: the
    per-sample loss is ``-log pi(a_expert | s)``; a deterministic actor (an
    :class:`~streamrl.modules.Actor`) by the squared error between its action and the
    expert's. With ``loss_function`` (``"l1"``, ``"l2"``/``"mse"``, ``"smooth_l1"`` or a
    callable ``f(prediction, expert) -> element-wise loss``), the actor's action (for a
    probabilistic actor, its deterministic action) is regressed on the expert's.

    Keys (:meth:`set_keys`): ``action``, the expert action (the actor's own output key when
    it writes that key, else ``"action"``); ``pad_mask`` (default ``None``: no padding), a
    boolean that is True at padded entries (e.g. the padded steps of action chunks,
    ``[*B, chunk]`` for actions ``[*B, chunk, d]``), which are left out of the loss and of
    the mean.

    Args:
        actor_network: the policy to train.
        loss_function: see above (default ``None``).
        reduction: ``"mean"`` (default: over the loss elements), ``"sum"`` or ``"none"``
            (the element-wise loss, zero at padded entries).

    Output: ``loss_bc``. Called with keyword tensors (the actor's inputs and ``action``)
    instead of a tensordict, the loss returns the ``loss_bc`` tensor.

    >>> import torch
    >>> from torch import nn
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> actor = TensorDictModule(nn.Linear(3, 2), in_keys=["observation"], out_keys=["action"])
    >>> loss = BCLoss(actor)
    >>> td = TensorDict({"observation": torch.randn(4, 3), "action": torch.randn(4, 2)}, [4])
    >>> loss(td)["loss_bc"].shape
    torch.Size([])
    >>> loss(observation=td["observation"], action=td["action"]).shape
    torch.Size([])
    """

    default_keys = {"action": "action", "pad_mask": None}
    default_value_estimator = None
    supported_value_estimators = ()
    out_keys = ["loss_bc"]

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        *,
        loss_function: str | Callable[[Tensor, Tensor], Tensor] | None = None,
        reduction: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(actor_network, TensorDictModuleBase):
            raise TypeError(
                "BCLoss: actor_network must be a TensorDict module (e.g. Actor or "
                f"ProbabilisticActor), found {type(actor_network).__name__}"
            )
        if loss_function is not None and not callable(loss_function):
            if loss_function not in _LOSS_FUNCTIONS:
                raise ValueError(
                    f"BCLoss: loss_function must be None, a callable or one of "
                    f"{sorted(_LOSS_FUNCTIONS)}, found {loss_function!r}"
                )
            loss_function = _LOSS_FUNCTIONS[loss_function]
        self.loss_function = loss_function
        self.reduction = check_reduction(reduction, "BCLoss")
        self.likelihood = loss_function is None and hasattr(actor_network, "get_dist")
        self.register_network("actor_network", actor_network)

    @property
    def in_keys(self) -> list[NestedKey]:
        """The actor's inputs, the expert action and the padding mask (when set)."""
        keys = [*self.network_in_keys("actor_network"), self._keys["action"]]
        if self._keys["pad_mask"] is not None:
            keys.append(self._keys["pad_mask"])
        return keys

    def _kwarg_in_keys(self) -> list[NestedKey]:
        return self.in_keys

    def _predicted_key(self) -> NestedKey:
        written = list(getattr(self.network_template("actor_network"), "out_keys", []))
        if self._keys["action"] in written or not written:
            return self._keys["action"]
        return "action" if "action" in written else written[0]

    def _element_loss(self, td: TensorDictBase, expert: Tensor) -> Tensor:
        if self.likelihood:
            dist = self.network_dist("actor_network", td.copy())
            return -dist.log_prob(expert)
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            out = self.call_network("actor_network", td.copy())
        predicted = out.get(self._predicted_key(), None)
        if predicted is None:
            raise KeyError(f"BCLoss: the actor did not write {self._predicted_key()!r}")
        if predicted.shape != expert.shape:
            raise ValueError(
                f"BCLoss: the actor's action has shape {tuple(predicted.shape)} but the expert "
                f"action {self._keys['action']!r} has shape {tuple(expert.shape)}"
            )
        if callable(self.loss_function):
            return self.loss_function(predicted, expert)
        return distance_loss(predicted, expert.to(predicted.dtype), self.loss_function or "l2")

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute ``loss_bc`` from the observations and expert actions of ``tensordict``."""
        expert = self._get(tensordict, "action")
        loss = self._element_loss(tensordict, expert)
        if self._keys["pad_mask"] is None:
            return _output(loss_bc=reduce_loss(loss, self.reduction))
        padded = self._get(tensordict, "pad_mask").bool()
        if padded.shape != loss.shape[: padded.ndim]:
            raise ValueError(
                f"BCLoss: pad_mask {self._keys['pad_mask']!r} has shape {tuple(padded.shape)}, "
                f"which does not lead the loss's shape {tuple(loss.shape)}"
            )
        keep = (~padded).reshape(*padded.shape, *([1] * (loss.ndim - padded.ndim)))
        loss = loss * keep.to(loss.dtype)
        if self.reduction == "mean":
            loss = loss.sum() / keep.expand_as(loss).sum().clamp_min(1)
        else:
            loss = reduce_loss(loss, self.reduction)
        return _output(loss_bc=loss)

    def extra_repr(self) -> str:
        return f"loss_function={self.loss_function!r}, reduction={self.reduction!r}"
