"""Decision Transformer losses: DTLoss (regress the dataset's actions) and OnlineDTLoss
(maximum likelihood with an entropy bonus and a learned temperature)."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey
from torch import Tensor

from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._utils import distance_loss
from streamrl.objectives.common import LossModule

__all__ = ["DTLoss", "OnlineDTLoss"]

_DISTANCES = ("l1", "l2", "smooth_l1")


def _check_actor(actor_network: Any, owner: str) -> None:
    if not isinstance(actor_network, TensorDictModuleBase):
        raise TypeError(
            f"{owner}: expected actor_network a TensorDict module (e.g. a ProbabilisticActor "
            f"over a DTActor), found {type(actor_network).__name__}"
        )


def _check_detached(target: Tensor, owner: str, key: NestedKey) -> Tensor:
    if target.requires_grad:
        raise RuntimeError(
            f"{owner}: the target action {key!r} must not be part of a graph (detach it)"
        )
    return target


class DTLoss(LossModule):
    """Decision Transformer loss: the distance between the actor's actions and the
    dataset's, over every step of the sequences.

    The actor reads the sequences (e.g. ``observation``, ``action``, ``return_to_go``, each
    ``[*B, T, F]``) and writes its predicted actions at ``action_pred``; the loss is
    ``distance(pred, target)`` element-wise, reduced. As in TorchRL both keys default to
    ``"action"``: the target is read before the actor overwrites it (on a copy).

    Args:
        actor_network: the actor (a TensorDict module, run in deterministic mode).

    Keyword Args:
        loss_function: ``"l2"`` (default, squared error), ``"l1"`` or ``"smooth_l1"``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        device: accepted for TorchRL compatibility; the loss lives where its actor does.

    Keys (:meth:`set_keys`): ``action_target`` (the dataset's actions, default ``"action"``),
    ``action_pred`` (the actor's output, default ``"action"``). Output: ``loss``.

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.modules import DTActor
    >>> actor = TensorDictModule(DTActor(3, 2, {"n_embd": 16, "n_inner": 32}),
    ...     in_keys=["observation", "action", "return_to_go"], out_keys=["action"])
    >>> td = TensorDict({"observation": torch.randn(4, 5, 3), "action": torch.rand(4, 5, 2),
    ...                  "return_to_go": torch.randn(4, 5, 1)}, [4])
    >>> DTLoss(actor)(td)["loss"].shape
    torch.Size([])
    """

    default_keys = {"action_target": "action", "action_pred": "action"}
    default_value_estimator = None
    supported_value_estimators = ()

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        *,
        loss_function: str = "l2",
        reduction: str | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        _check_actor(actor_network, "DTLoss")
        if loss_function not in _DISTANCES:
            raise ValueError(
                f"DTLoss: expected loss_function one of {_DISTANCES}, found {loss_function!r}"
            )
        opts.apply_options(self, reduction=reduction)
        self.loss_function = loss_function
        self.register_network("actor_network", actor_network)

    @property
    def in_keys(self) -> list[NestedKey]:
        """The actor's inputs and the target action."""
        keys = list(self.network_in_keys("actor_network"))
        if self._keys["action_target"] not in keys:
            keys.append(self._keys["action_target"])
        return keys

    def _output_keys(self) -> list[str]:
        return ["loss"]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """``loss``: the reduced distance between predicted and dataset actions."""
        target = _check_detached(self._get(tensordict, "action_target"), type(self).__name__,
                                 self._keys["action_target"])
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            out = self.call_network("actor_network", tensordict.copy())
        pred = self._get(out, "action_pred")
        if pred.shape != target.shape:
            raise ValueError(
                f"DTLoss: expected the predicted action {self._keys['action_pred']!r} to have "
                f"the target's shape {tuple(target.shape)}, found {tuple(pred.shape)}"
            )
        loss = distance_loss(pred, target.to(pred.dtype), self.loss_function)
        return opts.loss_output(self, tensordict, {"loss": loss})

    def extra_repr(self) -> str:
        return f"loss_function={self.loss_function!r}, reduction={self.reduction!r}"


class OnlineDTLoss(shared.Temperature, LossModule):
    """Online Decision Transformer loss: maximum likelihood of the dataset's actions under
    the actor's distribution, with an entropy bonus weighted by a learned temperature.

    With ``H`` the entropy estimated from ``samples_mc_entropy`` reparameterised samples
    (``-mean log pi(a~)``) and ``alpha = exp(log_alpha)``, per step:

    - ``loss_log_likelihood = -log pi(a_target)``;
    - ``loss_entropy = -alpha.detach() * H`` (trains the actor to keep its entropy);
    - ``loss_alpha = alpha * (H - target_entropy).detach()`` (trains ``log_alpha``: alpha
      falls while the entropy is above the target, rises below it).

    Args:
        actor_network: a probabilistic actor (with ``get_dist``), e.g. a ProbabilisticActor
            over an :class:`~streamrl.modules.OnlineDTActor` with a TanhNormal.

    Keyword Args:
        alpha_init: the initial temperature (default 1.0).
        min_alpha, max_alpha: bounds of the temperature (default none).
        fixed_alpha: keep alpha at ``alpha_init`` (``log_alpha`` is then a buffer).
        target_entropy: a number, or ``"auto"`` (default): minus the number of action dims,
            from the actor's spec, else from the first action seen.
        samples_mc_entropy: samples per step for the entropy estimate (default 1).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        scalar_output_mode: with ``reduction="none"``, ``"exclude"`` or ``"non_tensor"``
            for ``alpha`` and ``entropy`` (``None`` warns and excludes).

    Keys (:meth:`set_keys`): ``action_target`` and ``action_pred`` (both ``"action"``).
    Output: ``loss_log_likelihood``, ``loss_entropy``, ``loss_alpha``, ``alpha``,
    ``entropy`` (the mean estimate, detached).
    """

    default_keys = {"action_target": "action", "action_pred": "action"}
    default_value_estimator = None
    supported_value_estimators = ()

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        *,
        alpha_init: float = 1.0,
        min_alpha: float | None = None,
        max_alpha: float | None = None,
        fixed_alpha: bool = False,
        target_entropy: str | float = "auto",
        samples_mc_entropy: int = 1,
        reduction: str | None = None,
        scalar_output_mode: str | None = None,
    ) -> None:
        super().__init__()
        _check_actor(actor_network, "OnlineDTLoss")
        if not hasattr(actor_network, "get_dist"):
            raise TypeError(
                "OnlineDTLoss: expected a probabilistic actor_network (with get_dist), found "
                f"{type(actor_network).__name__}"
            )
        if isinstance(samples_mc_entropy, bool) or not isinstance(samples_mc_entropy, int) or (
            samples_mc_entropy < 1
        ):
            raise ValueError(
                "OnlineDTLoss: expected samples_mc_entropy a positive int, found "
                f"{samples_mc_entropy!r}"
            )
        if max_alpha is not None and max_alpha <= 0:
            raise ValueError(f"OnlineDTLoss: expected max_alpha None or > 0, found {max_alpha!r}")
        opts.apply_options(self, reduction=reduction, scalar_output_mode=scalar_output_mode,
                           fixed_alpha=fixed_alpha)
        self.samples_mc_entropy = samples_mc_entropy
        self.register_network("actor_network", actor_network)
        self.entropy_coef = shared.EntropyCoefficient(
            alpha_init, fixed=fixed_alpha, min_alpha=min_alpha or None, max_alpha=max_alpha
        )
        target_entropy = shared.resolve_target_entropy(
            target_entropy, None, actor_network, self._keys["action_pred"]
        )
        shared.hold_target_entropy(self, target_entropy)

    @property
    def in_keys(self) -> list[NestedKey]:
        """The actor's inputs and the target action."""
        keys = list(self.network_in_keys("actor_network"))
        if self._keys["action_target"] not in keys:
            keys.append(self._keys["action_target"])
        return keys

    def _output_keys(self) -> list[str]:
        keys = ["loss_log_likelihood", "loss_entropy", "loss_alpha"]
        if self.reduction != "none" or self.scalar_output_mode == "non_tensor":
            keys += ["alpha", "entropy"]
        return keys

    def _entropy(self, dist: torch.distributions.Distribution) -> Tensor:
        shape = torch.Size([self.samples_mc_entropy])
        sample_and_log_prob = getattr(dist, "rsample_and_log_prob", None)
        if callable(sample_and_log_prob):
            _, log_prob = sample_and_log_prob(shape)
        else:
            if not dist.has_rsample:
                raise TypeError(
                    f"OnlineDTLoss: the actor's distribution {type(dist).__name__} has no "
                    "rsample; the entropy estimate needs reparameterised samples"
                )
            log_prob = dist.log_prob(dist.rsample(shape))
        return -log_prob.mean(0)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The three loss terms per step, reduced, and the ``alpha``/``entropy`` scalars."""
        target = _check_detached(self._get(tensordict, "action_target"), type(self).__name__,
                                 self._keys["action_target"])
        dist = self.network_dist("actor_network", tensordict.copy())
        log_likelihood = dist.log_prob(target)
        entropy = self._entropy(dist)
        if isinstance(self.target_entropy, str):  # "auto" with no spec: from this action
            batch_dims = log_likelihood.ndim
            shared.hold_target_entropy(
                self, shared.target_entropy_for("auto", target, batch_dims)
            )
        coef = self.entropy_coef
        alpha = coef.alpha()
        live_alpha = coef.log_alpha.clamp(coef.min_log, coef.max_log).exp()
        losses = {
            "loss_log_likelihood": -log_likelihood,
            "loss_entropy": -alpha * entropy,
            "loss_alpha": live_alpha * (entropy - self.target_entropy).detach(),
        }
        scalars = {"alpha": alpha, "entropy": entropy.detach().mean()}
        return opts.loss_output(self, tensordict, losses, scalars=scalars)

    def extra_repr(self) -> str:
        return (
            f"samples_mc_entropy={self.samples_mc_entropy}, fixed_alpha={self.fixed_alpha}, "
            f"reduction={self.reduction!r}"
        )
