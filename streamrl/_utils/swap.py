"""Parameters swapped into a module for the length of a ``with`` block, whatever ends it.

``with params.to_module(module):`` (tensordict) puts ``params`` into ``module`` and restores
the module's own on exit. tensordict 0.15's ``__exit__`` handles an ``Exception`` but, for a
``KeyboardInterrupt`` (or another ``BaseException``), returns a TensorDict, whose truth
value Python then tests to decide whether to suppress the exception: a Ctrl-C that lands
inside the block surfaces as ``RuntimeError: Converting a tensordict to boolean value is not
permitted`` instead of the interrupt. :func:`params_in` is that ``with`` block, with the
interrupt kept.

>>> import torch
>>> from tensordict import TensorDict
>>> net = torch.nn.Linear(2, 1)
>>> zeros = TensorDict.from_module(net).data.clone().zero_()
>>> with params_in(zeros, net):
...     float(net(torch.ones(2)).detach().sum())
0.0
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tensordict import TensorDictBase
from torch import nn


@contextmanager
def params_in(params: TensorDictBase, module: nn.Module, **kwargs: Any) -> Iterator[None]:
    """``params.to_module(module, **kwargs)`` for the block; the module's own parameters are
    back on any exit, and a ``KeyboardInterrupt`` raised in the block propagates as itself."""
    swapped = params.to_module(module, **kwargs)
    swapped.__enter__()
    try:
        yield
    except Exception as exc:
        swapped.__exit__(type(exc), exc, exc.__traceback__)
        raise
    except BaseException:
        swapped.__exit__(None, None, None)  # restores as on a normal exit; the interrupt goes on
        raise
    swapped.__exit__(None, None, None)
