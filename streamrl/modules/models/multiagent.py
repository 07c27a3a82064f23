"""Multi-agent networks: one MLP per agent (or one shared), optionally reading all agents."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictParams
from torch import nn

from streamrl.modules.ensemble import stack_params
from streamrl.modules.models.mlp import MLP

__all__ = ["MultiAgentMLP"]


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

    def _build(self, n_agent_inputs: int) -> None:
        in_features = n_agent_inputs * (self.n_agents if self.centralized else 1)
        net = MLP(in_features=in_features, out_features=self.n_agent_outputs, **self._mlp_kwargs)
        if self.share_params:
            params = TensorDict.from_module(net).data.clone()
        else:
            params = stack_params(net, self.n_agents)
        self.params = TensorDictParams(params)
        meta = TensorDict.from_module(net).detach().to("meta")
        with meta.to_module(net):
            template = copy.deepcopy(net)
        self.__dict__["_template"] = template  # a structure only: not a registered submodule
        self.n_agent_inputs = n_agent_inputs

    def _call(self, params: TensorDict, value: torch.Tensor) -> torch.Tensor:
        with params.to_module(self._template):
            return self._template(value)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not inputs:
            raise TypeError("MultiAgentMLP expected at least one input tensor")
        value = torch.cat(inputs, -1) if len(inputs) > 1 else inputs[0]
        if value.ndim < 2 or value.shape[-2] != self.n_agents:
            raise ValueError(
                f"MultiAgentMLP expected inputs of shape [*B, n_agents={self.n_agents}, F], "
                f"got {tuple(value.shape)}"
            )
        if self.params is None:
            self._build(value.shape[-1])
        if value.shape[-1] != self.n_agent_inputs:
            raise ValueError(
                f"MultiAgentMLP expected {self.n_agent_inputs} features per agent (last dim), "
                f"got shape {tuple(value.shape)}"
            )
        if self.centralized:
            flat = value.flatten(-2)
            if self.share_params:
                out = self._call(self.params, flat).unsqueeze(-2)
                return out.expand(*out.shape[:-2], self.n_agents, out.shape[-1])
            return torch.vmap(self._call, (0, None), -2, randomness="different")(
                self.params, flat
            )
        if self.share_params:
            return self._call(self.params, value)
        return torch.vmap(self._call, (0, -2), -2, randomness="different")(self.params, value)
