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

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tensordict import TensorDictBase
from torch import nn

from streamrl._utils.plain_td import plain_parent


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


class ParamSlots:
    """A template module called with a TensorDict's tensors in place of its own.

    ``ParamSlots(template, keys)(params, *args)`` runs ``template(*args)`` with
    ``params.get(key)`` in each parameter or buffer slot that ``keys`` name (the leaves of
    ``params``: ``("0", "weight")`` is ``template[0].weight``) and puts the template's own
    tensors back on any exit: what ``with params_in(params, template)`` does, for a template
    whose structure is fixed when it is built. The slots are found once, so a call costs a
    few dict stores instead of tensordict's walk over the module (~40 µs for a 3-layer MLP,
    which a policy stepping one env pays at every step). Works inside ``torch.vmap`` (the
    tensors are then batched).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> net = torch.nn.Linear(2, 1)
    >>> zeros = TensorDict.from_module(net).data.clone().zero_()
    >>> call = ParamSlots(net, zeros.keys(True, True))
    >>> float(call(zeros, torch.ones(2)).sum()), net.weight.abs().sum().item() > 0
    (0.0, True)
    """

    def __init__(self, template: nn.Module, keys: Iterable[Any]) -> None:
        slots = []
        for key in keys:
            *path, name = key if isinstance(key, tuple) else (key,)
            owner = template.get_submodule(".".join(path))
            store = owner._parameters if name in owner._parameters else owner._buffers
            if name not in store:
                raise KeyError(f"ParamSlots: {type(template).__name__} has no parameter or "
                               f"buffer {'.'.join((*path, name))!r}")
            slots.append((key, store, name, store[name]))
        self.template = template
        self.slots = tuple(slots)

    def values(self, params: TensorDictBase) -> list[Any]:
        """The tensors of ``params`` at the slots' keys, in the slots' order (a
        ``KeyError`` naming a missing one)."""
        inner = getattr(params, "_param_td", None)
        if inner is not None and not getattr(params, "_get_post_hook", True):
            # a TensorDictParams without get hooks: its own get costs ~2 µs more per leaf
            params = inner
        out = []
        for key, _, _, _ in self.slots:
            # a plain TensorDict's leaves are read from its nested dicts (~0.3 µs each
            # instead of ~2 µs for get)
            found = plain_parent(params, key)
            value = params.get(key, None) if found is None else found[0].get(found[1])
            if value is None:
                raise KeyError(f"ParamSlots: the parameters given to "
                               f"{type(self.template).__name__} have no entry {key!r}")
            out.append(value)
        return out

    def __call__(self, params: TensorDictBase, *args: Any) -> Any:
        values = self.values(params)
        try:
            for (_, store, name, _), value in zip(self.slots, values):
                store[name] = value
            return self.template(*args)
        finally:
            for _, store, name, own in self.slots:
                store[name] = own

