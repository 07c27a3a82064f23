"""BurnInTransform: refresh recurrent states of sampled sequences by running the first
``burn_in`` steps through the recurrent modules (a replay-buffer transform).

>>> import torch
>>> from tensordict import TensorDict
>>> from streamrl.envs.transforms import BurnInTransform
>>> from streamrl.modules import GRUModule
>>> gru = GRUModule(input_size=4, hidden_size=5, in_keys=["observation", "hidden"],
...                 out_keys=["intermediate", ("next", "hidden")], default_recurrent_mode=True)
>>> td = TensorDict({"observation": torch.randn(2, 10, 4), "hidden": torch.zeros(2, 10, 1, 5),
...                  "is_init": torch.zeros(2, 10, 1, dtype=torch.bool)}, [2, 10])
>>> out = BurnInTransform([gru], burn_in=3)(td)
>>> out.shape, bool(out["hidden"][:, 0].abs().sum() > 0)
(torch.Size([2, 7]), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torch import nn

from streamrl.envs.transforms.transform import Transform, _check_td, as_keys

__all__ = ["BurnInTransform"]


def _next_targets(modules: Sequence[Any]) -> list:
    """``X`` for every ``("next", X...)`` among the modules' out_keys."""
    keys = []
    for module in modules:
        for key in as_keys(getattr(module, "out_keys", []), "out_keys"):
            if isinstance(key, tuple) and key[0] == "next":
                target = key[1] if len(key) == 2 else key[1:]
                if target not in keys:
                    keys.append(target)
    return keys


class BurnInTransform(Transform):
    """Burn in recurrent modules on the first ``burn_in`` time steps of sampled sequences.

    The data's last batch dim is time. The modules run (without gradients, in their
    sequence mode) on the first ``burn_in`` steps; each out key then gets, at the first
    of the remaining steps, the ``("next", key)`` value the modules wrote at the last
    burn-in step. The remaining ``T - burn_in`` steps are returned. Meant for replay-buffer
    samples (``buffer.append_transform``), not for envs.

    Args:
        modules: the modules (TensorDict modules with ``out_keys``) run in order on the
            burn-in steps; they must handle sequences.
        burn_in: the number of time steps burnt in (>= 1, less than the sequence length).
        out_keys: the entries refreshed; default: every ``X`` whose ``("next", X)`` is an
            out key of a module (``"hidden"`` for ``("next", "hidden")``).

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> class Cumsum(torch.nn.Module):  # a toy "recurrent" module: the running sum
    ...     def forward(self, x):
    ...         return x.cumsum(-2)
    >>> m = TensorDictModule(Cumsum(), in_keys=["x"], out_keys=[("next", "h")])
    >>> td = TensorDict({"x": torch.ones(1, 5, 1), "h": torch.zeros(1, 5, 1)}, [1, 5])
    >>> BurnInTransform([m], burn_in=2)(td)["h"].squeeze(-1)
    tensor([[2., 0., 0.]])
    """

    def __init__(self, modules: Sequence[Any], burn_in: int, out_keys: Any = None) -> None:
        if isinstance(modules, nn.Module) or not isinstance(modules, Sequence) or not modules:
            raise TypeError(
                f"modules must be a non-empty list of modules, found {type(modules).__name__}"
            )
        for module in modules:
            if not isinstance(module, nn.Module) or not hasattr(module, "out_keys"):
                raise TypeError(
                    f"each module must be a TensorDict module (nn.Module with out_keys), "
                    f"found {type(module).__name__}"
                )
        if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 1:
            raise ValueError(f"burn_in must be an int >= 1, found {burn_in!r}")
        keys = _next_targets(modules) if out_keys is None else as_keys(out_keys, "out_keys")
        if not keys:
            raise ValueError(
                "BurnInTransform found no out_keys: no module writes a ('next', key) entry; "
                "pass out_keys"
            )
        super().__init__()
        self.out_keys = keys
        # not "modules": that name is nn.Module.modules()
        self.burn_in_modules = nn.ModuleList(modules)
        self.burn_in = burn_in

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        """The last ``T - burn_in`` steps of ``td`` with burnt-in ``out_keys`` at step 0."""
        _check_td(td, self)
        return self._call(td)

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        if td.batch_dims < 1:
            raise ValueError("BurnInTransform needs data with a time dim (the last batch dim)")
        T = td.batch_size[-1]
        if self.burn_in >= T:
            raise ValueError(
                f"BurnInTransform: burn_in={self.burn_in} leaves no step of sequences of "
                f"length {T} (the last batch dim)"
            )
        lead = (slice(None),) * (td.batch_dims - 1)
        burnt = td[(*lead, slice(0, self.burn_in))].clone()
        with torch.no_grad():
            for module in self.burn_in_modules:
                burnt = module(burnt)
        out = td[(*lead, slice(self.burn_in, None))].clone()
        first = (*lead, 0)
        for key in self.out_keys:
            value = burnt.get(("next", *((key,) if isinstance(key, str) else key)), None)
            if value is None:
                raise KeyError(
                    f"BurnInTransform: the modules wrote no ('next', {key!r}) entry; they wrote "
                    f"{sorted(str(k) for k in burnt.keys(True, True))}"
                )
            last = value[(*lead, -1)]
            current = out.get(key, None)
            if current is None:
                current = torch.zeros(
                    (*out.batch_size, *last.shape[td.batch_dims - 1 :]),
                    dtype=last.dtype,
                    device=last.device,
                )
            else:
                current = current.clone()
            current[first] = last
            out.set(key, current)
        return out

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        raise RuntimeError(
            "BurnInTransform transforms sampled sequences: append it to a replay buffer, not an env"
        )

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        raise RuntimeError(
            "BurnInTransform transforms sampled sequences: append it to a replay buffer, not an env"
        )

    def __repr__(self) -> str:
        return f"BurnInTransform(burn_in={self.burn_in}, out_keys={self.out_keys})"
