"""Value-mixing networks for cooperative multi-agent Q-learning (VDN, QMIX)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["QMixer", "VDNMixer"]


def _check_local(values: Tensor, n_agents: int, owner: str) -> None:
    if values.ndim < 2 or values.shape[-2:] != (n_agents, 1):
        raise ValueError(
            f"{owner}: the local values must have shape [*B, n_agents={n_agents}, 1], found "
            f"{tuple(values.shape)}"
        )


def _positive_int(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, found {value!r}")
    return value


class VDNMixer(nn.Module):
    """Value-Decomposition Network mixer (Sunehag et al. 2017): the global value is the sum
    of the agents' values, ``[*B, n_agents, 1] -> [*B, 1]``.

    >>> VDNMixer(n_agents=3)(torch.tensor([[[1.0], [2.0], [4.0]]]))
    tensor([[7.]])
    """

    def __init__(self, n_agents: int, device: Any = None) -> None:
        super().__init__()
        self.n_agents = _positive_int(n_agents, "n_agents", "VDNMixer")
        self.device = None if device is None else torch.device(device)

    def forward(self, chosen_action_value: Tensor) -> Tensor:
        """Sum the agents' values."""
        _check_local(chosen_action_value, self.n_agents, "VDNMixer")
        return chosen_action_value.sum(-2)


class QMixer(nn.Module):
    """QMIX mixer (Rashid et al. 2018): a monotonic mixing of the agents' values whose
    weights come from hyper-networks of the global state.

    With ``s`` the flattened state and ``q`` the agents' values ``[*B, n_agents]``:
    ``h = elu(q @ |W1(s)| + b1(s))`` (``W1(s)`` is ``[n_agents, mixing_embed_dim]``) and
    ``Q_tot = h @ |W2(s)| + V(s)``, ``V`` a two-layer network. The absolute values make
    ``Q_tot`` non-decreasing in every agent's value.

    Args:
        state_shape: the state's shape, without batch dims.
        mixing_embed_dim: width of the mixing layer.
        n_agents: number of agents.
        device: where the parameters live.

    ``forward(chosen_action_value [*B, n_agents, 1], state [*B, *state_shape]) -> [*B, 1]``.

    >>> mixer = QMixer(state_shape=(5,), mixing_embed_dim=8, n_agents=3, device="cpu")
    >>> mixer(torch.randn(2, 3, 1), torch.randn(2, 5)).shape
    torch.Size([2, 1])
    """

    def __init__(self, state_shape: Any, mixing_embed_dim: int, n_agents: int,
                 device: Any = None) -> None:
        super().__init__()
        try:
            shape = torch.Size(state_shape)
        except TypeError:
            raise TypeError(f"QMixer: state_shape must be a tuple of ints, found {state_shape!r}"
                            ) from None
        if len(shape) == 0 or any(d < 1 for d in shape):
            raise ValueError(f"QMixer: state_shape must be non-empty and positive, found {shape}")
        self.state_shape = shape
        self.n_agents = _positive_int(n_agents, "n_agents", "QMixer")
        self.embed_dim = _positive_int(mixing_embed_dim, "mixing_embed_dim", "QMixer")
        self.state_dim = int(shape.numel())
        dev = None if device is None else torch.device(device)
        self.hyper_w_1 = nn.Linear(self.state_dim, self.embed_dim * self.n_agents, device=dev)
        self.hyper_w_final = nn.Linear(self.state_dim, self.embed_dim, device=dev)
        self.hyper_b_1 = nn.Linear(self.state_dim, self.embed_dim, device=dev)
        self.V = nn.Sequential(nn.Linear(self.state_dim, self.embed_dim, device=dev), nn.ReLU(),
                               nn.Linear(self.embed_dim, 1, device=dev))

    def forward(self, chosen_action_value: Tensor, state: Tensor) -> Tensor:
        """Mix the agents' values with weights computed from ``state``."""
        _check_local(chosen_action_value, self.n_agents, "QMixer")
        batch = chosen_action_value.shape[:-2]
        if state.shape != (*batch, *self.state_shape):
            raise ValueError(
                f"QMixer: state must have shape {(*batch, *self.state_shape)} (batch + "
                f"state_shape), found {tuple(state.shape)}"
            )
        s = state.reshape(-1, self.state_dim)
        q = chosen_action_value.reshape(-1, 1, self.n_agents)
        w1 = self.hyper_w_1(s).abs().view(-1, self.n_agents, self.embed_dim)
        b1 = self.hyper_b_1(s).view(-1, 1, self.embed_dim)
        hidden = F.elu(torch.bmm(q, w1) + b1)
        w_final = self.hyper_w_final(s).abs().view(-1, self.embed_dim, 1)
        y = torch.bmm(hidden, w_final) + self.V(s).view(-1, 1, 1)
        return y.view(*batch, 1)
