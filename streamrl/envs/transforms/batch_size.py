"""BatchSizeTransform: give an env another batch size (reshape it, or set the batch size
of an env that takes any).

>>> import torch
>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import BatchSizeTransform, TransformedEnv
>>> env = TransformedEnv(
...     GymEnv("CartPole-v1"), BatchSizeTransform(reshape_fn=lambda td: td.reshape(1, 1))
... )
>>> env.batch_size, env.rollout(4)["next", "observation"].shape
(torch.Size([1, 1]), torch.Size([1, 1, 4, 4]))
>>> env.close()
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.envs.transforms.transform import Transform, _check_td

__all__ = ["BatchSizeTransform"]


class BatchSizeTransform(Transform):
    """Change the batch size of the env it wraps.

    Two uses, one argument each:

    - ``batch_size``: the env's new batch size. For an env that is not batch-locked (a
      stateless env that takes inputs of any batch size), a reset without input is given an
      empty TensorDict of that batch size, so the env returns that many rows (a reset
      output with fewer leading dims is expanded). A batch-locked env keeps its batch size
      unless it is already ``batch_size``: use ``reshape_fn`` to reshape it.
    - ``reshape_fn``: a map of TensorDicts that reshapes the batch (``reshape``, ``flatten``,
      ``unflatten``, ``squeeze``, ``unsqueeze``): outputs and specs go through it, and step
      inputs are reshaped back to the base env's batch size.

    ``reset_func(tensordict, tensordict_reset)`` (with ``env=`` the transformed env when
    ``env_kwarg``) replaces the reset output, e.g. to draw one start per row.

    Keyword Args:
        batch_size: the new batch size (exclusive with ``reshape_fn``).
        reshape_fn: a TensorDict -> TensorDict batch reshape (exclusive with ``batch_size``).
        reset_func: builds the reset output from the reset input and the base env's output.
        env_kwarg: pass the transformed env to ``reset_func`` as ``env=`` (default False).
    """

    def __init__(
        self,
        *,
        batch_size: torch.Size | None = None,
        reshape_fn: Callable[[TensorDictBase], TensorDictBase] | None = None,
        reset_func: Callable[[TensorDictBase, TensorDictBase], TensorDictBase] | None = None,
        env_kwarg: bool = False,
    ) -> None:
        if (batch_size is None) == (reshape_fn is None):
            raise ValueError(
                "BatchSizeTransform takes exactly one of batch_size and reshape_fn, found "
                f"batch_size={batch_size!r} and reshape_fn={reshape_fn!r}"
            )
        if reshape_fn is not None and not callable(reshape_fn):
            raise TypeError(f"reshape_fn must be callable, found {type(reshape_fn).__name__}")
        if reset_func is not None and not callable(reset_func):
            raise TypeError(f"reset_func must be callable, found {type(reset_func).__name__}")
        if env_kwarg and reset_func is None:
            raise ValueError("env_kwarg=True needs a reset_func to pass the env to")
        if env_kwarg and "env" not in inspect.signature(reset_func).parameters:
            raise TypeError("env_kwarg=True: reset_func must take an 'env' keyword argument")
        if batch_size is not None:
            try:
                batch_size = torch.Size(batch_size)
            except TypeError:
                raise TypeError(
                    f"batch_size must be a sequence of ints, found {batch_size!r}"
                ) from None
        super().__init__()
        self.batch_size = batch_size
        self.reshape_fn = reshape_fn
        self.reset_func = reset_func
        self.env_kwarg = bool(env_kwarg)
        self._in_batch: torch.Size | None = None  # the base env's batch size, once seen

    # ------------------------------------------------------------------ shapes
    def transform_env_batch_size(self, batch_size: torch.Size) -> torch.Size:
        """The new batch size (``batch_size``, or ``reshape_fn`` applied to an empty
        TensorDict of the base env's batch size)."""
        self._in_batch = torch.Size(batch_size)
        if self.reshape_fn is not None:
            return self._reshape(TensorDict(batch_size=batch_size)).batch_size
        self._check_expandable(batch_size)
        return self.batch_size

    def _check_expandable(self, batch_size: torch.Size) -> None:
        new = self.batch_size
        n = len(batch_size)
        if len(new) < n or any(a not in (b, 1) for a, b in zip(batch_size, new[len(new) - n :])):
            raise ValueError(
                f"BatchSizeTransform: the env's batch size {list(batch_size)} cannot be "
                f"expanded to {list(new)}"
            )

    def _reshape(self, td: TensorDictBase) -> TensorDictBase:
        out = self.reshape_fn(td)
        if not isinstance(out, TensorDictBase) or out.batch_size.numel() != td.batch_size.numel():
            found = (
                list(out.batch_size) if isinstance(out, TensorDictBase) else type(out).__name__
            )
            raise ValueError(
                f"BatchSizeTransform: reshape_fn must return a TensorDict with as many rows as "
                f"it was given ({list(td.batch_size)}), found {found}"
            )
        return out

    def _base_batch(self) -> torch.Size:
        if self._in_batch is None:
            raise RuntimeError("BatchSizeTransform has not seen its env's batch size yet")
        return self._in_batch

    def _env(self) -> Any:
        from streamrl.envs.transforms.transformed_env import TransformedEnv

        holder = self.container
        while holder is not None and not isinstance(holder, TransformedEnv):
            holder = holder.container
        return holder

    def _check_locked(self) -> None:
        from streamrl.envs.transforms.transformed_env import TransformedEnv

        parent = self.parent
        if self.batch_size is None or parent is None or parent.batch_size == self.batch_size:
            return
        base = parent
        while isinstance(base, TransformedEnv):
            base = base.base_env
        if base.batch_locked:
            raise ValueError(
                f"BatchSizeTransform: a batch-locked env of batch size {list(parent.batch_size)} "
                f"cannot take batch_size={list(self.batch_size)}; use reshape_fn to reshape it"
            )

    # ------------------------------------------------------------------ data
    def _to_new(self, td: TensorDictBase) -> TensorDictBase:
        if self.reshape_fn is not None:
            return self._reshape(td)
        if td.batch_size == self.batch_size:
            return td
        return td.expand(self.batch_size).clone()

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return self._to_new(td)

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        return self._to_new(next_td)

    def _reset_env_preprocess(self, td: TensorDictBase | None) -> TensorDictBase | None:
        self._check_locked()
        if self.reshape_fn is not None:
            return None if td is None else td.reshape(self._base_batch())
        if td is None and self._in_batch != self.batch_size:
            return TensorDict(batch_size=self.batch_size)
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        td_reset = self._to_new(td_reset)
        if self.reset_func is not None:
            td_in = td.reshape(td_reset.batch_size) if td is not None else None
            if self.env_kwarg:
                td_reset = self.reset_func(td_in, td_reset, env=self._env())
            else:
                td_reset = self.reset_func(td_in, td_reset)
            if not isinstance(td_reset, TensorDictBase):
                raise TypeError(
                    f"reset_func must return a TensorDict, found {type(td_reset).__name__}"
                )
        return td_reset

    def _has_inverse(self) -> bool:
        return self.reshape_fn is not None

    def _inv_call(self, td: TensorDictBase) -> TensorDictBase:
        if self.reshape_fn is None:
            return td
        return td.reshape(self._base_batch())

    def inv(self, td: TensorDictBase) -> TensorDictBase:
        """Reshape step inputs back to the base env's batch size (``reshape_fn`` only)."""
        _check_td(td, self)
        return self._inv_call(td.clone(False))

    # ------------------------------------------------------------------ specs
    def _spec(self, composite: Any) -> Any:
        if self.reshape_fn is not None:
            return composite.reshape(self.transform_env_batch_size(composite.shape))
        self._check_expandable(composite.shape)
        return composite.expand(self.batch_size)

    def transform_output_spec(self, output_spec: Any) -> Any:
        """Every output spec with the new batch dims."""
        return self._spec(output_spec)

    def transform_input_spec(self, input_spec: Any) -> Any:
        """Every input spec with the new batch dims."""
        return self._spec(input_spec)

    def __repr__(self) -> str:
        what = (
            f"batch_size={list(self.batch_size)}"
            if self.batch_size is not None
            else f"reshape_fn={getattr(self.reshape_fn, '__name__', self.reshape_fn)!r}"
        )
        return f"BatchSizeTransform({what})"
