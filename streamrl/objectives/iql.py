"""IQL loss (Kostrikov et al. 2021, implicit Q-learning) for continuous actions."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.objectives import _loss_options as opts
from streamrl.objectives import _sac_common as shared
from streamrl.objectives._utils import check_loss_function, sum_trailing
from streamrl.objectives.common import BOOTSTRAP_ESTIMATORS, TD_KEYS, LossModule
from streamrl.objectives.value.common import ValueEstimators

__all__ = ["IQLLoss", "advantage_weights", "expectile_loss"]

#: the largest advantage weight of the actor loss (as in the paper's code)
MAX_ADVANTAGE_WEIGHT = 100.0


def expectile_loss(diff: Tensor, expectile: float) -> Tensor:
    """The asymmetric squared loss ``|expectile - 1(diff < 0)| * diff**2``, element-wise:
    minimised over ``v`` by ``diff = q - v``, it makes ``v`` the ``expectile`` of ``q``
    (0.5: the mean; towards 1: the maximum).

    >>> expectile_loss(torch.tensor([2.0, -2.0]), 0.7)
    tensor([2.8000, 1.2000])
    """
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return weight * diff.pow(2)


def advantage_weights(advantage: Tensor, temperature: float,
                      max_weight: float = MAX_ADVANTAGE_WEIGHT) -> Tensor:
    """``min(exp(temperature * advantage), max_weight)``, without gradient: the weights of
    advantage-weighted regression.

    >>> advantage_weights(torch.tensor([0.0, 1.0, 10.0]), 1.0)
    tensor([  1.0000,   2.7183, 100.0000])
    """
    return torch.exp(advantage.detach() * temperature).clamp_max(max_weight)


def _check_iql_args(owner: str, temperature: Any, expectile: Any) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or temperature < 0:
        raise ValueError(f"{owner}: temperature must be a float >= 0, found {temperature!r}")
    if isinstance(expectile, bool) or not isinstance(expectile, (int, float)) \
            or not 0.0 < expectile < 1.0:
        raise ValueError(
            f"{owner}: expectile must be a float in (0, 1), found {expectile!r}"
        )


class IQLLoss(LossModule):
    """Implicit Q-learning: offline RL that never queries the critics on actions outside
    the data.

    Three networks: the policy ``actor_network`` (probabilistic, ``get_dist``), the
    Q-network ``qvalue_network`` (``num_qvalue_nets`` copies, with target copies moved by a
    target updater) and the state-value network ``value_network`` (writes ``state_value``).
    With ``a`` the dataset's action, ``Q'`` the target critics and ``V`` the value network:

    - ``loss_value = mean L_tau(min_i Q'_i(s, a) - V(s))``, ``L_tau`` the expectile loss
      (:func:`expectile_loss`, ``tau = expectile``): ``V`` fits an upper expectile of the
      critics' values over the data's actions, so it never sees an unseen action;
    - ``loss_qvalue = sum_i mean d(Q_i(s, a), r + gamma * (1 - terminated) * V(s'))``
      (``V(s')`` without gradient);
    - ``loss_actor = -mean w * log pi(a|s)``, ``w = min(exp(temperature * (min_i Q'_i(s, a) -
      V(s))), 100)`` (no gradient through ``w``): advantage-weighted behaviour cloning.
      ``temperature=0`` is plain behaviour cloning.

    Each term trains its own network only: the value loss does not reach the critics, the
    critic loss does not reach ``V``, the actor loss reaches the actor only.

    Output: ``loss_actor``, ``loss_qvalue``, ``loss_value`` and the detached ``entropy``
    (``-mean log pi(a|s)`` over the data's actions). The detached ``log pi(a|s)`` is
    written into the input at the ``log_prob`` key (``"_log_prob"``) and the priority
    (``td_error``, largest ``|Q_i - target|`` over critics) at the ``priority`` key.

    TorchRL's options: ``separate_losses`` (parameters the critics or ``V`` share with the
    actor are trained by the actor loss only), ``reduction``, ``scalar_output_mode``,
    ``deactivate_vmap``; ``gamma`` and ``priority_key`` are refused as in TorchRL 0.14
    (``make_value_estimator(gamma=...)``, ``set_keys(priority=...)``).

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import NormalParamExtractor, TensorDictModule
    >>> from streamrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
    >>> actor = ProbabilisticActor(TensorDictModule(
    ...     nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()), ["observation"], ["loc", "scale"]),
    ...     in_keys=["loc", "scale"], distribution_class=TanhNormal)
    >>> qvalue = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8]),
    ...                        in_keys=["observation", "action"])
    >>> value = ValueOperator(nn.Linear(3, 1), in_keys=["observation"])
    >>> loss = IQLLoss(actor, qvalue, value, expectile=0.7, temperature=3.0)
    >>> td = TensorDict({"observation": torch.randn(2, 3), "action": torch.rand(2, 2) * 2 - 1,
    ...     "next": {"observation": torch.randn(2, 3), "reward": torch.randn(2, 1),
    ...              "done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])
    >>> sorted(loss(td).keys())
    ['entropy', 'loss_actor', 'loss_qvalue', 'loss_value']
    """

    default_keys = {
        "value": "state_value",
        "action": "action",
        "log_prob": "_log_prob",
        "state_action_value": "state_action_value",
        **TD_KEYS,
    }
    default_value_estimator = ValueEstimators.TD0
    supported_value_estimators = BOOTSTRAP_ESTIMATORS
    #: the critics always have target copies (TorchRL's IQL has no ``delay_qvalue`` argument)
    delay_qvalue = True
    #: the next state's value comes from V: no target actor
    delay_actor = False

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        value_network: nn.Module | None,
        *,
        num_qvalue_nets: int = 2,
        loss_function: str = "smooth_l1",
        temperature: float = 1.0,
        expectile: float = 0.5,
        gamma: float | None = None,
        priority_key: str | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        scalar_output_mode: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        opts.apply_options(
            self, gamma=gamma, priority_key=priority_key, reduction=reduction,
            scalar_output_mode=scalar_output_mode, separate_losses=separate_losses,
            deactivate_vmap=deactivate_vmap,
        )
        if not isinstance(value_network, nn.Module):
            raise TypeError(
                f"{owner} needs a value_network (an nn.Module writing the state value V(s)), "
                f"found {type(value_network).__name__}"
            )
        _check_iql_args(owner, temperature, expectile)
        self.loss_function = check_loss_function(loss_function)
        self.temperature = float(temperature)
        self.expectile = float(expectile)
        self.num_qvalue_nets = num_qvalue_nets
        shared.register_actor_critic(self, actor_network, qvalue_network,
                                     num_qvalue_nets=num_qvalue_nets, delay_qvalue=True)
        self.register_network("value_network", value_network)

    # ------------------------------------------------------------ hooks
    def _data_qvalues(self, td: TensorDictBase, action: Tensor,
                      params: TensorDictBase) -> Tensor:
        """Every critic's ``Q_i(s, a)`` at the dataset's action ``a``, ``[copies, *batch]``."""
        values = shared.qvalues_at(self, td, action, params)
        return values.reshape(values.shape[0], *td.batch_size)

    def _data_log_prob(self, td: TensorDictBase, action: Tensor) -> Tensor:
        """``log pi(a|s)`` of the dataset's action, batch-shaped, with gradient to the actor."""
        dist = self.network_dist("actor_network", td.copy())
        return sum_trailing(dist.log_prob(action), td.batch_dims)

    # ------------------------------------------------------------ terms
    def target_value(self, td: TensorDictBase) -> Tensor:
        """The critics' target ``r + gamma * (1 - terminated) * V(s')`` (no gradient),
        ``[*batch, 1]``."""
        self._require(td, self._next_key("reward"), self._next_key("done"))
        with torch.no_grad():
            next_value = shared.state_value(
                self, td.get("next"), self.network_params("value_network", detach=True))
        return shared.bootstrap(self, td, next_value)

    in_keys = shared.soft_in_keys_property("qvalue_network", "value_network")

    def _output_keys(self) -> list[str]:
        scalars = ["entropy"]
        if self.reduction == "none" and self.scalar_output_mode == "exclude":
            scalars = []
        return ["loss_actor", "loss_qvalue", "loss_value", *scalars]

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the actor, Q-value and value losses; writes ``td_error`` and the data's
        log-probabilities into ``tensordict``."""
        action = self._get(tensordict, "action")
        batch = tensordict.batch_size
        with torch.no_grad():
            q_data = self._data_qvalues(
                tensordict, action, shared.critic_params(self, target=True)).min(0).values
        value = shared.state_value(
            self, tensordict, opts.separate_params(self, "value_network")).reshape(batch)
        log_prob = self._data_log_prob(tensordict, action)
        if log_prob.shape != batch:
            raise ValueError(
                f"{type(self).__name__}: log pi(a|s) of the action {self._keys['action']!r} has "
                f"shape {tuple(log_prob.shape)}, expected the batch shape {tuple(batch)}"
            )
        tensordict.set(self._keys["log_prob"], log_prob.detach())
        losses = {
            "loss_actor": -advantage_weights(q_data - value, self.temperature) * log_prob,
            "loss_value": expectile_loss(q_data - value, self.expectile),
        }
        target = self.target_value(tensordict)
        pred = self._data_qvalues(tensordict, action, shared.critic_params(self))
        losses["loss_qvalue"], _ = shared.ensemble_regression(
            self, tensordict, pred.unsqueeze(-1), target)
        return opts.loss_output(self, tensordict, losses,
                                scalars={"entropy": -log_prob.detach().mean()})


def __getattr__(name: str) -> Any:
    # TorchRL's path: torchrl.objectives.iql.DiscreteIQLLoss (here in its own file, which imports
    # this one)
    if name == "DiscreteIQLLoss":
        from streamrl.objectives.discrete_iql import DiscreteIQLLoss

        return DiscreteIQLLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
