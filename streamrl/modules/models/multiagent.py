"""Multi-agent networks: one MLP per agent (or one shared), optionally reading all agents."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tensordict import TensorDict
from tensordict.nn import TensorDictParams
from torch import nn

from streamrl._utils.swap import ParamSlots, params_in
from streamrl._utils.tensor_plan import global_module_hooks
from streamrl.modules.ensemble import stack_params
from streamrl.modules.models.convnet import ConvNet
from streamrl.modules.models.mixers import QMixer, VDNMixer
from streamrl.modules.models.mlp import MLP

# the mixers are at this path in TorchRL too (torchrl.modules.models.multiagent)
__all__ = ["MultiAgentConvNet", "MultiAgentMLP", "QMixer", "VDNMixer"]


class MultiAgentMLP(nn.Module):
    """An MLP for ``n_agents`` agents: inputs ``[*B, n_agents, n_agent_inputs]``, outputs
    ``[*B, n_agents, n_agent_outputs]``.

    Args:
        n_agent_inputs: input features per agent; ``None`` learns it on the first call (the
            parameters exist only from then on: build the optimizer after that call).
        n_agent_outputs: output features per agent.
        n_agents: number of agents (the input's dim -2).
        centralized: each agent reads the inputs of all agents (``n_agents * n_agent_inputs``
            features) instead of its own. Required.
        share_params: all agents use the same network (homogeneous) instead of one each.
            Required.
        device: where to build the parameters.
        depth, num_cells, activation_class, **kwargs: :class:`MLP` arguments of each network.
        use_td_params: parameters live in :attr:`params`, a ``TensorDictParams`` with a
            leading agent dim when not shared (the only layout streamrl has: ``False`` is
            refused).

    Networks that are not shared run in one ``torch.vmap`` call over the agent dim, each
    initialised independently.

    >>> policy = MultiAgentMLP(4, 2, n_agents=3, centralized=False, share_params=False,
    ...                        num_cells=[16])
    >>> policy(torch.randn(10, 3, 4)).shape
    torch.Size([10, 3, 2])
    >>> policy.params["0", "weight"].shape  # one first layer per agent
    torch.Size([3, 16, 4])
    """

    def __init__(
        self,
        n_agent_inputs: int | None,
        n_agent_outputs: int,
        n_agents: int,
        *,
        centralized: bool | None = None,
        share_params: bool | None = None,
        device: torch.device | str | None = None,
        depth: int | None = None,
        num_cells: Sequence[int] | int | None = None,
        activation_class: type[nn.Module] = nn.Tanh,
        use_td_params: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if centralized is None or share_params is None:
            raise ValueError("MultiAgentMLP needs centralized=True/False and share_params=True/False")
        if not use_td_params:
            raise ValueError("MultiAgentMLP keeps its parameters in .params (use_td_params=True)")
        for name, val in (("n_agents", n_agents), ("n_agent_outputs", n_agent_outputs)):
            if not isinstance(val, int) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if n_agent_inputs is not None and (not isinstance(n_agent_inputs, int) or n_agent_inputs < 1):
            raise ValueError(f"n_agent_inputs must be a positive int or None, got {n_agent_inputs!r}")
        for key in ("in_features", "out_features"):
            if key in kwargs:
                raise ValueError(f"MultiAgentMLP sets the MLP's {key}; do not pass it")
        self.n_agent_inputs = n_agent_inputs
        self.n_agent_outputs = n_agent_outputs
        self.n_agents = n_agents
        self.centralized = centralized
        self.share_params = share_params
        self._mlp_kwargs = {"depth": depth, "num_cells": num_cells,
                            "activation_class": activation_class, "device": device, **kwargs}
        self.params: TensorDictParams | None = None
        if n_agent_inputs is not None:
            self._build(n_agent_inputs)

    _feature_dims = 1  # dims per agent after the agent dim: [F]

    def _make_net(self, in_features: int) -> nn.Module:
        return MLP(in_features=in_features, out_features=self.n_agent_outputs, **self._mlp_kwargs)

    def _build(self, n_agent_inputs: int) -> None:
        net = self._make_net(n_agent_inputs * (self.n_agents if self.centralized else 1))
        if self.share_params:
            params = TensorDict.from_module(net).data.clone()
        else:
            params = stack_params(net, self.n_agents)
        self.params = TensorDictParams(params)
        meta = TensorDict.from_module(net).detach().to("meta")
        with params_in(meta, net):
            template = copy.deepcopy(net)
        # a structure only, not a registered submodule; the params go in its slots per call
        self.__dict__["_template"] = template
        self.__dict__["_call"] = ParamSlots(template, params.keys(True, True))
        self.__dict__["_direct"] = LinearChain.of(template, self._call)
        self.n_agent_inputs = n_agent_inputs

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        name, nd = type(self).__name__, self._feature_dims
        if not inputs:
            raise TypeError(f"{name} expected at least one input tensor")
        value = torch.cat(inputs, -nd) if len(inputs) > 1 else inputs[0]
        if value.ndim < nd + 1 or value.shape[-nd - 1] != self.n_agents:
            raise ValueError(
                f"{name} expected inputs of shape [*B, n_agents={self.n_agents}, "
                f"{'C, H, W' if nd == 3 else 'F'}], got {tuple(value.shape)}"
            )
        if self.params is None:
            self._build(value.shape[-nd])
        if value.shape[-nd] != self.n_agent_inputs:
            raise ValueError(
                f"{name} expected {self.n_agent_inputs} features per agent (dim {-nd}), "
                f"got shape {tuple(value.shape)}"
            )
        batch_dims = value.ndim - nd - 1  # agents go back at this position in the output
        if self.centralized:
            joint = value.flatten(batch_dims, batch_dims + 1)
            if self.share_params:
                out = self._call(self.params, joint).unsqueeze(batch_dims)
                shape = list(out.shape)
                shape[batch_dims] = self.n_agents
                return out.expand(shape)
            return torch.vmap(self._call, (0, None), batch_dims, randomness="different")(
                self.params, joint
            )
        if self.share_params:
            direct = self.__dict__.get("_direct")
            if direct is not None and not global_module_hooks():
                return direct(self.params, value)
            return self._call(self.params, value)
        return torch.vmap(self._call, (0, batch_dims), batch_dims, randomness="different")(
            self.params, value
        )


class LinearChain:
    """A template :class:`MLP` of ``nn.Linear`` layers and torch activations run on given
    parameters as ``F.linear`` and activation calls: what calling the template with the
    parameters in its slots computes (the template is private: no hooks on it), without the
    slot swaps and the per-layer module calls (about 2x faster on a small MLP; a policy
    stepping one env calls it at every step)."""

    def __init__(self, steps: list, slots: ParamSlots) -> None:
        self.steps, self.slots = steps, slots

    @classmethod
    def of(cls, template: nn.Module, slots: ParamSlots) -> LinearChain | None:
        """The chain of ``template`` (parameters read through ``slots``), or None when a
        layer is something else (a norm, dropout, a shared bias, a callable) or a
        parameter is not one of the slots'."""
        if type(template).forward is not MLP.forward or len(template.out_features) != 1:
            return None
        index = {key: i for i, (key, *_) in enumerate(slots.slots)}
        steps: list = []
        used = 0
        for name, layer in template.named_children():
            if type(layer) is nn.Linear:
                w = index.get((name, "weight"))
                b = None if layer.bias is None else index.get((name, "bias"))
                if w is None or (layer.bias is not None and b is None):
                    return None
                steps.append((w, b))
                used += 1 + (b is not None)
            elif (type(layer).__module__ == "torch.nn.modules.activation"
                  and not layer._parameters and not layer._buffers and not layer._modules):
                steps.append(layer.forward)
            else:
                return None
        return cls(steps, slots) if used == len(index) else None

    def __call__(self, params: Any, value: torch.Tensor) -> torch.Tensor:
        leaves = self.slots.values(params)
        for step in self.steps:
            if type(step) is tuple:
                w, b = step
                value = F.linear(value, leaves[w], None if b is None else leaves[b])
            else:
                value = step(value)
        return value


class MultiAgentConvNet(MultiAgentMLP):
    """A :class:`ConvNet` for ``n_agents`` agents: inputs ``[*B, n_agents, C, H, W]``, outputs
    ``[*B, n_agents, features]``.

    Args:
        n_agents: number of agents (the input's dim -4).
        centralized: each agent reads all agents' images stacked on the channel dim
            (``n_agents * C`` channels). Required.
        share_params: one network for all agents instead of one each. Required.
        in_features: input channels per agent; ``None`` learns it on the first call.
        device: where to build the parameters.
        num_cells, kernel_sizes (default 5), strides (default 2), paddings (default 0),
            activation_class (default ``ELU``), **kwargs: :class:`ConvNet` arguments.
        use_td_params: as for :class:`MultiAgentMLP` (``False`` is refused).

    >>> net = MultiAgentConvNet(3, centralized=False, share_params=False, in_features=2,
    ...                         num_cells=[4], kernel_sizes=3)
    >>> net(torch.zeros(5, 3, 2, 8, 8)).shape
    torch.Size([5, 3, 36])
    """

    _feature_dims = 3

    def __init__(
        self,
        n_agents: int,
        centralized: bool | None = None,
        share_params: bool | None = None,
        *,
        in_features: int | None = None,
        device: torch.device | str | None = None,
        num_cells: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] | int = 5,
        strides: Sequence[int] | int = 2,
        paddings: Sequence[int] | int = 0,
        activation_class: type[nn.Module] = nn.ELU,
        use_td_params: bool = True,
        **kwargs: Any,
    ) -> None:
        if "in_features" in kwargs:
            raise ValueError("MultiAgentConvNet sets the ConvNet's in_features; do not pass it")
        self._conv_kwargs = {"num_cells": num_cells, "kernel_sizes": kernel_sizes,
                             "strides": strides, "paddings": paddings,
                             "activation_class": activation_class, "device": device, **kwargs}
        super().__init__(
            in_features, 1, n_agents, centralized=centralized, share_params=share_params,
            use_td_params=use_td_params,
        )
        self.n_agent_outputs = None  # set by the ConvNet's aggregator

    def _make_net(self, in_features: int) -> nn.Module:
        return ConvNet(in_features=in_features, **self._conv_kwargs)
