"""Noisy linear layers for exploration by parameter noise (NoisyNet DQN, Rainbow)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

__all__ = ["NoisyLazyLinear", "NoisyLinear", "reset_noise"]


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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        std_init: float = 0.5,
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


class NoisyLazyLinear(LazyModuleMixin, NoisyLinear):
    """A :class:`NoisyLinear` that learns ``in_features`` from its first input.

    Parameters and noise buffers are created (initialised, with fresh noise) on the first
    call; after that it is a plain :class:`NoisyLinear`. Build the optimizer after that call.

    >>> layer = NoisyLazyLinear(2)
    >>> layer(torch.zeros(5, 7)).shape, layer.in_features
    (torch.Size([5, 2]), 7)
    >>> type(layer).__name__
    'NoisyLinear'
    """

    cls_to_become = NoisyLinear

    def __init__(
        self,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        std_init: float = 0.5,
    ) -> None:
        # build a 1-input layer, then swap its tensors for uninitialized ones
        super().__init__(1, out_features, bias, device, dtype, std_init)
        kw = {"device": device, "dtype": dtype}
        self.in_features = 0
        self.weight_mu = UninitializedParameter(**kw)
        self.weight_sigma = UninitializedParameter(**kw)
        self.weight_epsilon = UninitializedBuffer(**kw)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def reset_noise(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_noise()

    def initialize_parameters(self, value: torch.Tensor) -> None:
        if self.has_uninitialized_params():
            with torch.no_grad():
                self.in_features = value.shape[-1]
                shape = (self.out_features, self.in_features)
                self.weight_mu.materialize(shape)
                self.weight_sigma.materialize(shape)
                self.weight_epsilon.materialize(shape)
                self.reset_parameters()
                self.reset_noise()


def reset_noise(module: nn.Module) -> None:
    """Call ``reset_noise()`` on every :class:`NoisyLinear` inside ``module``.

    >>> net = nn.Sequential(NoisyLinear(3, 4), nn.ReLU(), NoisyLinear(4, 1))
    >>> reset_noise(net)
    """
    for sub in module.modules():
        if isinstance(sub, NoisyLinear):
            sub.reset_noise()
