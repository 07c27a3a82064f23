"""The DDPG actor and Q-value networks (Lillicrap et al., 2016), for vector and pixel inputs."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin

from streamrl.modules.models.convnet import ConvNet
from streamrl.modules.models.mlp import MLP
from streamrl.modules.models.utils import SquashDims, Squeeze2dLayer

__all__ = ["DdpgCnnActor", "DdpgCnnQNet", "DdpgMlpActor", "DdpgMlpQNet", "ddpg_init_last_layer"]


def ddpg_init_last_layer(
    module: nn.Sequential, scale: float = 6e-4, device: torch.device | str | None = None
) -> None:
    """Draw the last linear layer's weight and bias uniformly in ``[-scale / 2, scale / 2]``.

    The paper's small final-layer init, which keeps the first actions and values near zero.
    A lazy last layer is initialized right after it learns its input size.

    Args:
        module: an ``nn.Sequential`` (e.g. an :class:`MLP`) ending in a linear layer.
        scale: width of the uniform interval (default ``6e-4``).
        device: where to draw the values (default: the layer's device).

    >>> mlp = MLP(in_features=4, out_features=5, num_cells=(10, 10))
    >>> ddpg_init_last_layer(mlp, scale=6e-3)
    >>> bool(mlp[-1].weight.abs().max() <= 3e-3)
    True
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    layers = [m for m in module.modules() if isinstance(m, nn.Linear | nn.LazyLinear)]
    if not layers:
        raise ValueError(f"ddpg_init_last_layer found no linear layer in {type(module).__name__}")
    last = layers[-1]

    def _init(layer: nn.Module) -> None:
        with torch.no_grad():
            for param in (layer.weight, layer.bias):
                if param is not None:
                    noise = torch.rand(param.shape, device=device or param.device)
                    param.copy_((noise - 0.5) * scale)

    if isinstance(last, LazyModuleMixin) and last.has_uninitialized_params():
        handle = None

        def _hook(layer, args):
            _init(layer)
            handle.remove()

        # lazy materialization is itself a pre-hook registered earlier, so this one runs after
        handle = last.register_forward_pre_hook(_hook)
    else:
        _init(last)


def _merge(defaults: dict, overrides: dict | None, device) -> dict:
    kwargs = {**defaults, **(overrides or {})}
    if "device" in kwargs:
        raise ValueError("pass device as the network's own argument, not inside the kwargs")
    return {**kwargs, "device": device}


class DdpgMlpActor(nn.Module):
    """DDPG actor for vector observations: an :class:`MLP` from observation to action.

    Args:
        action_dim: size of the action.
        mlp_net_kwargs: :class:`MLP` arguments overriding the defaults (``num_cells=[400, 300]``,
            ``ELU``, ``out_features=action_dim``).
        device: where to build the layers.

    The last layer starts uniform in ``[-3e-3, 3e-3]`` (:func:`ddpg_init_last_layer`).

    >>> actor = DdpgMlpActor(action_dim=4)
    >>> actor(torch.zeros(10, 6)).shape
    torch.Size([10, 4])
    """

    def __init__(
        self,
        action_dim: int,
        mlp_net_kwargs: dict | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        defaults = {"in_features": None, "out_features": action_dim, "depth": 2,
                    "num_cells": [400, 300], "activation_class": nn.ELU, "bias_last_layer": True}
        self.mlp = MLP(**_merge(defaults, mlp_net_kwargs, device))
        ddpg_init_last_layer(self.mlp, 6e-3)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.mlp(observation)


class DdpgMlpQNet(nn.Module):
    """DDPG Q-network for vector observations: the action joins after the first layer.

    ``mlp1`` embeds the observation (default one activated layer of 400); ``mlp2`` reads that
    embedding concatenated with the action (default one hidden layer of 300, one output).

    Args:
        mlp_net_kwargs_net1: :class:`MLP` arguments of the observation network.
        mlp_net_kwargs_net2: :class:`MLP` arguments of the network after the action joins.
        device: where to build the layers.

    >>> net = DdpgMlpQNet()
    >>> net(torch.zeros(1, 32), torch.zeros(1, 4)).shape
    torch.Size([1, 1])
    """

    def __init__(
        self,
        mlp_net_kwargs_net1: dict | None = None,
        mlp_net_kwargs_net2: dict | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        net1 = {"in_features": None, "out_features": 400, "depth": 0, "num_cells": [],
                "activation_class": nn.ELU, "bias_last_layer": True, "activate_last_layer": True}
        net2 = {"in_features": None, "out_features": 1, "depth": 1, "num_cells": [300],
                "activation_class": nn.ELU, "bias_last_layer": True}
        self.mlp1 = MLP(**_merge(net1, mlp_net_kwargs_net1, device))
        self.mlp2 = MLP(**_merge(net2, mlp_net_kwargs_net2, device))
        ddpg_init_last_layer(self.mlp2, 6e-3)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp2(self.mlp1(observation), action)


def _conv_defaults(num_cells: list[int], use_avg_pooling: bool) -> dict:
    if use_avg_pooling:
        aggregator, aggregator_kwargs = nn.AdaptiveAvgPool2d, {"output_size": (1, 1)}
    else:
        aggregator, aggregator_kwargs = SquashDims, {"ndims_in": 3}
    return {"in_features": None, "num_cells": num_cells, "kernel_sizes": [8, 4, 3],
            "strides": [4, 2, 1], "paddings": [0, 0, 1], "activation_class": nn.ELU,
            "norm_class": None, "aggregator_class": aggregator,
            "aggregator_kwargs": aggregator_kwargs, "squeeze_output": use_avg_pooling}


def _conv_net(defaults: dict, overrides: dict | None, use_avg_pooling: bool, device) -> nn.Module:
    net = ConvNet(**_merge(defaults, overrides, device))
    if use_avg_pooling:
        net.append(Squeeze2dLayer())
    return net


class DdpgCnnActor(nn.Module):
    """DDPG actor for pixels: a :class:`ConvNet` then an :class:`MLP`.

    Returns ``(action, hidden)``: the action and the flattened pixel embedding, which a value
    network can reuse.

    Args:
        action_dim: size of the action.
        conv_net_kwargs: :class:`ConvNet` arguments overriding the defaults (channels
            ``[32, 64, 64]``, kernels ``[8, 4, 3]``, strides ``[4, 2, 1]``, paddings
            ``[0, 0, 1]``, ``ELU``).
        mlp_net_kwargs: :class:`MLP` arguments (default two hidden layers of 200, ``ELU``).
        use_avg_pooling: aggregate the feature map by average pooling instead of flattening.
        device: where to build the layers.

    >>> actor = DdpgCnnActor(action_dim=4)
    >>> action, hidden = actor(torch.zeros(2, 3, 64, 64))
    >>> action.shape, hidden.shape
    (torch.Size([2, 4]), torch.Size([2, 2304]))
    """

    def __init__(
        self,
        action_dim: int,
        conv_net_kwargs: dict | None = None,
        mlp_net_kwargs: dict | None = None,
        use_avg_pooling: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        conv = _conv_defaults([32, 64, 64], use_avg_pooling)
        mlp = {"in_features": None, "out_features": action_dim, "depth": 2, "num_cells": 200,
               "activation_class": nn.ELU, "bias_last_layer": True}
        self.convnet = _conv_net(conv, conv_net_kwargs, use_avg_pooling, device)
        self.mlp = MLP(**_merge(mlp, mlp_net_kwargs, device))
        ddpg_init_last_layer(self.mlp, 6e-4)

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.convnet(observation)
        return self.mlp(hidden), hidden


class DdpgCnnQNet(nn.Module):
    """DDPG Q-network for pixels: a :class:`ConvNet` embedding joined with the action, then an
    :class:`MLP` to one value.

    Args:
        conv_net_kwargs: :class:`ConvNet` arguments (default channels ``[32, 64, 128]``,
            kernels ``[8, 4, 3]``, strides ``[4, 2, 1]``, paddings ``[0, 0, 1]``).
        mlp_net_kwargs: :class:`MLP` arguments (default two hidden layers of 200, one output).
        use_avg_pooling: aggregate the feature map by average pooling (default) or flatten it.
        device: where to build the layers.

    >>> net = DdpgCnnQNet()
    >>> net(torch.zeros(1, 3, 64, 64), torch.zeros(1, 4)).shape
    torch.Size([1, 1])
    """

    def __init__(
        self,
        conv_net_kwargs: dict | None = None,
        mlp_net_kwargs: dict | None = None,
        use_avg_pooling: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        conv = _conv_defaults([32, 64, 128], use_avg_pooling)
        mlp = {"in_features": None, "out_features": 1, "depth": 2, "num_cells": 200,
               "activation_class": nn.ELU, "bias_last_layer": True}
        self.convnet = _conv_net(conv, conv_net_kwargs, use_avg_pooling, device)
        self.mlp = MLP(**_merge(mlp, mlp_net_kwargs, device))
        ddpg_init_last_layer(self.mlp, 6e-4)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.convnet(observation), action)
