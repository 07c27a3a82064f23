"""The Decision Transformer actors: a linear action head (DTActor) or a Gaussian head
(OnlineDTActor) on a :class:`~streamrl.modules.models.decision_transformer.DecisionTransformer`."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from streamrl.modules.models.decision_transformer import DecisionTransformer, _as_config

__all__ = ["DTActor", "OnlineDTActor"]


def _actor_config() -> DecisionTransformer.DTConfig:
    return DecisionTransformer.DTConfig(
        n_embd=512, n_layer=4, n_head=4, n_inner=2048, activation="relu", n_positions=1024,
        resid_pdrop=0.1, attn_pdrop=0.1,
    )


def _head(n_embd: int, action_dim: int, device: torch.device | str | None) -> nn.Linear:
    layer = nn.Linear(n_embd, action_dim, device=device)
    nn.init.orthogonal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class DTActor(nn.Module):
    """Deterministic Decision Transformer actor: ``action[t] = W h[t]`` where ``h[t]`` is
    the transformer's hidden state at state token ``t``.

    Args:
        state_dim: size of an observation.
        action_dim: size of an action.
        transformer_config: the transformer's :class:`DecisionTransformer.DTConfig` or a
            dict of its fields (default :meth:`default_config`).
        device: where the parameters are created.

    >>> cfg = DTActor.default_config()
    >>> cfg.n_embd, cfg.n_inner = 32, 64
    >>> actor = DTActor(state_dim=4, action_dim=2, transformer_config=cfg)
    >>> actor(torch.randn(5, 10, 4), torch.randn(5, 10, 2), torch.randn(5, 10, 1)).shape
    torch.Size([5, 10, 2])
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        transformer_config: dict | DecisionTransformer.DTConfig | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        cfg = _as_config(self.default_config() if transformer_config is None else transformer_config)
        self.transformer = DecisionTransformer(state_dim, action_dim, cfg, device=device)
        self.action_layer = _head(cfg.n_embd, action_dim, device)

    def forward(self, observation: Tensor, action: Tensor, return_to_go: Tensor) -> Tensor:
        """The predicted actions, ``[*B, T, action_dim]``."""
        return self.action_layer(self.transformer(observation, action, return_to_go))

    @classmethod
    def default_config(cls) -> DecisionTransformer.DTConfig:
        """TorchRL's actor config: ``n_embd=512, n_layer=4, n_head=4, n_inner=2048``."""
        return _actor_config()


class OnlineDTActor(nn.Module):
    """Stochastic (Online) Decision Transformer actor: the mean and standard deviation of a
    Gaussian over each step's action.

    The log-std head's output goes through ``tanh`` and is mapped linearly to
    ``[log_std_min, log_std_max] = [-5, 2]``; ``std = exp(log_std)``.

    Args:
        state_dim: size of an observation.
        action_dim: size of an action.
        transformer_config: the transformer's :class:`DecisionTransformer.DTConfig` or a
            dict of its fields (default :meth:`default_config`).
        device: where the parameters are created.

    >>> import dataclasses
    >>> cfg = dataclasses.replace(OnlineDTActor.default_config(), n_embd=32, n_inner=64)
    >>> mu, std = OnlineDTActor(4, 2, cfg)(torch.randn(5, 10, 4), torch.randn(5, 10, 2),
    ...                                    torch.randn(5, 10, 1))
    >>> mu.shape, bool((std > 0).all())
    (torch.Size([5, 10, 2]), True)
    """

    log_std_min: float = -5.0
    log_std_max: float = 2.0

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        transformer_config: dict | DecisionTransformer.DTConfig | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        cfg = _as_config(self.default_config() if transformer_config is None else transformer_config)
        self.transformer = DecisionTransformer(state_dim, action_dim, cfg, device=device)
        self.action_layer_mean = _head(cfg.n_embd, action_dim, device)
        self.action_layer_logstd = _head(cfg.n_embd, action_dim, device)

    def forward(
        self, observation: Tensor, action: Tensor, return_to_go: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(mu, std)``, each ``[*B, T, action_dim]``."""
        hidden = self.transformer(observation, action, return_to_go)
        squashed = torch.tanh(self.action_layer_logstd(hidden))
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (squashed + 1)
        return self.action_layer_mean(hidden), log_std.exp()

    @classmethod
    def default_config(cls) -> DecisionTransformer.DTConfig:
        """TorchRL's actor config: ``n_embd=512, n_layer=4, n_head=4, n_inner=2048``."""
        return _actor_config()
