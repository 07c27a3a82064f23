"""The collectors' ``compile_policy`` / ``cudagraph_policy``: how the policy is wrapped in the
process that runs the rollout (TorchRL 0.14's collector arguments)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensordict.nn import CudaGraphModule

from streamrl._utils import compile_with_warmup


def as_kwargs(value: Any, what: str) -> dict[str, Any] | None:
    """``False``/``None`` -> None (off), ``True`` -> ``{}``, a dict -> a copy of it."""
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, dict):
        return dict(value)
    raise TypeError(f"{what} must be a bool or a dict of keyword arguments, found {value!r}")


class PolicyAccelerator:
    """Wraps a policy: :func:`~streamrl._utils.compile_with_warmup` with ``compile_kwargs``
    (``warmup=`` and :func:`torch.compile`'s arguments; eager for the first call by
    default), then tensordict's :class:`~tensordict.nn.CudaGraphModule` with
    ``cudagraph_kwargs`` (``warmup=``; without CUDA it runs the policy as it is). Plain
    data, so it travels to worker processes, where it wraps their copy of the policy."""

    def __init__(self, compile_kwargs: dict[str, Any] | None,
                 cudagraph_kwargs: dict[str, Any] | None) -> None:
        self.compile_kwargs = compile_kwargs
        self.cudagraph_kwargs = cudagraph_kwargs

    def __call__(self, policy: Callable[..., Any]) -> Callable[..., Any]:
        if self.compile_kwargs is not None:
            policy = compile_with_warmup(policy, **self.compile_kwargs)
        if self.cudagraph_kwargs is not None:
            policy = CudaGraphModule(policy, **self.cudagraph_kwargs)
        return policy

    def __repr__(self) -> str:
        return (f"PolicyAccelerator(compile={self.compile_kwargs}, "
                f"cudagraph={self.cudagraph_kwargs})")
