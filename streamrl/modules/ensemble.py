"""Run N independently initialised copies of a module in one ``torch.vmap`` call.

The objectives use this for twin / ensembled critics (SAC, TD3, REDQ)::

    qnet = ValueOperator(MLP(in_features=4, out_features=1, num_cells=[64, 64]),
                         in_keys=["observation", "action"])
    twin_q = EnsembleModule(qnet, num_copies=2)
    out = twin_q(batch)                     # batch: TensorDict [B]
    out["state_action_value"].shape         # [2, B, 1]; copy i's values at index i
    min_q = out["state_action_value"].min(0).values

API:

* ``EnsembleModule(module, num_copies, expand_input=True)``: a TensorDict module with the
  wrapped module's ``in_keys``/``out_keys``. ``params`` (a ``TensorDictParams`` with batch
  size ``[num_copies]``) holds every trainable tensor; ``ensemble.parameters()`` yields only
  these (the template module's own tensors are not used nor returned). With
  ``expand_input=False`` the input must already have a leading ``num_copies`` dim and copy
  ``i`` reads slice ``i`` (to chain ensembles).
* ``ensemble(td)`` returns a **new** TensorDict of batch size ``[num_copies, *td.batch_size]``
  (the input is not modified).
* ``ensemble.copy_module(i)`` returns a standalone deep copy of copy ``i`` (for inspection).
* ``stack_params(module, num_copies)``: the stacked, independently reset parameters alone,
  for hand-written functional code (``params[i].to_module(module)``).

The module must be initialised (no lazy layers left): run it once on a sample input first.
Copies are reset with each submodule's ``reset_parameters()``, so they differ. Randomness
inside the module (dropout) differs per copy.
"""

from __future__ import annotations

import copy

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase, TensorDictParams
from torch import nn

from streamrl._utils.swap import params_in

__all__ = ["EnsembleModule", "stack_params"]


def _check_initialised(module: nn.Module) -> None:
    for name, param in module.named_parameters():
        if isinstance(param, nn.parameter.UninitializedParameter):
            raise ValueError(
                f"parameter {name!r} is still lazy (uninitialised); call the module once on a "
                "sample input before ensembling it"
            )


def stack_params(module: nn.Module, num_copies: int) -> TensorDict:
    """Stack ``num_copies`` independently reset copies of ``module``'s parameters and buffers.

    Returns a TensorDict with batch size ``[num_copies]`` shaped like
    ``TensorDict.from_module(module)``.

    >>> params = stack_params(nn.Linear(3, 2), 4)
    >>> params["weight"].shape
    torch.Size([4, 2, 3])
    """
    if not isinstance(num_copies, int) or num_copies < 1:
        raise ValueError(f"num_copies must be a positive int, got {num_copies!r}")
    _check_initialised(module)
    copies = []
    for _ in range(num_copies):
        clone = copy.deepcopy(module)
        for sub in clone.modules():
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()
        copies.append(TensorDict.from_module(clone).data)
    return torch.stack(copies, 0)


class EnsembleModule(TensorDictModuleBase):
    """``num_copies`` independently initialised copies of ``module``, evaluated with vmap.

    See the module docstring for the full API.

    >>> from tensordict.nn import TensorDictModule
    >>> q = TensorDictModule(nn.Linear(4, 1), in_keys=["obs"], out_keys=["q"])
    >>> twin = EnsembleModule(q, num_copies=2)
    >>> twin(TensorDict({"obs": torch.randn(5, 4)}, [5]))["q"].shape
    torch.Size([2, 5, 1])
    """

    def __init__(self, module: TensorDictModuleBase, num_copies: int, expand_input: bool = True):
        super().__init__()
        if not isinstance(module, TensorDictModuleBase):
            raise TypeError(
                f"EnsembleModule wraps a TensorDict module, got {type(module).__name__}; wrap "
                "it in TensorDictModule(module, in_keys, out_keys) first"
            )
        self.in_keys = list(module.in_keys)
        self.out_keys = list(module.out_keys)
        self.num_copies = num_copies
        self.expand_input = expand_input
        self.params = TensorDictParams(stack_params(module, num_copies))
        # The template is only a structure (its tensors live on the meta device, so it holds
        # no memory); it stays out of the registered submodules and the stacked params are
        # swapped in at each call.
        meta = TensorDict.from_module(module).detach().to("meta")
        with params_in(meta, module):
            template = copy.deepcopy(module)
        self.__dict__["_template"] = template

    def _one(self, params: TensorDictBase, tensordict: TensorDictBase) -> TensorDictBase:
        with params_in(params, self._template):
            return self._template(tensordict)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        tensordict = tensordict.copy()
        if not self.expand_input and (
            tensordict.batch_dims == 0 or tensordict.batch_size[0] != self.num_copies
        ):
            raise ValueError(
                f"EnsembleModule(expand_input=False) needs a leading dim of {self.num_copies}, "
                f"got batch_size {tuple(tensordict.batch_size)}"
            )
        in_dim = None if self.expand_input else 0
        return torch.vmap(self._one, (0, in_dim), randomness="different")(
            self.params, tensordict
        )

    def copy_module(self, index: int) -> TensorDictModuleBase:
        """A standalone deep copy of copy ``index`` (its parameters detached from the ensemble)."""
        if not -self.num_copies <= index < self.num_copies:
            raise IndexError(f"copy index {index} out of range for {self.num_copies} copies")
        clone = copy.deepcopy(self._template)
        self.params[index].data.clone().to_module(clone)
        for name, param in list(clone.named_parameters()):
            owner = clone.get_submodule(name.rpartition(".")[0]) if "." in name else clone
            setattr(owner, name.rpartition(".")[2], nn.Parameter(param.detach()))
        return clone

    def __repr__(self) -> str:
        return (
            f"EnsembleModule(num_copies={self.num_copies}, expand_input={self.expand_input},\n"
            f"    module={self._template!r})"
        )
