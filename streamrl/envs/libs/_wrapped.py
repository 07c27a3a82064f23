"""The attribute forwarding of a library wrapper: what the wrapper lacks is read from the
library's env (TorchRL's wrappers do the same)."""

from __future__ import annotations

from typing import Any


class ForwardsToWrapped:
    """Put before ``EnvBase`` in a wrapper's bases: an attribute the wrapper does not have is
    read from its ``_env`` (never during construction or unpickling, before ``_env`` is
    set, nor for dunder names), with an ``AttributeError`` naming both when neither has
    it."""

    def __getattr__(self, name: str) -> Any:
        env = self.__dict__.get("_env")
        if env is None or name.startswith("__"):
            return super().__getattr__(name)  # type: ignore[misc]  # nn.Module's
        try:
            return getattr(env, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} (and its env {type(env).__name__}) "
                                 f"has no attribute {name!r}") from None
