"""Dueling Q-value networks (Wang et al., 2016): Q = V + A - mean(A)."""

from __future__ import annotations

import torch
from torch import nn

from streamrl.modules.models.convnet import ConvNet
from streamrl.modules.models.mlp import MLP

__all__ = ["DuelingCnnDQNet", "DuelingHead", "DuelingMlpDQNet"]


class DuelingHead(nn.Module):
    """Combine a value stream and an advantage stream into action values.

    ``Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)``. Both streams read the same features.

    >>> head = DuelingHead(num_actions=4, num_cells=[16])
    >>> head(torch.randn(8, 10)).shape
    torch.Size([8, 4])
    """

    def __init__(
        self,
        num_actions: int,
        num_cells: int | list[int] | None = None,
        activation_class: type[nn.Module] = nn.ELU,
    ) -> None:
        super().__init__()
        if not isinstance(num_actions, int) or num_actions < 1:
            raise ValueError(f"num_actions must be a positive int, got {num_actions!r}")
        cells = [512] if num_cells is None else num_cells
        self.advantage = MLP(
            out_features=num_actions, num_cells=cells, activation_class=activation_class
        )
        self.value = MLP(out_features=1, num_cells=cells, activation_class=activation_class)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(-1, keepdim=True)


class DuelingMlpDQNet(nn.Module):
    """An MLP torso followed by a :class:`DuelingHead`.

    >>> net = DuelingMlpDQNet(out_features=2, mlp_kwargs_feature={"num_cells": [32]})
    >>> net(torch.randn(5, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        out_features: int,
        mlp_kwargs_feature: dict | None = None,
        head_num_cells: int | list[int] | None = None,
    ) -> None:
        super().__init__()
        kwargs = {"num_cells": [64, 64], "out_features": 64, "activation_class": nn.ELU,
                  "activate_last_layer": True}
        kwargs.update(mlp_kwargs_feature or {})
        self.features = MLP(**kwargs)
        self.head = DuelingHead(out_features, num_cells=head_num_cells or [64])

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(*inputs))


class DuelingCnnDQNet(nn.Module):
    """A :class:`ConvNet` torso followed by a :class:`DuelingHead` (pixel inputs).

    >>> net = DuelingCnnDQNet(3, {"num_cells": [8], "kernel_sizes": 4, "strides": 1}, [16])
    >>> net(torch.randn(2, 3, 16, 16)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        out_features: int,
        cnn_kwargs: dict | None = None,
        head_num_cells: int | list[int] | None = None,
    ) -> None:
        super().__init__()
        kwargs = {"num_cells": [32, 64, 64], "kernel_sizes": [8, 4, 3], "strides": [4, 2, 1]}
        kwargs.update(cnn_kwargs or {})
        self.features = ConvNet(**kwargs)
        self.head = DuelingHead(out_features, num_cells=head_num_cells)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels))
