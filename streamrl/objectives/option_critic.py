"""The option-critic loss (Bacon, Harb and Precup 2017): intra-option policies, termination
functions and option values learned together from the steps of a policy over options."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from streamrl.objectives._utils import check_reduction, reduce_loss
from streamrl.objectives.common import LossModule, _output

__all__ = ["OptionCriticLoss"]


class OptionCriticLoss(LossModule):
    """Option-critic's three updates on the steps an agent took while holding options (the
    option of each step under ``("hrl", "decision")``, as a
    :class:`~streamrl.modules.HeldDecision` stores it).

    ``network`` reads the observation and writes, for every option ``w`` at once:
    ``option_values`` ``Q(s, w)`` ``[*B, n_options]``, ``termination_probs`` ``beta(s, w)``
    (in [0, 1]) ``[*B, n_options]`` and ``option_logits`` (the intra-option policies'
    logits) ``[*B, n_options, n_actions]``. It runs on the step's state ``s`` and on the next
    state ``s'`` (``"next"``). For a step in option ``w`` with action ``a`` and reward ``r``:

    - the target is the one-step return on arrival in ``s'``, still in ``w`` with
      probability ``1 - beta(s', w)``, else in the best option:
      ``g = r + gamma (1 - terminated) ((1 - beta(s', w)) Q(s', w) + beta(s', w) max_w' Q(s', w'))``
      (all of it detached); ``loss_critic = (Q(s, w) - g)^2 / 2``;
    - ``loss_actor = -log pi_w(a | s) (g - Q(s, w))`` (the intra-option policy gradient, the
      option value as baseline), and ``loss_entropy = -entropy_coeff * H(pi_w(. | s))``;
    - ``loss_termination = beta(s', w) (Q(s', w) - V(s') + termination_reg) (1 - done)`` with
      ``V(s') = max_w' Q(s', w')`` (the termination gradient: an option ends where it is
      worse than the best one by more than the deliberation cost ``termination_reg``; not at
      an episode's last step).

    Keys (:meth:`set_keys`): ``option`` (``("hrl", "decision")``, int ``[*B, 1]``),
    ``action`` (int ``[*B]`` or ``[*B, 1]``, or one-hot), ``reward``, ``done``,
    ``terminated`` (read under ``"next"``), ``option_values``, ``termination_probs``,
    ``option_logits`` (the network's outputs). TorchRL has no option-critic loss: the names
    are ours; the output keys follow its losses' convention (their sum is the loss).

    >>> from torch import nn
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> class Heads(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.body = nn.Linear(4, 2 + 2 + 2 * 3)
    ...     def forward(self, obs):
    ...         out = self.body(obs)
    ...         return out[..., :2], out[..., 2:4].sigmoid(), out[..., 4:].unflatten(-1, (2, 3))
    >>> net = TensorDictModule(Heads(), ["observation"],
    ...                        ["option_values", "termination_probs", "option_logits"])
    >>> loss = OptionCriticLoss(net, gamma=0.99)
    >>> td = TensorDict({"observation": torch.randn(5, 4), "action": torch.randint(3, (5,)),
    ...                  "hrl": {"decision": torch.randint(2, (5, 1))},
    ...                  "next": {"observation": torch.randn(5, 4), "reward": torch.ones(5, 1),
    ...                           "done": torch.zeros(5, 1, dtype=torch.bool),
    ...                           "terminated": torch.zeros(5, 1, dtype=torch.bool)}}, [5])
    >>> sorted(k for k in loss(td).keys() if k.startswith("loss_"))
    ['loss_actor', 'loss_critic', 'loss_entropy', 'loss_termination']
    """

    default_keys = {
        "option": ("hrl", "decision"), "action": "action", "reward": "reward", "done": "done",
        "terminated": "terminated", "option_values": "option_values",
        "termination_probs": "termination_probs", "option_logits": "option_logits",
    }
    default_value_estimator = None
    supported_value_estimators = ()
    out_keys = ["loss_critic", "loss_actor", "loss_termination", "loss_entropy"]

    def __init__(self, network: TensorDictModuleBase, *, gamma: float = 0.99,
                 termination_reg: float = 0.01, entropy_coeff: float = 0.01,
                 critic_coeff: float = 1.0, reduction: str | None = None) -> None:
        super().__init__()
        if not isinstance(network, TensorDictModuleBase):
            raise TypeError(f"OptionCriticLoss: network must be a TensorDict module writing "
                            f"option_values, termination_probs and option_logits, found "
                            f"{type(network).__name__}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"OptionCriticLoss: gamma must be in [0, 1], found {gamma!r}")
        for name, value in (("entropy_coeff", entropy_coeff), ("critic_coeff", critic_coeff)):
            if not value >= 0:
                raise ValueError(f"OptionCriticLoss: {name} must be >= 0, found {value!r}")
        self.gamma, self.termination_reg = float(gamma), float(termination_reg)
        self.entropy_coeff, self.critic_coeff = float(entropy_coeff), float(critic_coeff)
        self.reduction = check_reduction(reduction, "OptionCriticLoss")
        self.register_network("network", network, functional=False)

    def _heads(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.call_network("network", td.copy())
        values = [self._get(out, k) for k in ("option_values", "termination_probs",
                                                  "option_logits")]
        q, beta, logits = values
        if q.shape != beta.shape or logits.shape[:-1] != q.shape:
            raise ValueError(f"OptionCriticLoss: the network must write option_values and "
                             f"termination_probs [*B, n_options] and option_logits [*B, "
                             f"n_options, n_actions], found {list(q.shape)}, "
                             f"{list(beta.shape)} and {list(logits.shape)}")
        return q, beta, logits

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The four terms on the steps of ``tensordict`` (any batch shape)."""
        q, _, logits = self._heads(tensordict)
        next_q, next_beta, _ = self._heads(tensordict.get("next"))
        n_options = q.shape[-1]
        option = self._get(tensordict, "option").long()
        if option.shape == q.shape[:-1]:
            option = option.unsqueeze(-1)
        if option.shape != (*q.shape[:-1], 1):
            raise ValueError(f"OptionCriticLoss: the option {self._keys['option']!r} must be "
                             f"one index per step, [*B, 1], found {list(option.shape)}")
        if bool(((option < 0) | (option >= n_options)).any()):
            raise IndexError(f"OptionCriticLoss: options must be in [0, {n_options}), found "
                             f"{int(option.min())} .. {int(option.max())}")
        action = self._get(tensordict, "action")
        if action.shape == logits.shape[:-2] + logits.shape[-1:]:  # one-hot
            action = action.argmax(-1)
        action = action.long().reshape(q.shape[:-1])
        reward = tensordict.get(self._next_key("reward")).reshape(q.shape[:-1])
        done = tensordict.get(self._next_key("done")).reshape(q.shape[:-1])
        terminated = tensordict.get(self._next_key("terminated"), done).reshape(q.shape[:-1])

        q_w = q.gather(-1, option).squeeze(-1)
        with torch.no_grad():
            next_q_w = next_q.gather(-1, option).squeeze(-1)
            next_beta_w = next_beta.gather(-1, option).squeeze(-1)
            best = next_q.max(-1).values
            arrive = (1 - next_beta_w) * next_q_w + next_beta_w * best
            target = reward + self.gamma * (~terminated.bool()).to(q.dtype) * arrive
            advantage = target - q_w
        loss_critic = 0.5 * (q_w - target) ** 2 * self.critic_coeff

        option_logits = logits.gather(
            -2, option.unsqueeze(-1).expand(*option.shape, logits.shape[-1])).squeeze(-2)
        log_probs = option_logits.log_softmax(-1)
        log_pi = log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        loss_actor = -log_pi * advantage

        # the termination gradient: beta(s', w) is differentiated, its weight is not
        next_beta_live = next_beta.gather(-1, option).squeeze(-1)
        weight = (next_q_w - best + self.termination_reg) * (~done.bool()).to(q.dtype)
        loss_termination = next_beta_live * weight.detach()
        return _output(
            loss_critic=reduce_loss(loss_critic, self.reduction),
            loss_actor=reduce_loss(loss_actor, self.reduction),
            loss_termination=reduce_loss(loss_termination, self.reduction),
            loss_entropy=reduce_loss(-self.entropy_coeff * entropy, self.reduction),
            entropy=entropy.mean().detach(),
            option_value=q_w.mean().detach(),
            termination_prob=next_beta_w.mean(),
        )
