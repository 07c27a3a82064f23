"""Sequences of TensorDict modules that keep the output specs of their members."""

from __future__ import annotations

from typing import Any

from tensordict.nn import TensorDictSequential

from streamrl.modules._spec_utils import as_composite

__all__ = ["SafeSequential", "merged_specs"]


def merged_specs(modules: Any) -> dict:
    """``{out_key: spec}`` over the members that carry specs; later members win on a clash."""
    specs: dict = {}
    for module in modules:
        if isinstance(getattr(module, "_specs", None), dict):
            specs.update(module._specs)
        elif isinstance(module, TensorDictSequential):
            specs.update(merged_specs(module.module))
    return specs


class SafeSequential(TensorDictSequential):
    """A ``tensordict.nn.TensorDictSequential`` whose :attr:`spec` gathers its members' specs.

    Each member runs in order on the same TensorDict; members that are
    :class:`~streamrl.modules.SafeModule` (or other spec'd modules) check or project their
    own outputs as they run.

    Args:
        *modules: the TensorDict modules to run in order.
        partial_tolerant: run only the members whose inputs are present.
        inplace: ``True`` writes into the input, ``False`` into a new TensorDict, ``"empty"``
            into ``input.empty()``; ``None`` (default) leaves it to the members.

    >>> import torch
    >>> from torch import nn
    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Bounded, Unbounded
    >>> from streamrl.modules import SafeModule
    >>> seq = SafeSequential(
    ...     SafeModule(nn.Linear(4, 8), ["obs"], ["hidden"], spec=Unbounded(8)),
    ...     SafeModule(nn.Linear(8, 2), ["hidden"], ["action"], spec=Bounded(-1, 1, (2,)),
    ...                safe=True),
    ... )
    >>> sorted(seq.spec.keys())
    ['action', 'hidden']
    >>> seq(TensorDict({"obs": torch.randn(3, 4) * 100}, [3]))["action"].abs().max() <= 1
    tensor(True)
    """

    def __init__(
        self, *modules: Any, partial_tolerant: bool = False, inplace: bool | str | None = None
    ) -> None:
        if not modules:
            raise ValueError(f"{type(self).__name__} needs at least one module")
        super().__init__(*modules, partial_tolerant=partial_tolerant, inplace=inplace)

    @property
    def spec(self):
        """The output specs of the members, as a ``Composite`` keyed by out key."""
        return as_composite(merged_specs(self.module))
