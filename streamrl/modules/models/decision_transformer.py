"""DecisionTransformer: a causal transformer over interleaved (return-to-go, state, action)
tokens, the backbone of the Decision Transformer and Online Decision Transformer actors.

The transformer is a GPT-2-style stack (learned position embeddings, pre-norm blocks, causal
self-attention, a final layer norm) written with ``torch.nn``: no ``transformers``
dependency, and no GPT-2 weights to load (see docs/torchrl_differences.md).
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DecisionTransformer"]

_ACTIVATIONS: dict[str, Any] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class _CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, attn_pdrop: float, resid_pdrop: float) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.attn_pdrop = attn_pdrop
        self.resid_drop = nn.Dropout(resid_pdrop)

    def forward(self, x: Tensor) -> Tensor:
        b, n, e = x.shape
        q, k, v = self.qkv(x).split(e, dim=-1)
        q, k, v = (t.view(b, n, self.n_head, e // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_pdrop if self.training else 0.0, is_causal=True
        )
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(b, n, e)))


class _Block(nn.Module):
    """Pre-norm block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: DecisionTransformer.DTConfig) -> None:
        super().__init__()
        n_inner = cfg.n_inner if cfg.n_inner is not None else 4 * cfg.n_embd
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = _CausalSelfAttention(cfg.n_embd, cfg.n_head, cfg.attn_pdrop, cfg.resid_pdrop)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.fc_in = nn.Linear(cfg.n_embd, n_inner)
        self.act = _ACTIVATIONS[cfg.activation]()
        self.fc_out = nn.Linear(n_inner, cfg.n_embd)
        self.mlp_drop = nn.Dropout(cfg.resid_pdrop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_drop(self.fc_out(self.act(self.fc_in(self.ln_2(x)))))


class DecisionTransformer(nn.Module):
    """Causal transformer over ``(R_1, s_1, a_1, R_2, s_2, a_2, ...)`` token triples.

    Each modality has its own linear embedding; the ``3 * T`` tokens get learned position
    embeddings and go through ``n_layer`` causal blocks. The output is the hidden state at
    each *state* token, ``[*B, T, n_embd]``: it has seen the returns-to-go and states up to
    ``t`` and the actions before ``t``, so a head on it predicts ``a_t``.

    Args:
        state_dim: size of an observation.
        action_dim: size of an action.
        config: a :class:`DecisionTransformer.DTConfig` or a dict of its fields (default
            :meth:`default_config`): ``n_embd``, ``n_layer``, ``n_head``, ``n_inner``
            (``None``: ``4 * n_embd``), ``activation`` (``"relu"``, ``"gelu"``,
            ``"gelu_new"``, ``"silu"``, ``"tanh"``...; ``activation_function``, GPT-2's name,
            is accepted in a dict), ``n_positions`` (the most tokens, ``3 * T``),
            ``resid_pdrop``, ``attn_pdrop``, ``embd_pdrop`` (dropout on the embedded tokens).
        device: where the parameters are created.

    >>> model = DecisionTransformer(4, 2, DecisionTransformer.DTConfig(n_embd=32, n_inner=64))
    >>> obs, act, rtg = torch.randn(3, 10, 4), torch.randn(3, 10, 2), torch.randn(3, 10, 1)
    >>> model(obs, act, rtg).shape
    torch.Size([3, 10, 32])
    """

    @dataclass
    class DTConfig:
        """The transformer's architecture (TorchRL's field names and defaults)."""

        n_embd: int = 256
        n_layer: int = 4
        n_head: int = 4
        n_inner: int | None = 1024
        activation: str = "relu"
        n_positions: int = 1024
        resid_pdrop: float = 0.1
        attn_pdrop: float = 0.1
        embd_pdrop: float = 0.1

    @classmethod
    def default_config(cls) -> DecisionTransformer.DTConfig:
        """A fresh :class:`DTConfig` with the default values."""
        return cls.DTConfig()

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        config: dict | DecisionTransformer.DTConfig | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        cfg = _as_config(config)
        for name in ("state_dim", "action_dim"):
            value = state_dim if name == "state_dim" else action_dim
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DecisionTransformer: expected {name} a positive int, found {value!r}")
        self.config = cfg
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.hidden_size = cfg.n_embd
        with torch.device(device) if device is not None else nullcontext():
            self.embed_return = nn.Linear(1, cfg.n_embd)
            self.embed_state = nn.Linear(state_dim, cfg.n_embd)
            self.embed_action = nn.Linear(action_dim, cfg.n_embd)
            self.embed_ln = nn.LayerNorm(cfg.n_embd)
            self.position = nn.Embedding(cfg.n_positions, cfg.n_embd)
            self.drop = nn.Dropout(cfg.embd_pdrop)
            self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
            self.ln_f = nn.LayerNorm(cfg.n_embd)
        self._init_weights()

    def _init_weights(self) -> None:
        # GPT-2's scheme: N(0, 0.02) weights, zero biases, residual projections scaled down
        # by sqrt(2 * n_layer) so that the residual stream's variance does not grow with depth
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
        scale = 0.02 / math.sqrt(2 * max(self.config.n_layer, 1))
        for module in self.modules():
            if isinstance(module, _Block):
                nn.init.normal_(module.attn.proj.weight, std=scale)
                nn.init.normal_(module.fc_out.weight, std=scale)

    def forward(self, observation: Tensor, action: Tensor, return_to_go: Tensor) -> Tensor:
        """Hidden states at the state tokens, ``[*B, T, n_embd]``, from ``observation``
        ``[*B, T, state_dim]``, ``action`` ``[*B, T, action_dim]`` and ``return_to_go``
        ``[*B, T, 1]``."""
        self._check_inputs(observation, action, return_to_go)
        lead, t = observation.shape[:-2], observation.shape[-2]
        tokens = torch.stack(
            (
                self.embed_return(return_to_go.reshape(-1, t, 1)),
                self.embed_state(observation.reshape(-1, t, self.state_dim)),
                self.embed_action(action.reshape(-1, t, self.action_dim)),
            ),
            dim=2,
        ).reshape(-1, 3 * t, self.hidden_size)
        positions = torch.arange(3 * t, device=tokens.device)
        x = self.drop(self.embed_ln(tokens) + self.position(positions))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x).reshape(-1, t, 3, self.hidden_size)
        return x[:, :, 1].reshape(*lead, t, self.hidden_size)

    def _check_inputs(self, observation: Tensor, action: Tensor, return_to_go: Tensor) -> None:
        expected = {"observation": self.state_dim, "action": self.action_dim, "return_to_go": 1}
        inputs = {"observation": observation, "action": action, "return_to_go": return_to_go}
        for name, value in inputs.items():
            if value.ndim < 2 or value.shape[-1] != expected[name]:
                raise ValueError(
                    f"DecisionTransformer: expected {name} of shape [*B, T, {expected[name]}], "
                    f"found {tuple(value.shape)}"
                )
            if value.shape[:-1] != observation.shape[:-1]:
                raise ValueError(
                    f"DecisionTransformer: expected {name}'s leading shape [*B, T] to be "
                    f"{tuple(observation.shape[:-1])} (the observation's), found "
                    f"{tuple(value.shape[:-1])}"
                )
        if 3 * observation.shape[-2] > self.config.n_positions:
            raise ValueError(
                f"DecisionTransformer: a context of T={observation.shape[-2]} steps needs "
                f"{3 * observation.shape[-2]} positions, found n_positions="
                f"{self.config.n_positions}"
            )

    def extra_repr(self) -> str:
        return f"state_dim={self.state_dim}, action_dim={self.action_dim}, config={self.config}"


def _as_config(config: Any) -> DecisionTransformer.DTConfig:
    """A checked DTConfig from a DTConfig, a dict (or mapping) of its fields or None."""
    if config is None:
        return DecisionTransformer.DTConfig()
    if isinstance(config, DecisionTransformer.DTConfig):
        cfg = dataclasses.replace(config)
    else:
        try:
            fields = dict(config)
        except (TypeError, ValueError) as err:
            raise TypeError(
                "DecisionTransformer: expected config a DTConfig or a dict, found "
                f"{type(config).__name__}"
            ) from err
        if "activation_function" in fields:
            fields.setdefault("activation", fields.pop("activation_function"))
        known = {f.name for f in dataclasses.fields(DecisionTransformer.DTConfig)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ValueError(
                f"DecisionTransformer: unknown config entries {unknown}; expected some of "
                f"{sorted(known)}"
            )
        cfg = DecisionTransformer.DTConfig(**fields)
    for name in ("n_embd", "n_layer", "n_head", "n_positions"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"DecisionTransformer: expected {name} a positive int, found {value!r}")
    if cfg.n_embd % cfg.n_head:
        raise ValueError(
            f"DecisionTransformer: expected n_embd divisible by n_head, found n_embd={cfg.n_embd}"
            f" and n_head={cfg.n_head}"
        )
    if cfg.activation not in _ACTIVATIONS:
        raise ValueError(
            f"DecisionTransformer: expected activation one of {sorted(_ACTIVATIONS)}, found "
            f"{cfg.activation!r}"
        )
    for name in ("resid_pdrop", "attn_pdrop", "embd_pdrop"):
        value = getattr(cfg, name)
        if not 0.0 <= float(value) < 1.0:
            raise ValueError(f"DecisionTransformer: expected {name} in [0, 1), found {value!r}")
    return cfg
