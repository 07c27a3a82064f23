"""Noisy linear layers for exploration by parameter noise (NoisyNet DQN, Rainbow)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NoisyLinear", "reset_noise"]


def _scaled_noise(size: int, device, dtype) -> torch.Tensor:
    x = torch.randn(size, device=device, dtype=dtype)
    return x.sign() * x.abs().sqrt()


class NoisyLinear(nn.Module):
    """``y = (mu_w + sigma_w * eps_w) x + (mu_b + sigma_b * eps_b)`` with factorised noise.

    In ``train()`` mode the noise is applied; call :meth:`reset_noise` (or
    :func:`reset_noise` on a whole model) to draw new noise, typically once per update or
    per collected batch. In ``eval()`` mode the layer uses the means only.

    >>> layer = NoisyLinear(4, 2)
    >>> layer.eval()(torch.zeros(1, 4)).shape
    torch.Size([1, 2])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        std_init: float = 0.5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"NoisyLinear needs positive sizes, got {in_features} -> {out_features}"
            )
        kw = {"device": device, "dtype": dtype}
        self.in_features, self.out_features, self.std_init = in_features, out_features, std_init
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features, **kw))
        self.register_buffer("weight_epsilon", torch.zeros(out_features, in_features, **kw))
        if bias:
            self.bias_mu = nn.Parameter(torch.empty(out_features, **kw))
            self.bias_sigma = nn.Parameter(torch.empty(out_features, **kw))
            self.register_buffer("bias_epsilon", torch.zeros(out_features, **kw))
        else:
            self.bias_mu = self.bias_sigma = self.bias_epsilon = None
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        """Initialise means uniformly and sigmas to ``std_init / sqrt(in_features)``."""
        bound = 1 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight_mu.uniform_(-bound, bound)
            self.weight_sigma.fill_(self.std_init * bound)
            if self.bias_mu is not None:
                self.bias_mu.uniform_(-bound, bound)
                self.bias_sigma.fill_(self.std_init * bound)

    def reset_noise(self) -> None:
        """Draw new factorised noise."""
        ref = self.weight_mu
        eps_in = _scaled_noise(self.in_features, ref.device, ref.dtype)
        eps_out = _scaled_noise(self.out_features, ref.device, ref.dtype)
        self.weight_epsilon.copy_(torch.outer(eps_out, eps_in))
        if self.bias_epsilon is not None:
            self.bias_epsilon.copy_(eps_out)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight (noisy in training mode)."""
        if self.training:
            return self.weight_mu + self.weight_sigma * self.weight_epsilon
        return self.weight_mu

    @property
    def bias(self) -> torch.Tensor | None:
        """The effective bias (noisy in training mode)."""
        if self.bias_mu is None:
            return None
        if self.training:
            return self.bias_mu + self.bias_sigma * self.bias_epsilon
        return self.bias_mu

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return F.linear(value, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, std_init={self.std_init}"
        )


def reset_noise(module: nn.Module) -> None:
    """Call ``reset_noise()`` on every :class:`NoisyLinear` inside ``module``.

    >>> net = nn.Sequential(NoisyLinear(3, 4), nn.ReLU(), NoisyLinear(4, 1))
    >>> reset_noise(net)
    """
    for sub in module.modules():
        if isinstance(sub, NoisyLinear):
            sub.reset_noise()
