"""TD3+BC loss (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term in the actor loss."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from torch import Tensor, nn

from streamrl.objectives.td3 import TD3Loss

__all__ = ["TD3BCLoss"]


class TD3BCLoss(TD3Loss):
    """TD3+BC: offline TD3 whose actor also regresses on the dataset's actions.

    The critics' loss is :class:`TD3Loss`'s (twin critics, target policy smoothing). The
    actor loss adds behaviour cloning and normalises the Q term by the critic's scale:

    ``loss_actor = mean(-lmbd * Q_0(s, pi(s)) + mean_d (pi(s) - a)^2)``,
    ``lmbd = alpha / mean|Q_0(s, pi(s))|`` (over the batch, no gradient),

    with ``a`` the dataset's action: ``alpha`` (default 2.5) trades the RL objective against
    staying close to the data, whatever the reward's scale.

    Output: ``loss_actor``, ``loss_qvalue``, the detached ``bc_loss`` (the BC term's batch
    mean) and ``lmbd``, and TD3's diagnostics ``pred_value``, ``state_action_value_actor``,
    ``next_state_value``, ``target_value``, ``td_error``.

    The action bounds of the target smoothing come from ``action_spec`` (bounded) or
    ``bounds=(low, high)``, as in TorchRL (or ``action_low`` / ``action_high``, as
    :class:`TD3Loss` takes them). Other options: see :class:`TD3Loss`.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.modules import MLP, ValueOperator
    >>> actor = TensorDictModule(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), ["observation"],
    ...                          ["action"])
    >>> qvalue = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8]),
    ...                        in_keys=["observation", "action"])
    >>> loss = TD3BCLoss(actor, qvalue, bounds=(-1.0, 1.0), alpha=2.5)
    >>> td = TensorDict({"observation": torch.randn(2, 3), "action": torch.rand(2, 2) * 2 - 1,
    ...     "next": {"observation": torch.randn(2, 3), "reward": torch.randn(2, 1),
    ...              "done": torch.zeros(2, 1, dtype=torch.bool)}}, [2])
    >>> sorted(k for k in loss(td).keys() if not k.startswith("loss_"))[:2]
    ['bc_loss', 'lmbd']
    """

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module,
        *,
        action_spec: Any = None,
        bounds: tuple[float | Tensor, float | Tensor] | None = None,
        num_qvalue_nets: int = 2,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        alpha: float = 2.5,
        loss_function: str = "smooth_l1",
        delay_actor: bool = True,
        delay_qvalue: bool = True,
        priority_key: str | None = None,
        separate_losses: bool = False,
        reduction: str | None = None,
        deactivate_vmap: bool = False,
        use_prioritized_weights: str | bool = "auto",
        action_low: float | Tensor | None = None,
        action_high: float | Tensor | None = None,
    ) -> None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha < 0:
            raise ValueError(f"TD3BCLoss: alpha must be a float >= 0, found {alpha!r}")
        super().__init__(
            actor_network, qvalue_network, action_spec=action_spec, bounds=bounds,
            action_low=action_low, action_high=action_high, num_qvalue_nets=num_qvalue_nets,
            policy_noise=policy_noise, noise_clip=noise_clip, loss_function=loss_function,
            delay_actor=delay_actor, delay_qvalue=delay_qvalue, priority_key=priority_key,
            separate_losses=separate_losses, reduction=reduction,
            deactivate_vmap=deactivate_vmap, use_prioritized_weights=use_prioritized_weights,
        )
        self.alpha = float(alpha)

    def _actor_objective(self, tensordict: TensorDictBase, policy_action: Tensor,
                         q_actor: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        data_action = self._get(tensordict, "action")
        if data_action.shape != policy_action.shape:
            raise ValueError(
                f"TD3BCLoss: the actor's action has shape {tuple(policy_action.shape)} but the "
                f"dataset's {self._keys['action']!r} has shape {tuple(data_action.shape)}"
            )
        batch = tensordict.batch_size
        bc = (policy_action - data_action.to(policy_action.dtype)).pow(2)
        bc = bc.reshape(*batch, -1).mean(-1)
        q = q_actor[0]
        lmbd = self.alpha / q.detach().abs().mean().clamp_min(1e-8)
        return -lmbd * q + bc, {"bc_loss": bc.detach().mean(), "lmbd": lmbd}

    def _output_keys(self) -> list[str]:
        return ["loss_actor", "loss_qvalue", "bc_loss", "lmbd", "pred_value",
                "state_action_value_actor", "next_state_value", "target_value", "td_error"]
