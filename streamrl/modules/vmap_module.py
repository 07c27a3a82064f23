"""Hide one batch dim of a TensorDict from a module by vmapping over it."""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

__all__ = ["VmapModule"]


class VmapModule(TensorDictModuleBase):
    """Run ``module`` under ``torch.vmap`` over one batch dim of the input TensorDict.

    For modules written for data with one batch dim fewer than they get. The outputs are
    written into the input TensorDict.

    Args:
        module: the TensorDict module to map.
        vmap_dim: the batch dim mapped over (input and output); default the last batch dim.
        mock: loop over the dim in Python and stack the results instead of vmapping (same
            result; for modules or debugging sessions where vmap gets in the way).

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> first = TensorDictModule(lambda x: x[0], in_keys=["x"], out_keys=["y"])
    >>> td = TensorDict({"x": torch.ones(10, 3, 2)}, batch_size=[10])
    >>> VmapModule(first, 0)(td)["y"].shape
    torch.Size([10, 2])
    """

    def __init__(
        self, module: TensorDictModuleBase, vmap_dim: int | None = None, mock: bool = False
    ) -> None:
        super().__init__()
        if not isinstance(module, TensorDictModuleBase):
            raise TypeError(f"VmapModule wraps a TensorDict module, got {type(module).__name__}")
        if vmap_dim is not None and not isinstance(vmap_dim, int):
            raise TypeError(f"vmap_dim must be an int or None, got {vmap_dim!r}")
        self.module = module
        self.vmap_dim = vmap_dim
        self.mock = mock
        self.in_keys = list(module.in_keys)
        self.out_keys = list(module.out_keys)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        if tensordict.batch_dims < 1:
            raise ValueError("VmapModule needs a TensorDict with at least one batch dim")
        dim = tensordict.batch_dims - 1 if self.vmap_dim is None else self.vmap_dim
        if not -tensordict.batch_dims <= dim < tensordict.batch_dims:
            raise ValueError(
                f"VmapModule: vmap_dim={dim} is not a batch dim of a TensorDict with batch "
                f"size {tuple(tensordict.batch_size)}"
            )
        if self.mock:
            out = torch.stack([self.module(td.clone(False)) for td in tensordict.unbind(dim)], dim)
        else:
            out = torch.vmap(self.module, (dim,), (dim,), randomness="different")(tensordict)
        tensordict.update(out.select(*self.out_keys, strict=False))
        return tensordict
