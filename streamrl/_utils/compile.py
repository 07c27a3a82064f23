"""compile_with_warmup: run a model eagerly for its first calls, then through torch.compile."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch


def compile_with_warmup(model: Callable[..., Any] | None = None, *, warmup: int = 1, **compile_kwargs: Any) -> Any:
    """Wrap ``model`` so its first ``warmup`` calls run eagerly and later calls run the
    :func:`torch.compile` d model (built once, at the first call after the warm-up).

    Lazy modules and buffers created on the first call then exist before compilation.
    ``compile_kwargs`` go to :func:`torch.compile` (``mode=``, ``fullgraph=``, ``backend=``...).
    Without ``model``, returns a decorator.

    >>> calls = []
    >>> def double(x):
    ...     calls.append(1)
    ...     return 2 * x
    >>> fast = compile_with_warmup(double, warmup=2, disable=True)  # disable: no compiler here
    >>> [fast(torch.ones(1)).item() for _ in range(3)], len(calls)
    ([2.0, 2.0, 2.0], 3)
    """
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, found {warmup!r}")
    if model is None:
        return lambda fn: compile_with_warmup(fn, warmup=warmup, **compile_kwargs)
    if not callable(model):
        raise TypeError(f"compile_with_warmup needs a callable model, found {type(model).__name__}")
    calls = 0
    compiled: Callable[..., Any] | None = None

    @functools.wraps(model)
    def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls, compiled
        if calls < warmup:
            calls += 1
            return model(*args, **kwargs)
        if compiled is None:
            compiled = torch.compile(model, **compile_kwargs)
        return compiled(*args, **kwargs)

    return run
